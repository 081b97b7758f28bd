"""Decompositions torch does not ship for ops that eval-mode models record.

`nn.MultiheadAttention` and `nn.TransformerEncoderLayer` take a fused "fast path" in eval mode
(`aten::_native_multi_head_attention`, `aten::_transformer_encoder_layer_fwd`). torch has no
decomposition for either and TVM no importer, so traced attention models stopped there. These
re-express them with linear / matmul / softmax / layer_norm, the ops the fast path fuses; they are
added to torch's default table (which covers sdpa, RNN cells, upsample_*, group_norm...).

Negative indices are made non-negative here too. TVM imports `aten.select.int` (`x[:, -1]`,
`x[-1]`, `torch.select`) as `take(x, const(index), axis)` and `aten.index.Tensor` with one index
tensor (`x[:, [-1, 0]]`) as `take(x, index, axis)`; its take runs in "fast" mode, which reads
`base + index` unchecked, so a negative index reads memory before the tensor (garbage, different on
every run). torch allows an index in [-size, size), so each negative one becomes `index + size`,
with the dim's symbolic size where it has one. Left alone: slices (`x[:, -3:]`, `narrow` with a
negative start), whose negative bounds TVM's strided_slice counts from the end as torch does;
`index_put` (`y[:, idx] = v`), whose TVM kernel adds the size to a negative index itself; and
torch's own `_unsafe_index` (upsample_*, padding), whose indices torch computes in range.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch
import torch.nn.functional as F

aten = torch.ops.aten


def _native_mha(query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight, proj_bias,
                mask=None, need_weights=True, average_attn_weights=True, mask_type=None):
    unbatched = query.dim() == 2
    if unbatched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
    b, tgt, _ = query.shape
    src = key.shape[1]
    hd = embed_dim // num_head
    if query is key and key is value:
        # Self-attention: one GEMM for the three projections, as the fast path runs it.
        qkv = F.linear(query, qkv_weight, qkv_bias).view(b, tgt, 3, num_head, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # selects, which the attention reads as strided views
    else:
        wq, wk, wv = qkv_weight.chunk(3)
        bq, bk, bv = qkv_bias.chunk(3)
        q = F.linear(query, wq, bq).view(b, tgt, num_head, hd).transpose(1, 2)
        k = F.linear(key, wk, bk).view(b, src, num_head, hd).transpose(1, 2)
        v = F.linear(value, wv, bv).view(b, src, num_head, hd).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
    if mask is not None:
        # mask_type 0: attention mask (L, S); 1: key padding mask (B, S); 2: already (B, H, L, S)-broadcastable.
        m = mask[:, None, None, :] if mask_type == 1 else (mask[None, None] if mask.dim() == 2 else mask)
        scores = scores.masked_fill(m, float("-inf")) if m.dtype == torch.bool else scores + m
    attn = torch.softmax(scores, -1)
    out = torch.matmul(attn, v).transpose(1, 2).reshape(b, tgt, embed_dim)
    out = F.linear(out, proj_weight, proj_bias)
    if unbatched:
        out = out.squeeze(0)
    if need_weights:
        w = attn.mean(1) if average_attn_weights else attn
        return out, (w.squeeze(0) if unbatched else w)
    return out, out.new_empty((0,))


def _transformer_encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu,
                               norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2,
                               ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask=None, mask_type=None):
    def attend(h):
        return _native_mha(h, h, h, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, mask, False, True, mask_type)[0]

    def feed_forward(h):
        h = F.linear(h, ffn_weight_1, ffn_bias_1)
        h = F.gelu(h) if use_gelu else F.relu(h)
        return F.linear(h, ffn_weight_2, ffn_bias_2)

    shape = (embed_dim,)
    x = src
    if norm_first:
        x = x + attend(F.layer_norm(x, shape, norm_weight_1, norm_bias_1, eps))
        return x + feed_forward(F.layer_norm(x, shape, norm_weight_2, norm_bias_2, eps))
    x = F.layer_norm(x + attend(x), shape, norm_weight_1, norm_bias_1, eps)
    return F.layer_norm(x + feed_forward(x), shape, norm_weight_2, norm_bias_2, eps)


# Set while an op below re-emits `index.Tensor` whose indices need no mapping (per thread: the
# service may import in more than one).
_emitting = threading.local()


@contextlib.contextmanager
def _emitting_index_op():
    outer = getattr(_emitting, "on", False)
    _emitting.on = True
    try:
        yield
    finally:
        _emitting.on = outer


def _select_nonnegative(x, dim, index):
    """`select.int` with a negative index -> the same element counted from the front."""
    if not isinstance(index, int) or index >= 0:
        return NotImplemented  # traced as is (also the select.int emitted below)
    size = x.shape[dim]
    if isinstance(size, int):
        return aten.select.int(x, dim, index + size)
    # A symbolic size: TVM's select takes only a literal index, and a slice from s - 1 to s gets a
    # shape TVM cannot simplify (if_then_else, which fails the build). Indexing with a 0-d tensor
    # holding s - 1 (computed from the shape at run time) drops the dim as select does.
    at = aten.scalar_tensor.default(size + index, dtype=torch.int64)
    with _emitting_index_op():
        return aten.index.Tensor(x, [None] * (dim % x.dim()) + [at])


def _nonnegative_indices(x, indices):
    """`indices` of `index.Tensor` with each integer index tensor mapped to
    `where(i < 0, i + size, i)` of the dim it indexes; None where there is nothing to change.
    A boolean mask indexes as many dims as it has."""
    out, dim, changed = [], 0, False
    for idx in indices:
        if idx is None:
            out.append(None)
            dim += 1
        elif idx.dtype in (torch.bool, torch.uint8):
            out.append(idx)
            dim += idx.dim()
        else:
            out.append(torch.where(idx < 0, idx + x.shape[dim], idx))
            dim += 1
            changed = True
    return out if changed else None


def _index_nonnegative(x, indices):
    fixed = None if getattr(_emitting, "on", False) else _nonnegative_indices(x, indices)
    if fixed is None:
        return NotImplemented
    with _emitting_index_op():
        return aten.index.Tensor(x, fixed)


def _unsafe_index(x, indices):
    """torch's own decomposition (`index`), without the mapping above: torch emits `_unsafe_index`
    only with indices it computed in range (upsample_*, reflection/replication padding)."""
    with _emitting_index_op():
        return aten.index.Tensor(x, indices)


def table() -> dict:
    """torch's default decomposition table plus the fast-path ops and the negative indices above,
    without the RNN layers: LSTM and GRU stay whole, for the library (backend/recurrent.py imports
    them)."""
    t = torch.export.default_decompositions()
    t[aten._native_multi_head_attention.default] = _native_mha
    t[aten._transformer_encoder_layer_fwd.default] = _transformer_encoder_layer
    t[aten.select.int] = _select_nonnegative
    t[aten.index.Tensor] = _index_nonnegative
    t[aten._unsafe_index.Tensor] = _unsafe_index
    for op in (aten.lstm.input, aten.gru.input):
        t.pop(op, None)
    return t
