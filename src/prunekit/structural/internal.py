"""Scores of the prunable dims that live inside one module (attention heads / KV groups,
LSTM cell units).

A handler exposes them as :class:`~prunekit.handlers.base.InternalGroup` s; units are scored by
the norm of their ``weight_slices`` (L1 or L2 of every tensor slice the unit owns; heads ranked
by importance as in Michel et al., "Are Sixteen Heads Really Better than One?", NeurIPS 2019);
``random`` gives random scores and other criteria fall back to L1. The planner
(:mod:`prunekit.structural.plan`) ranks them together with the channel groups.
"""

from __future__ import annotations

import torch
from torch import Tensor


def unit_scores(group, criterion: str, gen: torch.Generator | None = None) -> Tensor:
    """One score per unit of ``group`` (higher = more important)."""
    if criterion == "random":
        return torch.rand(group.size, generator=gen)
    power = 2 if criterion == "l2" else 1
    score = torch.zeros(group.size)
    for t, axis in group.weight_slices:
        per = t.detach().float().movedim(axis, 0).reshape(group.size, -1)
        score += per.abs().pow(power).sum(1).cpu()
    return score
