"""The models `bench_peers.py` measures, in plain torch with random weights (fixed seed).

- resnet18:  the bundled example's ResNet-18 (assets/make_example_model.py), 1x3x224x224
- encoder:   nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024, batch_first),
             4x128 tokens
- depthwise: a MobileNet-style depthwise-separable net, 2x3x64x64, two outputs (logits, embedding)
- lstm:      a 2-layer LSTM tagger over 64-d token features (128 hidden, 10 tags), 3x20 tokens
- audio:     a keyword-spotting-style Conv1d + GroupNorm net on a raw waveform, 1x1x16000 (1 s at
             16 kHz), 35 classes
- mobilenetv3: MobileNetV3-small (hardswish, squeeze-excite, depthwise 3x3/5x5 inverted residuals,
             odd channel counts), 1x3x224x224, 1000 classes
- decoder:   a GPT-style decoder (vocab 1000, d=256, learned positions, 2 pre-norm blocks with causal
             F.scaled_dot_product_attention, 4 heads, GELU MLP of 1024), int64 token ids 1x64
- unet:      a small UNet (2 levels down, bottleneck, 2 up with ConvTranspose2d + skip concat), 1x3x64x64

Each entry gives a factory for the eval-mode module and the example input shape (float32 from
torch.randn unless the entry names an integer dtype and range: `make_input`). All are ours, written
here with random weights, so no download is involved.
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


class AudioNet(nn.Module):
    """Raw-waveform keyword spotting: a strided Conv1d front end, three Conv1d + GroupNorm + GELU
    blocks (32 -> 64 -> 64 -> 128 channels, time halved by a stride or a max-pool in each), mean
    over time, 35 classes."""

    def __init__(self, classes: int = 35):
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1, pool: bool = False) -> nn.Sequential:
            layers = [nn.Conv1d(cin, cout, 3, stride, padding=1), nn.GroupNorm(8, cout), nn.GELU()]
            if pool:
                layers.append(nn.MaxPool1d(2))
            return nn.Sequential(*layers)

        self.front = nn.Sequential(nn.Conv1d(1, 32, 80, stride=4), nn.GroupNorm(8, 32), nn.GELU())
        self.blocks = nn.Sequential(block(32, 64, stride=2), block(64, 64, pool=True), block(64, 128, stride=2))
        self.head = nn.Linear(128, classes)

    def forward(self, x):
        return self.head(self.blocks(self.front(x)).mean(dim=2))


def audio() -> nn.Module:
    torch.manual_seed(0)
    net = AudioNet()
    for m in net.modules():  # non-trivial affine parameters, as trained GroupNorms have
        if isinstance(m, nn.GroupNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hardsigmoid -> scale."""

    def __init__(self, channels: int):
        super().__init__()
        squeeze = _make_divisible(channels / 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x):
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1x1 expand (when exp != cin), depthwise k x k, optional SE, 1x1 project;
    residual when the shapes allow."""

    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, hs: bool, stride: int):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if exp != cin:
            layers += [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), act()]
        layers += [nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False), nn.BatchNorm2d(exp), act()]
        if se:
            layers.append(SqueezeExcite(exp))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    """MobileNetV3-small as published (Howard et al. 2019, table 2), width 1.0."""

    # kernel, expansion, out, squeeze-excite, hardswish, stride
    CFG = [
        (3, 16, 16, True, False, 2),
        (3, 72, 24, False, False, 2),
        (3, 88, 24, False, False, 1),
        (5, 96, 40, True, True, 2),
        (5, 240, 40, True, True, 1),
        (5, 240, 40, True, True, 1),
        (5, 120, 48, True, True, 1),
        (5, 144, 48, True, True, 1),
        (5, 288, 96, True, True, 2),
        (5, 576, 96, True, True, 1),
        (5, 576, 96, True, True, 1),
    ]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()]
        cin = 16
        for k, exp, cout, se, hs, s in self.CFG:
            layers.append(InvertedResidual(cin, k, exp, cout, se, hs, s))
            cin = cout
        layers += [nn.Conv2d(cin, 576, 1, bias=False), nn.BatchNorm2d(576), nn.Hardswish()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(), nn.Linear(1024, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _he_init(model: nn.Module) -> nn.Module:
    # He-normal convolution weights (fan in): with torch's default init the activations shrink
    # layer after layer and the outputs end up ~0.01, too small for the peers' 1e-3 output check.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in")
    return model


def mobilenetv3() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(_he_init(MobileNetV3Small())).eval()


class DecoderBlock(nn.Module):
    """Pre-norm GPT block: x + attn(ln1(x)), then x + mlp(ln2(x)); causal SDPA, head size an int."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def forward(self, x):
        b, t = x.shape[0], x.shape[1]
        qkv = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))
        return x + self.mlp(self.ln2(x))


