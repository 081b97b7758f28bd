"""Tiny model-zoo models for the frontend tests and scripts/bench_zoo.py: plain torch modules with
random weights, written the way people write them (shape-derived scaling, nn.MultiheadAttention,
LSTMs, upsampling, scripted loops), nothing downloaded.

Each entry: name -> (make() -> TorchScript module, static specs, symbolic specs).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
import torch.nn.functional as F


class BertLayer(nn.Module):
    """A Hugging Face style encoder layer: the attention scale comes from the shape at run time."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 64), nn.GELU(), nn.Linear(64, d))
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x, mask):
        b, s, d = x.size()
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        hd = d // self.heads
        q = q.view(b, s, self.heads, hd).transpose(1, 2)
        k = k.view(b, s, self.heads, hd).transpose(1, 2)
        v = v.view(b, s, self.heads, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / (torch.tensor(d) // self.heads) ** 0.5
        scores = scores + (1.0 - mask[:, None, None, :]) * -10000.0
        a = scores.softmax(-1) @ v
        a = a.transpose(1, 2).reshape(b, s, d)
        x = self.ln1(x + self.out(a))
        return self.ln2(x + self.ff(x))


class ViTBlock(nn.Module):
    def __init__(self, d=32, heads=4):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 64), nn.GELU(), nn.Linear(64, d))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.layer(x)


class LSTM2(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


class GRU1(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x):
        y, h = self.gru(x)
        return y


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.dec = nn.Sequential(nn.Conv2d(24, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        u = F.interpolate(e2, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head(self.dec(torch.cat([u, e1], 1)))


class InvertedResidual(nn.Module):
    def __init__(self, c, expand=4):
        super().__init__()
        h = c * expand
        self.block = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c),
        )

    def forward(self, x):
        return x + self.block(x)


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean((2, 3)))


class ScriptedRNN(nn.Module):
    """A loop whose trip count is the sequence length: only torch.jit.script keeps it a loop."""

    def __init__(self):
        super().__init__()
        self.cell = nn.Linear(8 + 16, 16)

    def forward(self, x):
        h = torch.zeros(x.size(0), 16)
        for t in range(x.size(1)):
            h = torch.tanh(self.cell(torch.cat([x[:, t], h], 1))) + 0.5 * h
        return h


class Unsupported(nn.Module):
    """One op TVM's importer has no converter (and torch no decomposition) for, between layers."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(32, 16), nn.ReLU())

    def forward(self, x):
        h = self.a(x)
        h = torch.special.i0e(h)  # no TVM importer, no decomposition
        return self.b(h)


def _trace(m, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Traced under no_grad, as people do for inference: eval-mode attention then records
        # torch's fast path (_native_multi_head_attention).
        with torch.no_grad():
            return torch.jit.trace(m.eval(), args, check_trace=False)


def _script(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(m.eval())


def _sym(name, lo, hi):
    return {"name": name, "min": lo, "max": hi}


def _spec(name, dims, dtype="float32", rng=None):
    s = {"name": name, "dims": dims, "dtype": dtype}
    if rng:
        s["range"] = rng
    return s


def _seeded(fn):
    """Same random weights on every call, so a model made twice is the same model."""

    def make():
        torch.manual_seed(0)
        return fn()

    return make


def zoo():
    B, S = _sym("batch", 1, 4), _sym("seq", 2, 16)
    return {
        "bert": (_seeded(lambda: _trace(BertLayer(), torch.randn(2, 8, 32), torch.ones(2, 8))),
                 [_spec("x", [2, 8, 32]), _spec("mask", [2, 8], rng=[0, 1])],
                 [_spec("x", [B, S, 32]), _spec("mask", [B, S], rng=[0, 1])]),
        "vit": (_seeded(lambda: _trace(ViTBlock(), torch.randn(2, 5, 32))),
                [_spec("x", [2, 5, 32])], [_spec("x", [B, 5, 32])]),
        "encoder": (_seeded(lambda: _trace(Encoder(), torch.randn(2, 6, 32))),
                    [_spec("x", [2, 6, 32])], [_spec("x", [B, 6, 32])]),
        "lstm": (_seeded(lambda: _trace(LSTM2(), torch.randn(2, 6, 8))),
                 [_spec("x", [2, 6, 8])], [_spec("x", [B, 6, 8])]),
        "gru": (_seeded(lambda: _trace(GRU1(), torch.randn(2, 6, 8))),
                [_spec("x", [2, 6, 8])], [_spec("x", [B, 6, 8])]),
        "unet": (_seeded(lambda: _trace(UNet(), torch.randn(1, 3, 16, 16))),
                 [_spec("x", [1, 3, 16, 16])], [_spec("x", [B, 3, 16, 16])]),
        "mobilenet": (_seeded(lambda: _trace(MobileNet(), torch.randn(1, 3, 32, 32))),
                      [_spec("x", [1, 3, 32, 32])], [_spec("x", [B, 3, 32, 32])]),
        "scripted_rnn": (_seeded(lambda: _script(ScriptedRNN())),
                         [_spec("x", [2, 5, 8])], [_spec("x", [B, S, 8])]),
        "unsupported": (_seeded(lambda: _trace(Unsupported(), torch.randn(2, 16))),
                        [_spec("x", [2, 16])], [_spec("x", [B, 16])]),
    }
