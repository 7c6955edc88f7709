"""Token-merging forwards for each supported block family (torchvision, timm, HF BERT-style).

Every forward computes the block as its library does, with two changes once merging has
started (or when the block merges): attention adds ``log(size)`` of each key token to its
logits (ToMe's proportional attention; a padding token has size 0, so ``log`` gives the
``-inf`` of the padding mask), and between attention and MLP the block's ``r`` token pairs are
merged by :func:`prunekit.dynamic.tome.bipartite_merge` on the mean attention key. A block
with nothing to merge and no merged tokens before it runs its original forward unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Shared:
    """Per-forward token sizes ``(B, N, 1)`` and token counts, reset by a pre-hook on the model."""

    size: Tensor | None = None
    kept: list[int] = field(default_factory=list)


Merge = Callable[[Tensor, Tensor, Tensor, int], tuple[Tensor, Tensor]]


def merges(r: int | float, n: int) -> int:
    """Tokens to merge away: ``r`` itself, or the fraction ``r`` of the ``n`` tokens."""
    return int(r * n) if isinstance(r, float) else int(r)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, size: Tensor | None, scale: float | None = None
          ) -> Tensor:
    bias = None if size is None else size.log().transpose(1, 2).unsqueeze(1).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)


def _merge_step(x: Tensor, metric: Tensor, r: int | float, shared: Shared,
                merge: Merge) -> Tensor:
    size = shared.size
    n = merges(r, x.shape[1])
    if n > 0:
        if size is None:
            size = torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
        x, size = merge(x, size, metric, n)
        shared.size = size
    shared.kept.append(x.shape[1])
    return x


# --- torchvision VisionTransformer EncoderBlock ---------------------------------------------

def is_torchvision_block(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("ln_1", "ln_2", "mlp")) and isinstance(
        getattr(m, "self_attention", None), nn.MultiheadAttention)


def torchvision_forward(block: nn.Module, r: int | float, shared: Shared, merge: Merge,
                        inp: Tensor) -> Tensor:
    if merges(r, inp.shape[1]) == 0 and shared.size is None:
        out = block.__class__.forward(block, inp)
        shared.kept.append(out.shape[1])
        return out
    attn = block.self_attention
    b, n, c = inp.shape
    h = attn.num_heads
    qkv = F.linear(block.ln_1(inp), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
    y = attn.out_proj(_sdpa(q, k, v, shared.size).transpose(1, 2).reshape(b, n, c))
    x = block.dropout(y) + inp
    x = _merge_step(x, k.mean(dim=1), r, shared, merge)
    return x + block.mlp(block.ln_2(x))


# --- timm VisionTransformer Block -----------------------------------------------------------

def is_timm_block(m: nn.Module) -> bool:
    attn = getattr(m, "attn", None)
    return all(hasattr(m, a) for a in ("norm1", "norm2", "mlp", "ls1", "drop_path1")) and \
        all(hasattr(attn, a) for a in ("qkv", "proj", "num_heads", "q_norm", "k_norm"))


def timm_forward(block: nn.Module, r: int | float, shared: Shared, merge: Merge, inp: Tensor,
                 attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
    if (merges(r, inp.shape[1]) == 0 and shared.size is None) or attn_mask is not None \
            or is_causal or getattr(block.attn, "gate", None) is not None:
        out = block.__class__.forward(block, inp, attn_mask=attn_mask, is_causal=is_causal)
        shared.kept.append(out.shape[1])
        return out
    attn = block.attn
    b, n, _ = inp.shape
    qkv = attn.qkv(block.norm1(inp)).reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    y = _sdpa(q, k, v, shared.size).transpose(1, 2).reshape(b, n, -1)
    y = attn.proj_drop(attn.proj(attn.norm(y)))
    x = inp + block.drop_path1(block.ls1(y))
    x = _merge_step(x, k.mean(dim=1), r, shared, merge)
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


# --- Hugging Face BERT-style encoder layer (BERT, MiniLM, RoBERTa, ...) ---------------------

def is_bert_layer(m: nn.Module) -> bool:
    sa = getattr(getattr(m, "attention", None), "self", None)
    return all(hasattr(m, a) for a in ("intermediate", "output")) and \
        all(hasattr(sa, a) for a in ("query", "key", "value", "attention_head_size")) and \
        not getattr(m, "is_decoder", False)


def _sizes_from_mask(mask: Tensor | None, x: Tensor) -> Tensor:
    """``(B, N, 1)``: 1 for a real token, 0 for padding, from HF's (extended) attention mask."""
    if mask is None:
        return torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
    row = mask.reshape(mask.shape[0], -1, mask.shape[-1])[:, 0, :]  # keys seen by query 0
    keep = row if row.dtype == torch.bool else row > torch.finfo(row.dtype).min / 2
    return keep.to(x.dtype).unsqueeze(-1)


def _returns_tuple(block: nn.Module) -> bool:
    """transformers 4.x layers return a tuple, 5.x a tensor."""
    ann = inspect.signature(block.__class__.forward).return_annotation
    return "tuple" in str(ann).lower()


def bert_forward(block: nn.Module, r: int | float, shared: Shared, merge: Merge, inp: Tensor,
                 attention_mask: Tensor | None = None, *args: Any, **kw: Any) -> Any:
    if merges(r, inp.shape[1]) == 0 and shared.size is None:
        out = block.__class__.forward(block, inp, attention_mask, *args, **kw)
        shared.kept.append((out[0] if isinstance(out, tuple) else out).shape[1])
        return out
    if shared.size is None:
        shared.size = _sizes_from_mask(attention_mask, inp)
    sa = block.attention.self
    b, n, _ = inp.shape
    q, k, v = (lin(inp).view(b, n, -1, sa.attention_head_size).transpose(1, 2)
               for lin in (sa.query, sa.key, sa.value))
    y = _sdpa(q, k, v, shared.size, getattr(sa, "scaling", None))
    x = block.attention.output(y.transpose(1, 2).reshape(b, n, -1), inp)
    x = _merge_step(x, k.mean(dim=1), r, shared, merge)
    out = block.output(block.intermediate(x), x)
    return (out,) if _returns_tuple(block) else out


FAMILIES: tuple[tuple[str, Callable[[nn.Module], bool], Callable[..., Any]], ...] = (
    ("torchvision", is_torchvision_block, torchvision_forward),
    ("timm", is_timm_block, timm_forward),
    ("bert", is_bert_layer, bert_forward),
)


def family(m: nn.Module) -> tuple[str, Callable[..., Any]] | None:
    for name, test, fwd in FAMILIES:
        if test(m):
            return name, fwd
    return None
