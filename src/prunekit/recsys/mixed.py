"""Frequency-allocated embedding widths over all tables, and fixed entry masks for training.

Mixed-dimension embeddings (Ginart et al., "Mixed Dimension Embeddings with Application to
Memory-Efficient Recommendation Systems", ISIT 2021) give frequent ids more columns: the width of
id ``i`` is ``min(d, floor(lam * count_i ** alpha))``, with one ``lam`` over *all* vector tables
(users and items compete for the same budget) found by bisection so the stored values meet the
size target. ``alpha`` is the popularity exponent (Ginart et al. use 0.1-0.5; ``alpha=0`` is a
uniform width, large ``alpha`` approaches row pruning by frequency: frequent ids keep every
column, rare ids none). Ids at width 0 read a zero vector (with MF their own bias still
scores them) — or a shared fallback row when ``fallback=True``.

Each id keeps a *prefix* of its table's columns in one order per coupled group (the columns of
the group sorted by the structural criterion, most important first), so two ids meeting in a
dot product share their first ``min(w_u, w_i)`` columns. Tables of width 1 (MF biases) are kept
whole and count toward the size.

:class:`EntryMasks` holds fixed masks during (re)training: it re-zeroes the pruned entries
before every optimizer step (an ``on_step`` hook of the trainers), and :meth:`EntryMasks.finish`
stores the tables as CSR.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunekit.importance.structured import GROUP_CRITERIA
from prunekit.recsys.dims import _slice_refs, group_width
from prunekit.recsys.entries import masked_csr, table_mode
from prunekit.recsys.tables import SparseEmbedding


def frequency_widths(counts: dict[str, Tensor], dims: dict[str, int], budget: float,
                     alpha: float) -> dict[str, Tensor]:
    """Width per id of each table, ``min(d, floor(lam * count ** alpha))`` with the largest
    ``lam`` whose total width fits ``budget`` stored values.

    Raises:
        ValueError: ``alpha`` negative or ``budget`` negative.
    """
    if alpha < 0:
        raise ValueError(f"frequency_widths: alpha must be >= 0, got {alpha}")
    if budget < 0:
        raise ValueError(f"frequency_widths: budget must be >= 0, got {budget}")
    base = {n: (c.double() + 1.0) ** alpha for n, c in counts.items()}

    def widths(lam: float) -> dict[str, Tensor]:
        return {n: torch.clamp(torch.floor(lam * b), 0, dims[n]).long() for n, b in base.items()}

    lo, hi = 0.0, max(dims.values()) / min(float(b.min()) for b in base.values()) + 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        total = sum(int(w.sum()) for w in widths(mid).values())
        lo, hi = (mid, hi) if total <= budget else (lo, mid)
    return widths(lo)


def column_order(model: nn.Module, criterion: str = "l2") -> dict[str, Tensor]:
    """Columns of each table, most important first, one order per coupled group."""
    score_fn = GROUP_CRITERIA.get(criterion)
    gen = torch.Generator().manual_seed(0)
    out: dict[str, Tensor] = {}
    for group in model.dim_groups():
        width = group_width(model, group)
        scores = score_fn(_slice_refs(model, group, width), width, None, gen)
        order = torch.argsort(scores, descending=True, stable=True)
        for path, _axis, _off in group:
            table = path.rpartition(".")[0]
            if isinstance(model.get_submodule(table), (nn.Embedding, nn.EmbeddingBag)):
                out.setdefault(table, order)
    return out


def prefix_masks(widths: dict[str, Tensor], dims: dict[str, int],
                 order: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Bool masks keeping each id's first ``width`` columns of ``order`` (default 0, 1, ...)."""
    out = {}
    for name, w in widths.items():
        cols = torch.arange(dims[name]) if order is None or name not in order else order[name]
        rank = torch.empty_like(cols)
        rank[cols] = torch.arange(cols.numel())
        out[name] = rank.unsqueeze(0) < w.unsqueeze(1)
    return out


def mixed_masks(model: nn.Module, counts: dict[str, Tensor], ratio: float, alpha: float,
                criterion: str = "l2") -> dict[str, Tensor]:
    """Masks of every table in ``counts`` removing ``ratio`` of their values: width-1 tables
    whole, the others by :func:`frequency_widths` in :func:`column_order`."""
    tables = {n: model.get_submodule(n) for n in counts}
    total = sum(t.weight.numel() for t in tables.values())
    whole = {n for n, t in tables.items() if t.weight.shape[1] == 1}
    budget = (1.0 - ratio) * total - sum(tables[n].weight.numel() for n in whole)
    if budget < 0:
        raise ValueError(f"mixed: ratio {ratio} leaves fewer values than the width-1 tables "
                         f"{sorted(whole)} hold")
    dims = {n: t.weight.shape[1] for n, t in tables.items() if n not in whole}
    widths = frequency_widths({n: counts[n] for n in dims}, dims, budget, alpha)
    masks = prefix_masks(widths, dims, column_order(model, criterion))
    masks.update({n: torch.ones_like(tables[n].weight, dtype=torch.bool) for n in whole})
    return masks


class EntryMasks:
    """Fixed per-entry masks re-applied before every optimizer step (``on_step`` hook)."""

    def __init__(self, model: nn.Module, masks: dict[str, Tensor]) -> None:
        for name, mask in masks.items():
            w = model.get_submodule(name).weight
            if mask.shape != w.shape:
                raise ValueError(f"EntryMasks: mask of {name!r} is {tuple(mask.shape)}, the "
                                 f"table {tuple(w.shape)}")
        self.model, self.masks = model, {n: m.bool() for n, m in masks.items()}
        self(0)

    def __call__(self, step: int) -> None:
        self.apply()

    def apply(self) -> None:
        """Zero the pruned entries now."""
        with torch.no_grad():
            for name, mask in self.masks.items():
                self.model.get_submodule(name).weight.mul_(mask.to(torch.float32))

    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.masks.values())

    def finish(self) -> dict[str, SparseEmbedding]:
        """Apply the masks and return CSR tables of exactly the masked pattern (not swapped in)."""
        self(0)
        return {n: masked_csr(self.model.get_submodule(n).weight, m,
                              table_mode(self.model.get_submodule(n)))
                for n, m in self.masks.items()}
