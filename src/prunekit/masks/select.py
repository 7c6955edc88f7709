"""Pure mask selection: scores in, boolean keep-masks out. No module is touched here.

Conventions: a mask is a ``torch.bool`` tensor shaped like the scores, ``True`` = keep.
Lower score = less important = pruned first. Ties are broken by flat index so results are
deterministic and the number of pruned elements is exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _validate_sparsity(sparsity: float, name: str = "sparsity") -> None:
    if not isinstance(sparsity, (int, float)) or isinstance(sparsity, bool):
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}")
    if not (0.0 <= float(sparsity) < 1.0) or math.isnan(float(sparsity)):
        raise ValueError(f"{name} must be in [0, 1), got {sparsity!r}")


def n_to_prune(numel: int, sparsity: float) -> int:
    """Number of elements pruned for ``sparsity`` of ``numel`` (round half up, exact)."""
    return int(math.floor(numel * float(sparsity) + 0.5))


def _lowest_k(flat: Tensor, k: int) -> Tensor:
    """Indices of the k lowest entries of a 1-D tensor, ties by index (stable)."""
    order = torch.sort(flat.float(), stable=True).indices
    return order[:k]


def unstructured_mask(scores: Tensor, sparsity: float) -> Tensor:
    """Keep-mask pruning exactly ``round(sparsity * numel)`` lowest-scoring elements."""
    _validate_sparsity(sparsity)
    k = n_to_prune(scores.numel(), sparsity)
    mask = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k:
        mask[_lowest_k(scores.reshape(-1), k)] = False
    return mask.view_as(scores)


def global_masks(scores: dict[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """One ranking across all tensors: exactly ``round(sparsity * total)`` elements pruned."""
    _validate_sparsity(sparsity)
    if not scores:
        return {}
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float().cpu() for n in names])
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    k = n_to_prune(flat.numel(), sparsity)
    if k:
        keep[_lowest_k(flat, k)] = False
    out, start = {}, 0
    for n in names:
        s = scores[n]
        out[n] = keep[start : start + s.numel()].view(s.shape).to(s.device)
        start += s.numel()
    return out


def parse_pattern(pattern: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"unstructured"``/None -> None; ``"2:4"`` or ``(2, 4)`` -> (2, 4), validated."""
    if pattern is None or (isinstance(pattern, str) and pattern.lower() == "unstructured"):
        return None
    if isinstance(pattern, str):
        parts = pattern.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"pattern must be 'unstructured' or 'N:M' (e.g. '2:4'), got {pattern!r}")
        n, m = int(parts[0]), int(parts[1])
    else:
        n, m = (int(v) for v in pattern)
    if not (0 < n < m):
        raise ValueError(f"pattern N:M needs 0 < N < M, got {n}:{m}")
    return n, m


def nm_mask(scores: Tensor, n: int, m: int) -> Tensor:
    """Keep the ``n`` highest of every ``m`` consecutive entries along the last dimension.

    Args:
        scores: ``(..., K)`` with ``K % m == 0`` (groups of ``m`` along the reduction dimension,
            as sparse tensor cores require).
        n: kept per group.
        m: group size.
    """
    if not (0 < n < m):
        raise ValueError(f"pattern N:M needs 0 < N < M, got {n}:{m}")
    k = scores.shape[-1]
    if k % m:
        raise ValueError(f"dimension of size {k} is not divisible by M={m}")
    groups = scores.reshape(-1, m).float()  # (G, m)
    # stable: among ties the earlier index is pruned first -> keep the later ones
    order = torch.sort(groups, dim=1, stable=True).indices
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(1, order[:, m - n :], True)
    return mask.view_as(scores)


def is_nm_valid(mask: Tensor, n: int, m: int) -> bool:
    """True when every group of ``m`` along the last dim keeps at most ``n`` entries."""
    if mask.shape[-1] % m:
        return False
    return bool((mask.reshape(-1, m).sum(dim=1) <= n).all())
