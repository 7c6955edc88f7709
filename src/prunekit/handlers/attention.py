"""Whole-head structural pruning of ``nn.MultiheadAttention``.

``nn.MultiheadAttention`` requires ``num_heads * head_dim == embed_dim`` (its functional forward
derives ``head_dim`` from the query width), so removing heads while keeping the residual stream
would break it. After any surgery the module's class is switched to
:class:`PrunedMultiheadAttention`, a subclass with the same parameters and state_dict keys whose
forward allows an inner width (``num_heads * head_dim``) different from the outer ``embed_dim``.
``isinstance(m, nn.MultiheadAttention)`` stays true.

Heads: Michel et al., "Are Sixteen Heads Really Better than One?", NeurIPS 2019.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.handlers._slicing import (
    as_index,
    block_rows,
    resize_param,
    slice_param,
    strided_rows,
)
from prunekit.handlers.base import Handler, InternalGroup, register_handler


class PrunedMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose inner width may differ from ``embed_dim``.

    Attributes beyond the parent's: ``inner_dim`` (= ``num_heads * head_dim``) and ``in_dim``
    (query input width; ``embed_dim`` is the output width).
    """

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first:  # (L, B, E) -> (B, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q, k, v = self._project(query, key, value)
        bsz, tgt = q.shape[:2]
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(bsz, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(bsz, 1, -1)], dim=1)
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(bsz, 1, k.shape[-1])], dim=1)
            v = torch.cat([v, v.new_zeros(bsz, 1, v.shape[-1])], dim=1)
        src = k.shape[1]
        heads, hd = self.num_heads, self.head_dim
        q = q.reshape(bsz, tgt, heads, hd).transpose(1, 2)  # (B, heads, L, hd)
        k = k.reshape(bsz, src, heads, hd).transpose(1, 2)  # (B, heads, S, hd)
        v = v.reshape(bsz, src, heads, hd).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)  # (B, heads, L, S)
        mask = self._additive_mask(attn_mask, key_padding_mask, is_causal, bsz, tgt, src, q)
        if mask is not None:
            scores = scores + mask
        attn = torch.softmax(scores, dim=-1)
        attn = F.dropout(attn, p=self.dropout, training=self.training)
        out = (attn @ v).transpose(1, 2).reshape(bsz, tgt, heads * hd)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        weights = None
        if need_weights:
            weights = attn.mean(dim=1) if average_attn_weights else attn
            if unbatched:
                weights = weights.squeeze(0)
        if unbatched:
            out = out.squeeze(1 if not self.batch_first else 0)
        return out, weights

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        inner = self.num_heads * self.head_dim
        if torch.is_grad_enabled():  # nn.MultiheadAttention projects a transposed copy, so
            copies: dict[int, Tensor] = {}  # callers may edit x in place: x += mha(x, x, x)[0]
            query, key, value = (copies.setdefault(id(t), t.clone()) if id(t) not in copies
                                 else copies[id(t)] for t in (query, key, value))
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else b.split(inner)
        if self.in_proj_weight is not None:
            wq, wk, wv = self.in_proj_weight.split(inner)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def _additive_mask(self, attn_mask, key_padding_mask, is_causal, bsz, tgt, src, ref):
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(tgt, src, dtype=torch.bool, device=ref.device).triu(1)
        if attn_mask is not None:
            mask = _to_additive(attn_mask, ref.dtype)
            if mask.dim() == 3:  # (B*heads, L, S)
                mask = mask.reshape(bsz, self.num_heads, tgt, -1)
            mask = _pad_src(mask, src)
        if key_padding_mask is not None:
            kpm = _pad_src(_to_additive(key_padding_mask, ref.dtype), src).view(bsz, 1, 1, src)
            mask = kpm if mask is None else mask + kpm
        return mask


def _to_additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf"))
    return mask.to(dtype)


def _pad_src(mask: Tensor, src: int) -> Tensor:
    """Pad the last (source) dim with zeros for the extra bias_k / zero-attention columns."""
    extra = src - mask.shape[-1]
    return F.pad(mask, (0, extra)) if extra > 0 else mask


def _inner(m: nn.MultiheadAttention) -> int:
    return m.num_heads * m.head_dim


def _to_pruned(m: nn.MultiheadAttention) -> None:
    if type(m) is nn.MultiheadAttention:
        m.__class__ = PrunedMultiheadAttention


def prune_mha_heads(m: nn.MultiheadAttention, keep: Tensor) -> None:
    """Keep heads ``keep`` (q/k/v rows of each head, ``out_proj`` columns); updates ``num_heads``."""
    heads = as_index(keep, m.num_heads, f"{type(m).__name__} heads")
    inner, hd = _inner(m), m.head_dim
    elems = block_rows(heads, hd)
    if m.in_proj_weight is not None:
        slice_param(m, "in_proj_weight", 0, strided_rows(elems, inner, 3))
    for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        slice_param(m, name, 0, elems)
    slice_param(m, "in_proj_bias", 0, strided_rows(elems, inner, 3))
    slice_param(m, "bias_k", 2, elems)
    slice_param(m, "bias_v", 2, elems)
    slice_param(m.out_proj, "weight", 1, elems)
    m.out_proj.in_features = elems.numel()
    m.num_heads = heads.numel()
    _to_pruned(m)


