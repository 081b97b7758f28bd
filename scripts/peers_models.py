"""The models `bench_peers.py` measures, in plain torch with random weights (fixed seed).

- resnet18:  the bundled example's ResNet-18 (assets/make_example_model.py), 1x3x224x224
- encoder:   nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024, batch_first),
             4x128 tokens
- depthwise: a MobileNet-style depthwise-separable net, 2x3x64x64, two outputs (logits, embedding)
- lstm:      a 2-layer LSTM tagger over 64-d token features (128 hidden, 10 tags), 3x20 tokens

Each entry gives a factory for the eval-mode module and the example input shape.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn as nn

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, "assets"))

from make_example_model import ResNet18  # noqa: E402


def _randomize_bn(model: nn.Module) -> nn.Module:
    # Non-trivial batch-norm statistics, as the bundled example has.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(ResNet18()).eval()


class EncoderLayer(nn.Module):
    """One transformer encoder layer, d=256, 4 heads, post-norm, ReLU FFN of 1024."""

    def __init__(self, d_model: int = 256, nhead: int = 4, ff: int = 1024):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=ff, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.layer(x)


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return EncoderLayer().eval()


class EncoderLayerSDPA(nn.Module):
    """The same layer (same parameters, same math: post-norm, ReLU FFN) written with
    F.scaled_dot_product_attention and the head size as a Python int. nn.MultiheadAttention,
    traced, computes the head size from the traced input shape (aten::div with rounding_mode on a
    size), which TVM's importer did not take when this was written; this form has no such
    shape arithmetic."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        self.layer = layer
        self.nhead = layer.self_attn.num_heads
        self.head_dim = layer.self_attn.head_dim

    def forward(self, x):
        L = self.layer
        b, t = x.shape[0], x.shape[1]
        qkv = nn.functional.linear(x, L.self_attn.in_proj_weight, L.self_attn.in_proj_bias)
        qkv = qkv.reshape(b, t, 3, self.nhead, self.head_dim).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        a = L.self_attn.out_proj(a.transpose(1, 2).reshape(b, t, self.nhead * self.head_dim))
        x = L.norm1(x + a)
        return L.norm2(x + L.linear2(torch.relu(L.linear1(x))))


def encoder_sdpa() -> nn.Module:
    return EncoderLayerSDPA(encoder().layer).eval()


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class DWSeparable(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (MobileNet v1 block); residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_bn(cin, cout, 1, act=False)
        self.act = nn.Hardswish()
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        if self.residual:
            y = y + x
        return self.act(y)


class DepthwiseNet(nn.Module):
    """MobileNet-style: stem, 6 depthwise-separable blocks, two heads (10 logits, 64-d embedding)."""

    def __init__(self):
        super().__init__()
        self.stem = _conv_bn(3, 16, 3, 2)
        cfg = [(16, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1)]
        self.blocks = nn.Sequential(*[DWSeparable(a, b, s) for a, b, s in cfg])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(128, 10)
        self.embed = nn.Sequential(nn.Linear(128, 64), nn.Sigmoid())

    def forward(self, x):
        f = torch.flatten(self.pool(self.blocks(self.stem(x))), 1)
        return self.classifier(f), self.embed(f)


def depthwise() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(DepthwiseNet()).eval()


class LSTMTagger(nn.Module):
    """A sequence tagger: 2-layer LSTM over token features, a tag per token."""

    def __init__(self, features: int = 64, hidden: int = 128, tags: int = 10):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, tags)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def lstm() -> nn.Module:
    torch.manual_seed(0)
    return LSTMTagger().eval()


# name -> (factory, input shape, label, number of outputs)
MODELS = {
    "resnet18": (resnet18, (1, 3, 224, 224), "ResNet-18, 1x3x224x224", 1),
    "encoder": (encoder, (4, 128, 256), "transformer encoder layer d=256 (4 heads), 4x128 tokens", 1),
    "encoder_sdpa": (encoder_sdpa, (4, 128, 256), "the same encoder layer written with F.scaled_dot_product_attention, 4x128 tokens", 1),
    "depthwise": (depthwise, (2, 3, 64, 64), "MobileNet-style depthwise net, 2x3x64x64, 2 outputs", 2),
    "lstm": (lstm, (3, 20, 64), "2-layer LSTM tagger (64 features, 128 hidden, 10 tags), 3x20 tokens", 1),
}
