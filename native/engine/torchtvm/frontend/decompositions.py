"""Decompositions torch does not ship for ops that eval-mode models record.

`nn.MultiheadAttention` and `nn.TransformerEncoderLayer` take a fused "fast path" in eval mode
(`aten::_native_multi_head_attention`, `aten::_transformer_encoder_layer_fwd`). torch has no
decomposition for either and TVM no importer, so traced attention models stopped there. These
re-express them with linear / matmul / softmax / layer_norm, the ops the fast path fuses; they are
added to torch's default table (which covers sdpa, RNN cells, upsample_*, group_norm...).
"""

from __future__ import annotations

import math

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


def table() -> dict:
    """torch's default decomposition table plus the fast-path ops above, without the RNN layers:
    LSTM and GRU stay whole, for the library (backend/recurrent.py imports them)."""
    t = torch.export.default_decompositions()
    t[aten._native_multi_head_attention.default] = _native_mha
    t[aten._transformer_encoder_layer_fwd.default] = _transformer_encoder_layer
    for op in (aten.lstm.input, aten.gru.input):
        t.pop(op, None)
    return t
