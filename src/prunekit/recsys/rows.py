"""Row pruning of embedding tables: keep the most useful ids, map the rest to one shared
fallback row.

Row criteria (one registered unit each, in :data:`ROW_CRITERIA`; higher = keep):

* ``frequency`` — interactions per id in the training log (the rule behind frequency
  thresholding in production systems and TorchRec's pruning-by-count);
* ``norm`` — L2 norm of the row (small rows contribute little to dot products);
* ``gradient`` — first-order Taylor utility ``sum |w * dL/dw|`` of the row over one pass of the
  training log (Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019).

The pruned table is a :class:`~prunekit.recsys.tables.RemappedEmbedding`: kept rows are copied,
the fallback row holds the mean of the pruned rows, ``remap`` sends every id to its row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunekit._registry import Registry
from prunekit.recsys.tables import RemappedEmbedding


@dataclass(frozen=True)
class RowContext:
    """What a row criterion may read: the table weight, id counts, Taylor utility (or None)."""

    weight: Tensor
    counts: Tensor
    taylor: Tensor | None


RowCriterion = Callable[[RowContext], Tensor]
ROW_CRITERIA: Registry[RowCriterion] = Registry("row criterion")


@ROW_CRITERIA.register("frequency")
def frequency(ctx: RowContext) -> Tensor:
    # ties (e.g. unseen ids) broken by norm so the choice is deterministic and sensible
    norm = ctx.weight.detach().float().norm(dim=1)
    return ctx.counts.double() + norm.double() / (norm.max().double() + 1.0) * 0.5


@ROW_CRITERIA.register("norm")
def norm(ctx: RowContext) -> Tensor:
    return ctx.weight.detach().float().norm(dim=1)


@ROW_CRITERIA.register("gradient")
def gradient(ctx: RowContext) -> Tensor:
    if ctx.taylor is None:
        raise ValueError("row criterion 'gradient' needs gradient statistics of the table")
    return ctx.taylor


def keep_rows(scores: Tensor, ratio: float) -> Tensor:
    """Sorted ids of the ``1 - ratio`` highest-scoring rows (at least one)."""
    n = scores.numel()
    k = max(1, n - int(round(ratio * n)))
    return torch.topk(scores, k, largest=True, sorted=False).indices.sort().values


def remapped_table(table: nn.Module, keep: Tensor) -> RemappedEmbedding:
    """A :class:`RemappedEmbedding` holding ``keep`` rows of ``table`` plus the fallback row.

    Works on ``nn.Embedding``/``nn.EmbeddingBag`` and on an already remapped table (the id
    space stays the original one).
    """
    mode = getattr(table, "mode", None)
    mode = None if isinstance(table, nn.Embedding) else mode
    if isinstance(table, RemappedEmbedding):
        dense = table.weight.detach()[table.remap.long()]
    else:
        dense = table.weight.detach()
    n, d = dense.shape
    pruned = torch.ones(n, dtype=torch.bool)
    pruned[keep] = False
    new = RemappedEmbedding(n, keep.numel() + 1, d, mode=mode).to(dense.device)
    with torch.no_grad():
        new.weight[:-1] = dense[keep]
        new.weight[-1] = dense[pruned].mean(0) if pruned.any() else 0.0
        new.remap[keep] = torch.arange(keep.numel(), dtype=torch.int32)
    return new