class Decoder(nn.Module):
    """GPT-style language model: token embedding + learned positions, pre-norm blocks, final
    LayerNorm, LM head (logits over the vocabulary for every position)."""

    def __init__(self, vocab: int = 1000, d: int = 256, heads: int = 4, ff: int = 1024, layers: int = 2, context: int = 64):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, context, d) * 0.02)
        self.blocks = nn.Sequential(*[DecoderBlock(d, heads, ff) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.tok(ids) + self.pos[:, : ids.shape[1]]
        return self.head(self.ln(self.blocks(x)))


def decoder() -> nn.Module:
    torch.manual_seed(0)
    return Decoder().eval()


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small UNet: (Conv-BN-ReLU)x2 per level, 16 -> 32 channels down with max-pools, a 64-channel
    bottleneck, ConvTranspose2d up with the skip concatenated, a 1x1 head (2 classes per pixel)."""

    def __init__(self, cin: int = 3, classes: int = 2):
        super().__init__()
        self.down1, self.down2 = _double_conv(cin, 16), _double_conv(16, 32)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(32, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), _double_conv(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), _double_conv(32, 16)
        self.head = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        s1 = self.down1(x)
        s2 = self.down2(self.pool(s1))
        y = self.bottleneck(self.pool(s2))
        y = self.dec2(torch.cat([self.up2(y), s2], dim=1))
        y = self.dec1(torch.cat([self.up1(y), s1], dim=1))
        return self.head(y)


def unet() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(_he_init(UNet())).eval()


# name -> (factory, input shape, label, number of outputs[, (integer dtype, [low, high)) of the input])
MODELS = {
    "resnet18": (resnet18, (1, 3, 224, 224), "ResNet-18, 1x3x224x224", 1),
    "encoder": (encoder, (4, 128, 256), "transformer encoder layer d=256 (4 heads), 4x128 tokens", 1),
    "encoder_sdpa": (encoder_sdpa, (4, 128, 256), "the same encoder layer written with F.scaled_dot_product_attention, 4x128 tokens", 1),
    "depthwise": (depthwise, (2, 3, 64, 64), "MobileNet-style depthwise net, 2x3x64x64, 2 outputs", 2),
    "lstm": (lstm, (3, 20, 64), "2-layer LSTM tagger (64 features, 128 hidden, 10 tags), 3x20 tokens", 1),
    "audio": (audio, (1, 1, 16000), "Conv1d + GroupNorm audio net, raw waveform 1x1x16000, 35 classes", 1),
    "mobilenetv3": (mobilenetv3, (1, 3, 224, 224), "MobileNetV3-small (SE, hardswish), 1x3x224x224", 1),
    "decoder": (decoder, (1, 64), "GPT-style decoder (vocab 1000, d=256, 2 blocks, causal SDPA), 1x64 int64 tokens", 1, ("int64", (0, 1000))),
    "unet": (unet, (1, 3, 64, 64), "small UNet (2 levels, ConvTranspose2d up, skip concat), 1x3x64x64", 1),
}


def input_dtype(name: str) -> tuple[str, tuple[int, int] | None]:
    """The input's dtype name (as the engine's input specs spell it) and, for integers, its [low, high)."""
    entry = MODELS[name]
    return entry[4] if len(entry) > 4 else ("float32", None)


def make_input(name: str, shape=None, seed: int = 1) -> torch.Tensor:
    """The example input: torch.randn for float32 (after torch.manual_seed(seed)), uniform integers
    in the entry's range otherwise."""
    shape = tuple(shape or MODELS[name][1])
    dtype, rng = input_dtype(name)
    torch.manual_seed(seed)
    if rng is not None:
        return torch.randint(rng[0], rng[1], shape, dtype=getattr(torch, dtype))
    return torch.randn(*shape)
