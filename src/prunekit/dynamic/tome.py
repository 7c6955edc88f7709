"""Token merging (ToMe) for ViT encoder blocks, training-free.

Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023. Between attention and MLP of
each block, the tokens are split alternately into two sets; each token of the first set is
matched with its most similar token of the second (cosine of the attention keys, averaged over
heads), and the ``r`` best-matched pairs are merged by a size-weighted average. Every token
carries its size (how many patches it stands for); attention adds ``log(size)`` to its logits
(proportional attention) so a merged token weighs as much as the patches it replaced. The
class token is never merged and stays first.

Supported blocks: torchvision ``EncoderBlock`` (``ln_1``, ``self_attention``, ``ln_2``,
``mlp``). A block with ``r = 0`` whose tokens all have size 1 runs its original forward, so
``r = 0`` everywhere gives the unmodified model exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_STATE = "_prunekit_tome"


@dataclass
class _Shared:
    """Per-forward token sizes, reset by a pre-hook on the model."""

    size: Tensor | None = None
    kept: list[int] = field(default_factory=list)


def is_token_block(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("ln_1", "ln_2", "mlp")) and isinstance(
        getattr(m, "self_attention", None), nn.MultiheadAttention)


def bipartite_merge(x: Tensor, size: Tensor, metric: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """Merge ``r`` token pairs of ``x`` ``(B, N, C)`` (token 0 protected); sizes ``(B, N, 1)``."""
    n = x.shape[1]
    r = min(r, (n - 1) // 2)
    if r <= 0:
        return x, size
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(-1, -2)  # (B, Na, Nb)
    scores[:, 0, :] = -torch.inf
    node_max, node_idx = scores.max(dim=-1)
    edge = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx = edge[:, r:].sort(dim=1).values  # class token first
    src_idx = edge[:, :r]
    dst_idx = node_idx[..., None].gather(1, src_idx)

    def merge(t: Tensor) -> Tensor:
        src, dst = t[:, ::2], t[:, 1::2]
        c = t.shape[-1]
        unm = src.gather(1, unm_idx.expand(-1, -1, c))
        moved = src.gather(1, src_idx.expand(-1, -1, c))
        dst = dst.scatter_reduce(1, dst_idx.expand(-1, -1, c), moved, reduce="sum")
        return torch.cat([unm, dst], dim=1)

    new_size = merge(size)
    return merge(x * size) / new_size, new_size


def _attention(attn: nn.MultiheadAttention, x: Tensor, size: Tensor | None
               ) -> tuple[Tensor, Tensor]:
    """Self-attention with ``log(size)`` added to the logits; returns (output, mean key)."""
    b, n, c = x.shape
    h = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)  # each (B, H, N, hd)
    bias = None if size is None else size.log().view(b, 1, 1, n).to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = attn.out_proj(out.transpose(1, 2).reshape(b, n, c))
    return out, k.mean(dim=1)


def _block_forward(block: nn.Module, r: int, shared: _Shared, inp: Tensor) -> Tensor:
    if r == 0 and shared.size is None:
        out = block.__class__.forward(block, inp)
        shared.kept.append(out.shape[1])
        return out
    size = shared.size
    y, metric = _attention(block.self_attention, block.ln_1(inp), size)
    x = block.dropout(y) + inp if hasattr(block, "dropout") else y + inp
    if r > 0:
        if size is None:
            size = torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
        x, size = bipartite_merge(x, size, metric, r)
        shared.size = size
    shared.kept.append(x.shape[1])
    return x + block.mlp(block.ln_2(x))


def _schedule(r: int | Sequence[int], n: int) -> list[int]:
    rs = [r] * n if isinstance(r, int) else list(r)
    if len(rs) != n:
        raise ValueError(f"r: schedule has {len(rs)} entries for {n} token blocks")
    if any((not isinstance(v, int)) or v < 0 for v in rs):
        raise ValueError(f"r: merges per block must be non-negative integers, got {r!r}")
    return rs


def merge_tokens(model: nn.Module, r: int | Sequence[int]) -> list[str]:
    """Install token merging on every ViT encoder block of ``model`` (in place).

    Args:
        model: a torchvision ``VisionTransformer`` (or any model with such blocks).
        r: tokens merged away per block, or a per-block schedule.

    Returns:
        Names of the blocks that merge. ``model.__dict__['_prunekit_tome'].kept`` holds the
        token counts after each block of the last forward.

    Raises:
        ValueError: no token blocks, or a bad ``r``; the model is unchanged.
    """
    blocks = [(n, m) for n, m in model.named_modules() if is_token_block(m)]
    if not blocks:
        raise ValueError(f"model: {type(model).__name__} has no ViT token blocks "
                         "(ln_1, self_attention, ln_2, mlp)")
    rs = _schedule(r, len(blocks))
    unmerge_tokens(model)
    shared = _Shared()

    def reset(_m: nn.Module, _a: object) -> None:
        shared.size = None
        shared.kept = []

    handle = model.register_forward_pre_hook(reset)
    model.__dict__[_STATE] = (shared, handle)
    for (_, blk), rb in zip(blocks, rs, strict=True):
        blk.forward = functools.partial(_block_forward, blk, rb, shared)
    return [n for (n, _), rb in zip(blocks, rs, strict=True) if rb > 0]


def unmerge_tokens(model: nn.Module) -> None:
    """Remove token merging installed by :func:`merge_tokens`."""
    st = model.__dict__.pop(_STATE, None)
    if st is not None:
        st[1].remove()
    for m in model.modules():
        if is_token_block(m):
            m.__dict__.pop("forward", None)


def tokens_kept(model: nn.Module) -> list[int]:
    """Token count after each block in the last forward (empty before the first)."""
    st = model.__dict__.get(_STATE)
    return list(st[0].kept) if st is not None else []
