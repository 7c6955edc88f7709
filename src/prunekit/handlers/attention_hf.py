"""Whole-head pruning of Hugging Face attention modules (recognised by structure, no import).

Families (transformers 5.x reads sizes from module attributes at forward time):

* ``qkvo`` — ``q_proj``/``k_proj``/``v_proj``/``o_proj`` + ``head_dim`` (+ ``num_key_value_groups``
  for GQA): LLaMA, Qwen2, Mistral, Gemma, ViT, ... The hidden view is ``(-1, head_dim)`` so only
  ``head_dim`` and ``num_key_value_groups`` matter; the head counts follow the weights.
  GQA: query head ``h`` reads key/value head ``h // n_rep``, so the prunable unit is a *KV group*
  (one key/value head with its ``n_rep`` query heads); ``n_rep`` is unchanged.
* ``bert`` — ``query``/``key``/``value`` + ``attention_head_size``: the output projection lives in
  a sibling module (``BertSelfOutput.dense``), so heads are the module's *output* channels with
  granularity ``attention_head_size`` and the graph couples them with that Linear.
* ``gpt2`` — packed ``c_attn`` (HF ``Conv1D``, out features ``[q | k | v]``) + ``c_proj``.

The shared ``config`` object is not edited here (layers may differ); see
``prunekit.structural.hf_config.sync_hf_config`` which writes it when sizes are uniform.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.handlers._proj import (
    out_rows,
    proj_cost,
    proj_in,
    proj_out,
    resize_proj,
    slice_proj_in,
    slice_proj_out,
)
from prunekit.handlers._slicing import as_index, block_rows, strided_rows
from prunekit.handlers.base import HANDLERS, Handler, InternalGroup

_HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head")
_KV_ATTRS = ("num_key_value_heads", "num_kv_heads")


def attention_family(m: nn.Module) -> str | None:
    """``"qkvo"``, ``"bert"``, ``"gpt2"`` or ``None`` by the module's children and attributes."""
    kids = dict(m.named_children())
    if all(n in kids for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and hasattr(m, "head_dim"):
        return "qkvo"
    if all(n in kids for n in ("query", "key", "value")) and hasattr(m, "attention_head_size"):
        return "bert"
    if "c_attn" in kids and "c_proj" in kids and hasattr(m, "split_size") \
            and not getattr(m, "is_cross_attention", False):
        return "gpt2"
    return None


def _set_heads(m: nn.Module, heads: int, kv: int | None = None) -> None:
    for a in _HEAD_ATTRS:
        if isinstance(getattr(m, a, None), int):
            setattr(m, a, heads)
    for a in _KV_ATTRS:
        if kv is not None and isinstance(getattr(m, a, None), int):
            setattr(m, a, kv)


def _track_inner(m: nn.Module, inner_before: int) -> None:
    """transformers 4.x attention reshapes its output to ``self.hidden_size`` (LLaMA, Qwen2,
    ...): where that attribute held the attention width, it follows the pruned width."""
    if getattr(m, "hidden_size", None) == inner_before:
        m.hidden_size = proj_in(m.o_proj)


# ----------------------------------------------------------------------------- qkvo (LLaMA-like)
def qkvo_heads(m: nn.Module) -> tuple[int, int, int]:
    """``(num_heads, num_kv_heads, head_dim)`` read from the weights."""
    hd = m.head_dim
    return proj_out(m.q_proj) // hd, proj_out(m.k_proj) // hd, hd


def prune_qkvo_kv_groups(m: nn.Module, keep: Tensor) -> None:
    """Keep key/value heads ``keep`` together with their query heads (GQA-consistent)."""
    heads, kv, hd = qkvo_heads(m)
    inner = proj_in(m.o_proj)
    groups = as_index(keep, kv, f"{type(m).__name__} key/value groups")
    rep = heads // kv
    q_idx = block_rows(groups, rep * hd)
    kv_idx = block_rows(groups, hd)
    slice_proj_out(m.q_proj, q_idx)
    slice_proj_out(m.k_proj, kv_idx)
    slice_proj_out(m.v_proj, kv_idx)
    slice_proj_in(m.o_proj, q_idx)
    _set_heads(m, groups.numel() * rep, groups.numel())
    _track_inner(m, inner)


def _qkvo_group(m: nn.Module) -> InternalGroup:
    heads, kv, hd = qkvo_heads(m)
    rep = heads // kv

    def per_query(t: Tensor) -> Tensor:  # (kv*hd, in) -> (kv*rep*hd, in): one copy per query head
        return t.reshape(kv, 1, hd, -1).expand(kv, rep, hd, t.shape[-1]).reshape(kv * rep * hd, -1)

    slices = [(out_rows(m.q_proj), 0), (per_query(out_rows(m.k_proj)), 0),
              (per_query(out_rows(m.v_proj)), 0), (out_rows(m.o_proj), 1)]
    name = "kv_groups" if rep > 1 else "heads"
    return InternalGroup(name, kv, hd * rep, slices, lambda keep: prune_qkvo_kv_groups(m, keep),
                         extra={"heads_per_group": rep, "head_dim": hd})


def prune_qkvo_query_heads(m: nn.Module, keep: Tensor) -> None:
    """Keep query-head positions ``keep`` inside every KV group (same count in each group)."""
    heads, kv, hd = qkvo_heads(m)
    rep, inner = heads // kv, proj_in(m.o_proj)
    pos = as_index(keep, rep, f"{type(m).__name__} query heads per key/value group")
    q_heads = (torch.arange(kv).view(-1, 1) * rep + pos.view(1, -1)).flatten()
    q_idx = block_rows(q_heads, hd)
    slice_proj_out(m.q_proj, q_idx)
    slice_proj_in(m.o_proj, q_idx)
    m.num_key_value_groups = pos.numel()
    _set_heads(m, kv * pos.numel(), kv)
    _track_inner(m, inner)


def _qkvo_query_group(m: nn.Module) -> InternalGroup:
    heads, kv, hd = qkvo_heads(m)
    rep = heads // kv
    q = out_rows(m.q_proj).reshape(kv, rep * hd, -1).transpose(0, 1)  # (rep*hd, kv, in)
    o = out_rows(m.o_proj).reshape(-1, kv, rep * hd).permute(2, 0, 1)  # (rep*hd, out, kv)
    return InternalGroup("query_heads", rep, hd, [(q, 0), (o, 0)],
                         lambda keep: prune_qkvo_query_heads(m, keep))


# ----------------------------------------------------------------------------- BERT
def prune_bert_heads(m: nn.Module, keep: Tensor) -> None:
    """Keep heads ``keep`` of a BERT-style self-attention (q/k/v rows)."""
    hd = m.attention_head_size
    heads = as_index(keep, proj_out(m.query) // hd, f"{type(m).__name__} heads")
    idx = block_rows(heads, hd)
    for p in (m.query, m.key, m.value):
        slice_proj_out(p, idx)
    _set_heads(m, heads.numel())
    if hasattr(m, "all_head_size"):
        m.all_head_size = idx.numel()


def _bert_out_to_heads(m: nn.Module, keep: Tensor) -> Tensor:
    """Kept output features -> kept heads; the features must form whole heads."""
    hd = m.attention_head_size
    idx = as_index(keep, proj_out(m.query), f"{type(m).__name__} output")
    ok = idx.numel() % hd == 0
    if ok:
        blocks = idx.view(-1, hd)
        ok = torch.equal(blocks, blocks[:, :1] + torch.arange(hd)) and not (blocks[:, 0] % hd).any()
    if not ok:
        raise ValueError(f"{type(m).__name__}: output channels must be removed in whole heads "
                         f"of {hd}")
    return blocks[:, 0] // hd


# ----------------------------------------------------------------------------- GPT-2
def prune_gpt2_heads(m: nn.Module, keep: Tensor) -> None:
    """Keep heads ``keep`` of a GPT-2 attention (packed ``c_attn`` columns, ``c_proj`` rows)."""
    hd, inner = m.head_dim, m.split_size
    heads = as_index(keep, inner // hd, f"{type(m).__name__} heads")
    idx = block_rows(heads, hd)
    slice_proj_out(m.c_attn, strided_rows(idx, inner, 3))
    slice_proj_in(m.c_proj, idx)
    m.split_size = m.embed_dim = idx.numel()  # 4.x SDPA reshapes its output to embed_dim
    _set_heads(m, heads.numel())


def _gpt2_group(m: nn.Module) -> InternalGroup:
    hd, inner = m.head_dim, m.split_size
    slices = [(t, 0) for t in out_rows(m.c_attn).split(inner)] + [(out_rows(m.c_proj), 1)]
    return InternalGroup("heads", inner // hd, hd, slices, lambda keep: prune_gpt2_heads(m, keep))


class HFAttentionHandler(Handler):
    """Handler for HF attention modules of the ``qkvo``, ``bert`` and ``gpt2`` families.

    Args:
        gqa: with grouped-query attention, prune ``"kv_groups"`` (whole key/value heads with
            their query heads; default) or ``"query_heads"`` (the same query-head positions
            inside every group; key/value heads kept). Register an instance for a class to
            choose, e.g. ``register_handler(LlamaAttention, HFAttentionHandler("query_heads"))``.
    """

    def __init__(self, gqa: str = "kv_groups") -> None:
        if gqa not in ("kv_groups", "query_heads"):
            raise ValueError(f"gqa must be 'kv_groups' or 'query_heads', got {gqa!r}")
        self.gqa = gqa

    def _io(self, m: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
        fam = attention_family(m)
        if fam == "qkvo":
            return [m.q_proj, m.k_proj, m.v_proj], [m.o_proj]
        if fam == "bert":
            return [m.query, m.key, m.value], [m.query, m.key, m.value]
        if fam == "gpt2":
            return [m.c_attn], [m.c_proj]
        raise ValueError(f"{type(m).__name__}: not a recognised attention module "
                         "(expected q_proj/k_proj/v_proj/o_proj, query/key/value or c_attn/c_proj)")

    def in_channels(self, m: nn.Module) -> int:
        return proj_in(self._io(m)[0][0])

    def out_channels(self, m: nn.Module) -> int:
        return proj_out(self._io(m)[1][0])

    def in_out_coupled(self, m: nn.Module) -> bool:
        return False

    def in_granularity(self, m: nn.Module) -> int:
        return 1

    def out_granularity(self, m: nn.Module) -> int:
        return m.attention_head_size if attention_family(m) == "bert" else 1

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        idx = as_index(keep, self.in_channels(m), f"{type(m).__name__} input")
        for p in self._io(m)[0]:
            slice_proj_in(p, idx)

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        if attention_family(m) == "bert":
            prune_bert_heads(m, _bert_out_to_heads(m, keep))
            return
        (o,) = self._io(m)[1]
        slice_proj_out(o, as_index(keep, proj_out(o), f"{type(m).__name__} output"))

    def in_tensors(self, m: nn.Module, args: tuple, kwargs: dict) -> list[tuple[Tensor, int]]:
        x = args[0] if args else kwargs.get("hidden_states")
        return [(x, x.dim() - 1)] if isinstance(x, Tensor) else []

    def out_tensors(self, m: nn.Module, output: Any) -> list[tuple[Tensor, int]]:
        y = output[0] if isinstance(output, (tuple, list)) else output
        return [(y, y.dim() - 1)] if isinstance(y, Tensor) else []

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        ins, outs = self._io(m)
        if dim == "in":
            return [(out_rows(p), 1) for p in ins]
        return [(out_rows(p), 0) for p in outs]

    def internal_groups(self, m: nn.Module) -> list[InternalGroup]:
        fam = attention_family(m)
        if fam == "qkvo":
            heads, kv, _ = qkvo_heads(m)
            if self.gqa == "query_heads" and heads > kv:
                return [_qkvo_query_group(m)]
            return [_qkvo_group(m)]
        if fam == "gpt2":
            return [_gpt2_group(m)]
        return []

    def internal_cost(self, m: nn.Module, n_in: int | None, n_out: int | None,
                      kept: dict[str, int]) -> tuple[int, int]:
        """``(params, MACs per position)`` with ``kept`` heads / KV groups / query heads per group
        (projections only; parameters outside them, e.g. q/k norms, are counted as they are)."""
        fam = attention_family(m)
        ins, outs = self._io(m)
        n_in = self.in_channels(m) if n_in is None else n_in
        n_out = self.out_channels(m) if n_out is None else n_out
        if fam == "qkvo":
            heads, kv, hd = qkvo_heads(m)
            rep = heads // kv
            kv = kept.get("kv_groups", kept.get("heads", kv))
            rep = kept.get("query_heads", rep)
            shapes = [(m.q_proj, n_in, kv * rep * hd), (m.k_proj, n_in, kv * hd),
                      (m.v_proj, n_in, kv * hd), (m.o_proj, kv * rep * hd, n_out)]
        elif fam == "gpt2":
            inner = kept.get("heads", m.split_size // m.head_dim) * m.head_dim
            shapes = [(m.c_attn, n_in, 3 * inner), (m.c_proj, inner, n_out)]
        else:
            return Handler.cost(self, m, n_in, n_out)
        projs = {id(q) for pm in ins + outs for q in pm.parameters()}
        params = sum(p.numel() for p in m.parameters() if id(p) not in projs)
        macs = 0
        for p, a, b in shapes:
            pp, mm = proj_cost(p, a, b)
            params, macs = params + pp, macs + mm
        return params, macs

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        return self.internal_cost(m, n_in, n_out, {})

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        """Match saved ``<proj>.weight`` shapes and fix the head attributes."""
        inner = proj_in(m.o_proj) if attention_family(m) == "qkvo" else 0
        for name in {k.split(".")[0] for k in shapes}:
            p = getattr(m, name)
            w = shapes[f"{name}.weight"]
            n_in, n_out = (w[0], w[1]) if type(p).__name__ == "Conv1D" else (w[1], w[0])
            resize_proj(p, n_in, n_out)
        fam = attention_family(m)
        if fam == "qkvo":
            heads, kv, _ = qkvo_heads(m)
            _set_heads(m, heads, kv)
            _track_inner(m, inner)
        elif fam == "bert":
            _set_heads(m, proj_out(m.query) // m.attention_head_size)
            m.all_head_size = proj_out(m.query)
        elif fam == "gpt2":
            m.split_size = m.embed_dim = proj_out(m.c_attn) // 3
            _set_heads(m, m.split_size // m.head_dim)


HF_ATTENTION_HANDLER = HFAttentionHandler()


def resolve_hf_attention(m: nn.Module) -> HFAttentionHandler | None:
    """Resolver for :class:`~prunekit.handlers.base.HandlerTable`: HF attention by structure."""
    return HF_ATTENTION_HANDLER if attention_family(m) is not None else None


HANDLERS.add_resolver(resolve_hf_attention)
