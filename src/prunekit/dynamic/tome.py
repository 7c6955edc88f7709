"""Token merging (ToMe) for ViT and BERT-style encoder blocks, training-free.

Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023. Between attention and MLP of
each block, the tokens are split alternately into two sets; each token of the first set is
matched with its most similar token of the second (cosine of the attention keys, averaged over
heads), and the ``r`` best-matched pairs are merged by a size-weighted average. Every token
carries its size (how many patches or word pieces it stands for); attention adds ``log(size)``
to its logits (proportional attention) so a merged token weighs as much as the tokens it
replaced, and :func:`mean_pool` weights the pooled mean by size. The first token (class /
``[CLS]``) is never merged and stays first.

Supported blocks (:mod:`prunekit.dynamic.tome_blocks`): torchvision ``EncoderBlock``, timm
ViT ``Block``, Hugging Face BERT-style encoder layers (BERT, MiniLM, RoBERTa, ...; padding
tokens have size 0). A block with nothing to merge whose tokens all have size 1 runs its
original forward, so ``r = 0`` everywhere gives the unmodified model exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from prunekit.dynamic.tome_blocks import Shared, family

_STATE = "_prunekit_tome"


class _Reset:
    """Forward pre-hook clearing the sizes (an object, so ``deepcopy`` keeps it paired with the
    copied blocks' state)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def __call__(self, _m: nn.Module, _a: object) -> None:
        self.shared.size = None
        self.shared.kept = []


def is_token_block(m: nn.Module) -> bool:
    return family(m) is not None


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
    return merge(x * size) / new_size.clamp_min(1e-12), new_size


def _ok(v: object) -> bool:
    if isinstance(v, bool):
        return False
    return (isinstance(v, int) and v >= 0) or (isinstance(v, float) and 0.0 <= v < 1.0)


def _schedule(r: int | float | Sequence[int | float], n: int) -> list[int | float]:
    rs = [r] * n if isinstance(r, (int, float)) else list(r)
    if len(rs) != n:
        raise ValueError(f"r: schedule has {len(rs)} entries for {n} token blocks")
    if not all(_ok(v) for v in rs):
        raise ValueError(f"r: merges per block must be non-negative integers or fractions in "
                         f"[0, 1), got {r!r}")
    return rs


def merge_tokens(model: nn.Module, r: int | float | Sequence[int | float]) -> list[str]:
    """Install token merging on every ViT / BERT-style encoder block of ``model`` (in place).

    Args:
        model: a torchvision or timm ``VisionTransformer``, a Hugging Face BERT-style encoder
            (``BertModel``, MiniLM, ...), or any model holding such blocks.
        r: tokens merged away per block (an int, as in ToMe), a fraction of the block's input
            tokens (a float in [0, 1): suits inputs of varying length), or a per-block schedule
            of either.

    Returns:
        Names of the blocks that merge. :func:`tokens_kept` gives the token counts after each
        block of the last forward, :func:`token_sizes` the sizes of the final tokens.

    Raises:
        ValueError: no token blocks, or a bad ``r``; the model is unchanged.
    """
    blocks = [(n, m) for n, m in model.named_modules() if is_token_block(m)]
    if not blocks:
        raise ValueError(f"model: {type(model).__name__} has no ViT / BERT-style token blocks "
                         "(torchvision EncoderBlock, timm Block, HF encoder layer)")
    rs = _schedule(r, len(blocks))
    unmerge_tokens(model)
    shared = Shared()
    handle = model.register_forward_pre_hook(_Reset(shared))
    model.__dict__[_STATE] = (shared, handle)
    for (_, blk), rb in zip(blocks, rs, strict=True):
        fwd = family(blk)[1]  # type: ignore[index]
        blk.forward = functools.partial(fwd, blk, rb, shared, bipartite_merge)
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


def token_sizes(model: nn.Module) -> Tensor | None:
    """Sizes ``(B, N', 1)`` of the tokens after the last block of the last forward (padding
    tokens 0), or None when no token was merged (every real token has size 1)."""
    st = model.__dict__.get(_STATE)
    return None if st is None else st[0].size


def mean_pool(model: nn.Module, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """Mean of ``hidden`` ``(B, N', C)`` over tokens, each weighted by its size.

    The pooling of sentence-transformers (mean over the real tokens) for a merged encoder:
    a merged token stands for ``size`` word pieces. Without merging it is the masked mean.
    """
    size = token_sizes(model)
    if size is None or size.shape[:2] != hidden.shape[:2]:
        if attention_mask is None:
            size = torch.ones(*hidden.shape[:2], 1, dtype=hidden.dtype, device=hidden.device)
        else:
            size = attention_mask.unsqueeze(-1).to(hidden.dtype)
    size = size.to(hidden.dtype)
    return (hidden * size).sum(1) / size.sum(1).clamp_min(1e-9)
