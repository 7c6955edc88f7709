"""Plan the prunable dims that live inside one module (attention heads / KV groups, LSTM cells).

A handler exposes them as :class:`~prunekit.handlers.base.InternalGroup` s; they are coupled to
nothing outside the module, so each is selected on its own: units are scored by the norm of
their ``weight_slices`` (L1 or L2 of every tensor slice the unit owns; Michel et al., "Are
Sixteen Heads Really Better than One?", NeurIPS 2019, prune heads the same way by importance)
and the same removal fraction as the channel groups is applied (bounded by ``per_layer_max``,
at least one unit always kept). Other criteria fall back to L1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from prunekit.handlers.base import call_opt


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


def n_keep(size: int, ratio: float, per_layer_max: float) -> int:
    """Units kept when removing ``ratio`` of ``size`` (never more than ``per_layer_max``)."""
    remove = min(math.floor(size * ratio), math.floor(size * per_layer_max), size - 1)
    return size - max(remove, 0)


def plan_internal(graph, cfg) -> dict[str, dict[str, Tensor]]:
    """``leaf name -> {group name: kept unit indices}`` for every internal group to shrink."""
    ratio = cfg.target.ratio if cfg.target is not None and cfg.target.ratio is not None \
        else cfg.ratio
    gen = torch.Generator().manual_seed(cfg.seed)
    out: dict[str, dict[str, Tensor]] = {}
    for name, rec in graph.leaves.items():
        if rec.external or _excluded(name, cfg.exclude):
            continue
        for g in call_opt(rec.handler, "internal_groups", rec.module, default=[]) or []:
            k = n_keep(g.size, ratio, cfg.per_layer_max)
            if k >= g.size:
                continue
            keep = torch.topk(unit_scores(g, cfg.criterion, gen), k).indices.sort().values
            out.setdefault(name, {})[g.name] = keep
    return out


def _excluded(name: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(name == p or name.startswith(p + ".") or fnmatch(name, p) for p in patterns)


def add_internal_edits(plan, graph) -> None:
    """Merge :func:`plan_internal` into ``plan.edits`` (creating edits for untouched leaves)."""
    from prunekit.structural.plan import LayerEdit

    internal = plan_internal(graph, plan.config)
    by_name = {e.name: e for e in plan.edits}
    for name, groups in internal.items():
        e = by_name.get(name)
        if e is None:
            rec = graph.leaves[name]
            h, m = rec.handler, rec.module
            e = LayerEdit(name, type(m).__name__, rec.coupled, h.in_channels(m),
                          h.out_channels(m), None, None, rec.in_dim, rec.out_dim,
                          bool(call_opt(h, "masking_is_exact", m, default=True)))
            plan.edits.append(e)
        e.internal.update(groups)
