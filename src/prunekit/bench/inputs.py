"""Benchmark inputs: random (never zero), distinct, rotated, at the batch size asked for.

Timing on zeros flatters some kernels and a single repeated input stays hot in cache, so the
harness rotates through several distinct random inputs whose total size exceeds the last-level
cache (``cache_bytes``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

DEFAULT_CACHE_BYTES = 64 * 2**20  # larger than the L2 of an H100 (50 MB) and most CPU L3 slices


def tensor_leaves(example: Any) -> list[Tensor]:
    """The tensors of a (nested) input, in flattening order."""
    return [t for t in tree_flatten(example)[0] if isinstance(t, Tensor)]


def nbytes(example: Any) -> int:
    """Bytes held by all tensors of a (nested) input."""
    return sum(t.numel() * t.element_size() for t in tensor_leaves(example))


def _random_like(t: Tensor, gen: torch.Generator) -> Tensor:
    if t.dtype == torch.bool:
        return t.clone()  # masks keep their structure
    if t.is_floating_point() or t.is_complex():
        r = torch.randn(t.shape, generator=gen, dtype=torch.float32)
        return r.to(dtype=t.dtype, device=t.device)
    hi = int(t.max().item()) + 1 if t.numel() else 2
    lo = int(t.min().item()) if t.numel() else 0
    hi = max(hi, lo + 2)  # token ids etc.: stay in the range the example uses, never all-zero
    return torch.randint(lo, hi, t.shape, generator=gen).to(dtype=t.dtype, device=t.device)


def random_like(example: Any, seed: int = 0) -> Any:
    """A copy of a (nested) input with random contents of the same shapes, dtypes and devices."""
    gen = torch.Generator().manual_seed(seed)
    leaves, spec = tree_flatten(example)
    out = [_random_like(x, gen) if isinstance(x, Tensor) else x for x in leaves]
    return tree_unflatten(out, spec)


def resize_batch(example: Any, batch: int) -> Any:
    """The input at batch size ``batch`` (dim 0 of every tensor, repeated or cut).

    Raises:
        ValueError: ``batch`` < 1 or the input holds no tensor.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    leaves, spec = tree_flatten(example)
    if not any(isinstance(x, Tensor) for x in leaves):
        raise ValueError("example inputs hold no tensor to resize along the batch dimension")

    def fix(t: Any) -> Any:
        if not isinstance(t, Tensor) or t.dim() == 0:
            return t
        n = t.shape[0]
        reps = -(-batch // n)
        return t.repeat(reps, *([1] * (t.dim() - 1)))[:batch].contiguous()

    return tree_unflatten([fix(x) for x in leaves], spec)


def cast_inputs(example: Any, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None) -> Any:
    """Move tensors to ``device`` and cast floating tensors to ``dtype`` (ints stay ints)."""
    leaves, spec = tree_flatten(example)

    def fix(t: Any) -> Any:
        if not isinstance(t, Tensor):
            return t
        kw: dict[str, Any] = {}
        if device is not None:
            kw["device"] = device
        if dtype is not None and t.is_floating_point():
            kw["dtype"] = dtype
        return t.to(**kw) if kw else t

    return tree_unflatten([fix(x) for x in leaves], spec)


def input_pool(
    example: Any,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    min_count: int = 2,
    max_count: int = 16,
    max_total_bytes: int = 2**30,
    seed: int = 0,
) -> list[Any]:
    """Distinct random inputs shaped like ``example``, together larger than ``cache_bytes``.

    At least ``min_count`` and at most ``max_count`` inputs; fewer when they would exceed
    ``max_total_bytes`` (but never fewer than one).
    """
    size = max(nbytes(example), 1)
    count = max(min_count, -(-cache_bytes // size))
    count = min(count, max_count, max(1, max_total_bytes // size))
    return [random_like(example, seed + i) for i in range(count)]


def first_batch_size(example: Any) -> int | None:
    """Dim 0 of the first tensor in ``example`` (None when it holds no batched tensor)."""
    ts = [t for t in tensor_leaves(example) if t.dim() > 0]
    return int(ts[0].shape[0]) if ts else None
