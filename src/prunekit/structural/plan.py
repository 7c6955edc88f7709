"""plan_structured: trace, score, select — nothing is mutated until ``plan.apply()``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.config import TargetSpec
from prunekit.graph.dependency import DependencyGraph, Group
from prunekit.handlers.base import InternalGroup, PruneError, call_opt
from prunekit.importance.structured import (
    GROUP_CRITERIA,
    NEEDS,
    GroupStats,
    SliceRef,
    collect_group_stats,
)

from prunekit.structural.select import (
    CostModel,
    bisect,
    free_axis,
    group_rounding,
    group_weights,
    select_global,
    select_local,
)
from prunekit.structural.internal import unit_scores  # L1/L2 of the unit's slices
from prunekit.structural.apply import trial
from prunekit.structural.result import StructuredConfig, StructuredPlan
from prunekit.structural.verify import compare, compare_fp64, runs


def _slices(graph: DependencyGraph, grp: Group) -> list[SliceRef]:
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
    for fp, roots in zip(graph.free, graph.free_roots):
        ax = free_axis(roots)
        if ax is None:
            continue
        line = roots.movedim(ax, 0).reshape(roots.shape[ax], -1)[:, 0]
        units = graph.unit_index(line, grp.index)
        if bool((units >= 0).any()):
            refs.append(SliceRef(fp.name, None, "param", fp.tensor, ax, units))
    return refs


def _score_fn(name: str):
    fn = GROUP_CRITERIA.get(name)

    def score(refs, size, stats, gen):
        return fn([r for r in refs if r.param is not None or r.kind == "in"], size, stats, gen)

    return score


def _stats(model, graph, groups_refs, cfg, calib_data, loss_fn, max_batches) -> GroupStats | None:
    needs = NEEDS.get(cfg.criterion, frozenset())
    if not needs:
        return None
    if calib_data is None:
        raise ValueError(f"criterion {cfg.criterion!r} needs calib_data= (batches of inputs"
                         f"{', target' if 'grad' in needs else ''})")
    consumers = {n: (r.module, r.in_dim) for n, r in graph.leaves.items()
                 if not r.coupled and graph.in_roots.get(n) is not None}
    params = {id(r.param): r.param for refs in groups_refs for r in refs if r.param is not None}
    return collect_group_stats(model, consumers, list(params.values()), calib_data, needs,
                               loss_fn, max_batches)


def _internal(graph: DependencyGraph) -> list[tuple[str, InternalGroup]]:
    """Dims living inside one module (attention heads, ...) from the handlers."""
    out = []
    for name, rec in graph.leaves.items():
        if name in graph.excluded or rec.external or rec.calls == 0:
            continue
        for ig in call_opt(rec.handler, "internal_groups", rec.module, default=[]) or []:
            if ig.size > 1:
                out.append((name, ig))
    return out


def _internal_scores(ig: InternalGroup, criterion: str, gen: torch.Generator) -> Tensor:
    return unit_scores(ig, criterion, gen).float()


def _internal_params(ig: InternalGroup) -> int:
    return sum(p.numel() for p, _ in ig.weight_slices)


def _ensure_nonempty(graph: DependencyGraph, masks: list[Tensor], scores: list[Tensor]) -> None:
    """No module may lose all its channels on one side: give back its best unit."""
    if not masks:
        return
    offsets = torch.tensor([0] + [m.numel() for m in masks]).cumsum(0)
    flat_mask, flat_score = torch.cat(masks), torch.cat(scores)
    glob = graph.global_index(offsets)
    for name in graph.leaves:
        for roots in (graph.out_roots[name], graph.in_roots[name]):
            if roots is None or roots.numel() == 0:
                continue
            idx = glob[roots]
            if bool((idx < 0).any()) or not bool(flat_mask[idx].all()):
                continue
            best = int(idx[int(torch.argmax(flat_score[idx]))])
            flat_mask[best] = False
            g = int(torch.searchsorted(offsets, best, right=True)) - 1
            masks[g][best - int(offsets[g])] = False


def _internal_minimum(internal, masks: list[Tensor], scores: list[Tensor]) -> None:
    """Give back the best removed units where a handler needs a minimum (``min_keep``: an
    LSTM keeps more cell units than its projection size)."""
    for (_, ig), m, s in zip(internal, masks, scores):
        need = int(ig.extra.get("min_keep", 1)) - int((~m).sum())
        if need > 0:
            removed = torch.nonzero(m).flatten()
            best = removed[torch.argsort(s[removed], descending=True, stable=True)[:need]]
            m[best] = False


def plan_structured(
    model: nn.Module,
    example_inputs: Any,
    criterion: str = "l1",
    ratio: float = 0.5,
    scope: str = "local",
    round_to: int | None = None,
    exclude: Iterable[str] = (),
    target: TargetSpec | None = None,
    per_layer_min: float = 0.0,
    per_layer_max: float = 0.9,
    calib_data: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    max_batches: int | None = None,
    seed: int = 0,
    check: bool = True,
    max_refusals: int = 8,
    time_weights: Callable[[tuple[str, ...]], float] | Mapping[str, float] | None = None,
) -> StructuredPlan:
    """Plan structural (channel) pruning of ``model``; the model is not modified.

    Args:
        model: any eager ``nn.Module``; modules with a registered handler are pruned.
        example_inputs: one batch (tensor, tuple of positional args or dict of kwargs).
        criterion: group criterion (``l1``, ``l2``, ``bn_scale``, ``random``, ``taylor``,
            ``activation``, ``apoz``).
        ratio: fraction of each group's channels removed (``scope='local'``) or of all
            prunable channels ranked together after per-group normalisation (``'global'``) or
            on their raw scores, one threshold for the whole model (``'threshold'``, as
            Network Slimming ranks BatchNorm scales).
        round_to: kept channels per group are rounded up to a multiple of this. ``None``:
            global/threshold scope keeps multiples the hardware likes (16; 32 from 256
            channels: ``select.hardware_multiple``), local scope the ratio exactly.
        exclude: module names/globs never modified.
        target: ``TargetSpec(params=f)`` / ``TargetSpec(macs=f)`` keeps the fraction ``f`` of
            the counted parameters / MACs (overrides ``ratio``), or ``TargetSpec(ratio=r)``.
        per_layer_min: lower bound of the fraction removed from any group.
        per_layer_max: upper bound of the fraction removed from any group.
        calib_data: calibration batches for ``taylor`` / ``activation`` / ``apoz``.
        loss_fn: the loss for ``taylor``.
        max_batches: how many calibration batches to use.
        check: apply the plan to a copy that shares the model's parameters (so it costs only
            the pruned tensors) and run the example inputs through it before returning.
            If the pruned copy fails inside a module (typically a reshape with sizes written
            as constants in the model's code), the channels reshaped/split in that module are
            made unprunable and the plan is recomputed (at most ``max_refusals`` times).
        time_weights: global scope only: measured time saved per removed unit relative to
            what MACs predict, per group (see ``select_global``). A callable gets the group's
            module names, producers first (``"<module>:<dim>"`` for dims inside one module,
            e.g. heads) and returns a weight > 0; a mapping gives a weight per module name (a
            group takes that of its first name found there, 1.0 if none). Measured tables give
            one: :func:`prunekit.bench.width_tables.module_time_weights`. ``None``: unweighted.

    Returns:
        A :class:`StructuredPlan`; call ``.summary()``, ``.apply()``.

    Raises:
        ValueError: bad option, excluded name not found, inputs that do not run the model.
    """
    cfg = StructuredConfig(criterion, ratio, scope, round_to, tuple(exclude), target,
                           per_layer_min, per_layer_max, seed)
    if time_weights is not None and cfg.scope == "local":
        raise ValueError("time_weights needs scope='global' (it weighs the global ranking)")

    refuse: dict[str, str] = {}
    freeze: dict[str, str] = {}
    while True:
        plan = _plan_once(model, example_inputs, cfg, refuse, calib_data, loss_fn, max_batches,
                          freeze, time_weights)
        if not check or not plan.edits:
            return plan
        try:  # trial on a copy: catches reshapes with sizes hard-coded in the model's code
            pruned = trial(plan)
        except PruneError as err:
            if err.module is not None and err.module not in refuse and len(refuse) < max_refusals:
                refuse[err.module] = ("a pruned trial failed there: "
                                      f"{str(err).split(': ', 2)[-1][:100]}")
                continue
            if err.module is None:  # a handler failed, not the pruned forward: say so
                raise
            guilty = _localize(plan)  # the module's own sizes did not explain it: find groups
            if not guilty or len(freeze) >= 4 * max_refusals:
                raise
            for name in guilty:
                freeze[name] = f"a pruned trial failed with them: {str(err)[:100]}"
            continue
        if _values_match(plan, pruned):
            plan.checked = True
            return plan
        del pruned
        guilty = _localize(plan)
        if not guilty or len(freeze) >= 4 * max_refusals:
            raise PruneError("the pruned trial computes values other than the masked reference "
                             "(channels zeroed in the dense model) and no single group explains "
                             "it; nothing was pruned")
        for name in guilty:
            freeze[name] = ("pruning these channels changed the outputs beyond the masked "
                            "reference in a trial (e.g. a size read as a number, or a "
                            "permutation the tracer cannot follow)")


_TRIAL_ATOL, _TRIAL_RTOL = 1e-5, 1e-4
_CLEAR_RTOL = 1e-6  # below this (relative to the outputs) fp32 rounding explains a difference
_FP64_MAX_PARAMS = 50_000_000  # larger models: the fp32 comparison decides alone


def _values_match(plan: StructuredPlan, pruned: nn.Module) -> bool:
    """Values, not only shapes: the pruned copy against the masked dense model on the example
    inputs and on a perturbed copy of them (a channel that happens to be zero on the example
    would hide a wrong model), in fp32, and in float64 when the fp32 difference is small but
    not clearly rounding (a size read as a number that scales the outputs by a few per mille
    must not pass)."""
    inputs = [plan.example_inputs]
    if sum(p.numel() for p in plan.model.parameters()) <= _FP64_MAX_PARAMS:
        for sign in (1.0, -1.0):  # negated inputs flip which ReLUs are dead
            other = _perturbed(plan.example_inputs, sign)
            if other is not None and runs(plan.model, other):
                inputs.append(other)
    return all(_match_on(plan, pruned, x) for x in inputs)


def _match_on(plan: StructuredPlan, pruned: nn.Module, x: Any) -> bool:
    try:
        res = compare(plan.model, plan, pruned, x, _TRIAL_ATOL, _TRIAL_RTOL, share=True)
        if not res.ok:
            return False
        if res.max_abs_diff <= _CLEAR_RTOL * max(res.max_abs_ref, 1.0):
            return True
        if sum(p.numel() for p in plan.model.parameters()) > _FP64_MAX_PARAMS:
            return True
        return compare_fp64(plan.model, plan, pruned, x).ok
    except Exception:  # the reference itself cannot be built: not proven right
        return False


def _perturbed(x: Any, sign: float = 1.0) -> Any:
    """``sign`` times the floating tensors, plus seeded noise of their own scale; ``None`` if
    there are none."""
    gen = torch.Generator().manual_seed(1234)
    found = []

    def walk(v: Any) -> Any:
        if isinstance(v, Tensor) and v.is_floating_point() and v.numel():
            found.append(v)
            noise = torch.randn(v.shape, generator=gen, dtype=v.dtype).to(v.device)
            return sign * v + noise * (v.detach().float().std().nan_to_num(1.0).item() + 1e-3)
        if isinstance(v, (tuple, list)):
            return type(v)(walk(a) for a in v)
        if isinstance(v, dict) and type(v) is dict:
            return {k: walk(a) for k, a in v.items()}
        return v

    out = walk(x)
    return out if found else None


def _localize(plan: StructuredPlan) -> list[str]:
    """Names to freeze: the groups (or modules' internal groups) whose pruning *alone* gives
    values other than the masked reference, found by bisection over the pruned groups."""
    only = plan._only  # type: ignore[attr-defined]

    def bad(cands: list) -> bool:
        sub = only(cands)
        if not sub.edits:
            return False
        try:
            return not _values_match(sub, trial(sub))
        except PruneError:
            return True

    def search(cands: list) -> list:
        if not bad(cands):
            return []
        if len(cands) == 1:
            return cands
        half = len(cands) // 2
        found = search(cands[:half]) + search(cands[half:])
        return found or cands  # only the combination fails: freeze all of it

    found = search(list(plan._candidates))  # type: ignore[attr-defined]
    return [n for c in found for n in plan._names(c)]  # type: ignore[attr-defined]


def _plan_once(model: nn.Module, example_inputs: Any, cfg: StructuredConfig,
               refuse: dict[str, str], calib_data, loss_fn, max_batches,
               freeze: dict[str, str] | None = None, time_weights=None) -> StructuredPlan:
    freeze = freeze or {}
    graph = DependencyGraph.build(model, example_inputs, cfg.exclude, refuse,
                                  {k: v for k, v in freeze.items() if "::" not in k})
    refs = [_slices(graph, g) for g in graph.groups]
    stats = _stats(model, graph, refs, cfg, calib_data, loss_fn, max_batches)
    gen = torch.Generator().manual_seed(cfg.seed)
    score = _score_fn(cfg.criterion)
    scores = [score(r, g.size, stats, gen).float() for r, g in zip(refs, graph.groups)]
    offsets, total = [], 0
    for g in graph.groups:
        offsets.append(total)
        total += g.size
    cost = CostModel(graph, offsets, total)
    internal = [(n, ig) for n, ig in _internal(graph) if f"{n}::internal" not in freeze]
    scores += [_internal_scores(ig, cfg.criterion, gen) for _, ig in internal]
    widths = [int(g.widths[0]) if g.widths is not None and g.size else 1 for g in graph.groups]
    rounds = group_rounding(cfg, [g.size * w for g, w in zip(graph.groups, widths)])
    widths, rounds = widths + [1] * len(internal), rounds + [1] * len(internal)  # heads: none
    n_graph = len(graph.groups)
    names = [tuple(dict.fromkeys([*g.producers, *g.members])) for g in graph.groups]
    names += [(f"{n}:{ig.name}",) for n, ig in internal]
    tw = group_weights(time_weights, names)

    def choose(x: float) -> list[Tensor]:
        if cfg.scope == "local":
            return select_local(scores, x, cfg.per_layer_min, cfg.per_layer_max, rounds, widths)
        return select_global(scores, int(round(x)), cfg.per_layer_min, cfg.per_layer_max,
                             rounds, widths, tw, cfg.scope == "global", cfg.round_to is None)

    def evaluate(masks: list[Tensor]) -> tuple[int, int]:
        flat = torch.cat(masks[:n_graph]) if n_graph else torch.zeros(0, dtype=torch.bool)
        kept: dict[str, dict[str, int]] = {}
        share = 0
        for (name, ig), m in zip(internal, masks[n_graph:]):
            if hasattr(graph.leaves[name].handler, "internal_cost"):
                kept.setdefault(name, {})[ig.name] = int((~m).sum())
            else:  # no exact formula: remove the group's weight share
                share += int(_internal_params(ig) * float(m.float().mean()))
        params, macs = cost.evaluate(flat, kept)
        return params - share, macs

    all_units = total + sum(ig.size for _, ig in internal)
    dense = evaluate([torch.zeros(s.numel(), dtype=torch.bool) for s in scores])
    goal = cfg.target
    hi = cfg.per_layer_max if cfg.scope == "local" else float(all_units)
    if goal is not None and goal.ratio is None:
        which = 0 if goal.params is not None else 1
        frac = goal.params if goal.params is not None else goal.macs
        x = bisect(lambda v: evaluate(choose(v))[which], 0.0, hi, frac * dense[which],
                   integer=cfg.scope != "local")
    else:
        r = goal.ratio if goal is not None else cfg.ratio
        x = r if cfg.scope == "local" else r * all_units
    masks = choose(x)
    _ensure_nonempty(graph, masks, scores)
    _internal_minimum(internal, masks[n_graph:], scores[n_graph:])
    keep_internal = {}
    for (name, ig), m in zip(internal, masks[n_graph:]):
        if bool(m.any()):
            keep_internal.setdefault(name, {})[ig.name] = torch.nonzero(~m).flatten()

    plan = StructuredPlan.build(model, example_inputs, cfg, graph, scores[:n_graph],
                                masks[:n_graph], dense, evaluate(masks), keep_internal)

    def only(cands: list) -> StructuredPlan:
        """The same plan restricted to some groups (index) / internal groups (name)."""
        sub = [m if i in cands else torch.zeros_like(m) for i, m in enumerate(masks[:n_graph])]
        ki = {n: v for n, v in keep_internal.items() if n in cands}
        return StructuredPlan.build(model, example_inputs, cfg, graph, scores[:n_graph], sub,
                                    dense, dense, ki)

    plan._only = only  # type: ignore[attr-defined]
    plan._candidates = [i for i, m in enumerate(masks[:n_graph]) if bool(m.any())] + sorted(
        keep_internal)  # type: ignore[attr-defined]
    plan._names = lambda c: (graph.groups[c].producers if isinstance(c, int)  # type: ignore
                             else [f"{c}::internal"])
    return plan