def prune_mha_in(m: nn.MultiheadAttention, keep: Tensor) -> None:
    """Keep query-input features ``keep`` (key/value too when they share ``in_proj_weight``)."""
    idx = as_index(keep, m.in_proj_weight.shape[1] if m.in_proj_weight is not None
                   else m.q_proj_weight.shape[1], f"{type(m).__name__} input")
    if m.in_proj_weight is not None:
        slice_param(m, "in_proj_weight", 1, idx)
        m.kdim = m.vdim = idx.numel()
    else:
        slice_param(m, "q_proj_weight", 1, idx)
    _to_pruned(m)


def prune_mha_out(m: nn.MultiheadAttention, keep: Tensor) -> None:
    """Keep output features ``keep`` (rows of ``out_proj``); updates ``embed_dim``."""
    idx = as_index(keep, m.out_proj.out_features, f"{type(m).__name__} output")
    slice_param(m.out_proj, "weight", 0, idx)
    slice_param(m.out_proj, "bias", 0, idx)
    m.out_proj.out_features = m.embed_dim = idx.numel()
    _to_pruned(m)


class MultiheadAttentionHandler(Handler):
    """Handler for ``nn.MultiheadAttention`` used as self-attention ``mha(x, x, x)``.

    in: query (and shared key/value) features; out: ``out_proj`` features; internal group
    ``heads`` (granularity ``head_dim``).
    """

    def in_channels(self, m: nn.MultiheadAttention) -> int:
        w = m.in_proj_weight if m.in_proj_weight is not None else m.q_proj_weight
        return w.shape[1]

    def out_channels(self, m: nn.MultiheadAttention) -> int:
        return m.out_proj.out_features

    def prune_in(self, m: nn.MultiheadAttention, keep: Tensor) -> None:
        prune_mha_in(m, keep)

    def prune_out(self, m: nn.MultiheadAttention, keep: Tensor) -> None:
        prune_mha_out(m, keep)

    def weight_slices(self, m: nn.MultiheadAttention, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "in":
            w = m.in_proj_weight if m.in_proj_weight is not None else m.q_proj_weight
            return [(w, 1)]
        out = [(m.out_proj.weight, 0)]
        if m.out_proj.bias is not None:
            out.append((m.out_proj.bias, 0))
        return out

    def in_tensors(self, m: nn.MultiheadAttention, args: tuple, kwargs: dict
                   ) -> list[tuple[Tensor, int]]:
        """query, and key/value too when they share ``in_proj_weight`` (self-attention)."""
        names = ("query", "key", "value")
        vals = [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]
        if m.in_proj_weight is None:
            vals = vals[:1]
        return [(t, t.dim() - 1) for t in vals if isinstance(t, Tensor)]

    def out_tensors(self, m: nn.MultiheadAttention, output: Any) -> list[tuple[Tensor, int]]:
        y = output[0] if isinstance(output, tuple) else output
        return [(y, y.dim() - 1)] if isinstance(y, Tensor) else []

    def internal_groups(self, m: nn.MultiheadAttention) -> list[InternalGroup]:
        heads, hd, inner = m.num_heads, m.head_dim, _inner(m)
        if m.in_proj_weight is not None:
            qkv = list(m.in_proj_weight.detach().split(inner))
        else:
            qkv = [m.q_proj_weight.detach(), m.k_proj_weight.detach(), m.v_proj_weight.detach()]
        slices = [(w, 0) for w in qkv] + [(m.out_proj.weight.detach(), 1)]
        return [InternalGroup("heads", heads, hd, slices, lambda keep: prune_mha_heads(m, keep))]

    def cost(self, m: nn.MultiheadAttention, n_in: int | None, n_out: int | None
             ) -> tuple[int, int]:
        return self.internal_cost(m, n_in, n_out, {})

    def internal_cost(self, m: nn.MultiheadAttention, n_in: int | None, n_out: int | None,
                      kept: dict[str, int]) -> tuple[int, int]:
        """``(params, MACs per query position)`` with ``kept["heads"]`` heads (projections
        only: the score and weighting MACs depend on the sequence lengths)."""
        n_in = self.in_channels(m) if n_in is None else n_in
        n_out = self.out_channels(m) if n_out is None else n_out
        inner = kept.get("heads", m.num_heads) * m.head_dim
        shared = m.in_proj_weight is not None
        kdim = n_in if shared else m.k_proj_weight.shape[1]
        vdim = n_in if shared else m.v_proj_weight.shape[1]
        macs = inner * (n_in + kdim + vdim) + n_out * inner
        params = macs + (3 * inner if m.in_proj_bias is not None else 0)
        params += 2 * inner if m.bias_k is not None else 0
        params += n_out if m.out_proj.bias is not None else 0
        return params, macs

    def resize(self, m: nn.MultiheadAttention, shapes: dict[str, tuple[int, ...]]) -> None:
        """Match saved shapes; ``head_dim`` is kept, ``num_heads`` inferred from ``out_proj``."""
        o = shapes.get("out_proj.weight", tuple(m.out_proj.weight.shape))
        m.embed_dim = m.out_proj.out_features = o[0]
        m.out_proj.in_features = o[1]
        m.num_heads = o[1] // m.head_dim
        for name, shape in shapes.items():
            owner, _, leaf = name.rpartition(".")
            resize_param(m.get_submodule(owner) if owner else m, leaf, tuple(shape))
        if "in_proj_weight" in shapes:
            m.kdim = m.vdim = shapes["in_proj_weight"][1]
        _to_pruned(m)


MHA_HANDLER = MultiheadAttentionHandler()
register_handler(nn.MultiheadAttention, MHA_HANDLER)
register_handler(PrunedMultiheadAttention, MHA_HANDLER)
