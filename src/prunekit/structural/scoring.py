"""What the structural criteria score: the tensor slices of every coupled group, the units
inside modules (heads) and the calibration statistics. The scores themselves come from
:mod:`prunekit.importance.structured` (one home of every criterion, channels and heads)."""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.graph.dependency import DependencyGraph, Group
from prunekit.handlers.base import InternalGroup
from prunekit.importance.structured import (
    NEEDS,
    GroupStats,
    SliceRef,
    check_unit_criterion,
    collect_group_stats,
)
from prunekit.structural.result import StructuredConfig
from prunekit.structural.select import free_axis


def group_slices(graph: DependencyGraph, grp: Group) -> list[SliceRef]:
    """The slices each unit of ``grp`` owns, in every member and free parameter."""
    refs: list[SliceRef] = []
    for name in grp.members:
        rec = graph.leaves[name]
        h, m = rec.handler, rec.module
        sides = [("out", graph.in_roots[name])] if rec.coupled else [
            ("out", graph.out_roots[name]), ("in", graph.in_roots[name])]
        for side, roots in sides:
            if roots is None:
                continue
            units = graph.unit_index(roots, grp.index)
            if not bool((units >= 0).any()):
                continue
            kind = "in" if side == "in" else "out"
            if kind == "in":
                refs.append(SliceRef(name, m, "in", None, 0, units))
            for p, ax in h.weight_slices(m, side):
                if p is not None and p.dim() > ax and p.shape[ax] == units.numel():
                    refs.append(SliceRef(name, m, kind, p, ax, units))
    for fp, roots in zip(graph.free, graph.free_roots, strict=True):
        ax = free_axis(roots)
        if ax is None:
            continue
        line = roots.movedim(ax, 0).reshape(roots.shape[ax], -1)[:, 0]
        units = graph.unit_index(line, grp.index)
        if bool((units >= 0).any()):
            refs.append(SliceRef(fp.name, None, "param", fp.tensor, ax, units))
    return refs


def internal_units(graph: DependencyGraph) -> list[tuple[str, InternalGroup]]:
    """Dims living inside one module (attention heads, ...) from the handlers."""
    out = []
    for name, rec in graph.leaves.items():
        if name in graph.excluded or rec.external or rec.calls == 0:
            continue
        for ig in rec.handler.internal_groups(rec.module):
            if ig.size > 1:
                out.append((name, ig))
    return out


def internal_params(ig: InternalGroup) -> int:
    """Parameters the units of ``ig`` own (the share removed with them when the handler has no
    exact ``internal_cost``)."""
    return sum(p.numel() for p, _ in ig.weight_slices)


def has_internal_cost(rec) -> bool:
    """Whether the handler of leaf ``rec`` gives exact costs with internal units pruned."""
    return rec.handler.internal_cost(rec.module, None, None, {}) is not None


def calibration_stats(model: nn.Module, graph: DependencyGraph, groups_refs: list[list[SliceRef]],
                      internal: list[tuple[str, InternalGroup]], cfg: StructuredConfig,
                      calib_data, loss_fn, max_batches) -> GroupStats | None:
    """Run the calibration batches the criterion needs (none: ``None``); the ``taylor``
    statistics cover the channel slices and the tensors of the internal units."""
    check_unit_criterion(cfg.criterion, [n for n, _ in internal])  # before any calibration
    needs = NEEDS.get(cfg.criterion, frozenset())
    if not needs:
        return None
    if calib_data is None:
        raise ValueError(f"criterion {cfg.criterion!r} needs calib_data= (batches of inputs"
                         f"{', target' if 'grad' in needs else ''})")
    consumers = {n: (r.module, r.in_dim) for n, r in graph.leaves.items()
                 if not r.coupled and graph.in_roots.get(n) is not None}
    params = {id(r.param): r.param for refs in groups_refs for r in refs if r.param is not None}
    owners = _view_owners(model, internal)  # internal slices are often views of a parameter
    params.update((id(p), p) for _, p in owners.values())
    stats = collect_group_stats(model, consumers, list(params.values()), calib_data, needs,
                                loss_fn, max_batches)
    for key, (t, p) in owners.items():  # the same view of the parameter's w * grad
        acc = stats.taylor.get(id(p))
        if key not in stats.taylor and acc is not None and acc.shape == p.shape \
                and acc.is_contiguous() and p.is_contiguous():
            stats.taylor[key] = acc.as_strided(t.shape, t.stride(),
                                               t.storage_offset() - p.storage_offset())
    return stats


def _view_owners(model: nn.Module, internal: list[tuple[str, InternalGroup]]
                 ) -> dict[int, tuple[Tensor, Tensor]]:
    """``{id(slice tensor): (slice tensor, the parameter whose storage it views)}``."""
    by_storage = {p.untyped_storage().data_ptr(): p for p in model.parameters()}
    out = {}
    for _, ig in internal:
        for t, _ in ig.weight_slices:
            p = by_storage.get(t.untyped_storage().data_ptr())
            if p is not None:
                out[id(t)] = (t, p)
    return out
