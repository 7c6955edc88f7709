"""plan_structured: trace, score, select — nothing is mutated until ``plan.apply()``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from prunekit.config import TargetSpec
from prunekit.graph.dependency import DependencyGraph
from prunekit.handlers.base import PruneError
from prunekit.importance.structured import score_group, unit_scores
from prunekit.structural.select import (
    CostModel, bisect, group_rounding, group_weights, select_global, select_local,
)
from prunekit.structural.scoring import (
    calibration_stats,
    group_slices,
    has_internal_cost,
    internal_params,
    internal_units,
)
from prunekit.structural.apply import trial
from prunekit.structural.time_proxy import ESTIMATE_MAX_EXTRA, estimated_time_weights
from prunekit.structural.result import StructuredConfig, StructuredPlan
from prunekit.structural.value_trial import localize, values_match


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
    for (_, ig), m, s in zip(internal, masks, scores, strict=True):
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
    time_weights: (Callable[[tuple[str, ...]], float] | Mapping[str, float]
                   | Literal["estimate"] | None) = "estimate",
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
        round_to: kept channels per group rounded up to a multiple of this. ``None``: global
            scope keeps ``select.hardware_multiple`` widths (nearest), local the exact ratio.
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
        time_weights: global scope only: time saved per removed unit relative to MACs, per
            group (``select_global``). ``"estimate"`` (default): the analytic layer-time
            model of :mod:`prunekit.structural.time_proxy`. A callable gets the group's module
            names, producers first (``"<module>:<dim>"`` inside one module, e.g. heads); a
            mapping gives a weight per module name (first found, else 1.0), e.g. measured
            :func:`prunekit.bench.width_tables.module_time_weights`. ``None``: MACs only.

    Returns:
        A :class:`StructuredPlan`; call ``.summary()``, ``.apply()``.

    Raises:
        ValueError: bad option, excluded name not found, inputs that do not run the model.
    """
    cfg = StructuredConfig(criterion, ratio, scope, round_to, tuple(exclude), target,
                           per_layer_min, per_layer_max, seed)
    time_weights = _checked_time_weights(time_weights, cfg.scope)

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
            _after_failed_trial(plan, err, refuse, freeze, max_refusals)
            continue
        if values_match(plan, pruned):
            plan.checked = True
            return plan
        del pruned
        _freeze_wrong_values(plan, freeze, max_refusals)


def _checked_time_weights(time_weights, scope: str):
    """``time_weights`` as the planner uses it: ``"estimate"`` under global scope only."""
    if isinstance(time_weights, str):
        if time_weights != "estimate":
            raise ValueError(f"time_weights must be 'estimate', a callable, a mapping or None, "
                             f"got {time_weights!r}")
        return "estimate" if scope == "global" else None
    if time_weights is not None and scope == "local":
        raise ValueError("time_weights needs scope='global' (it weighs the global ranking)")
    return time_weights


def _after_failed_trial(plan: StructuredPlan, err: PruneError, refuse: dict[str, str],
                        freeze: dict[str, str], max_refusals: int) -> None:
    """The pruned trial raised: refuse the module it failed in, or freeze the groups that
    make it fail; re-raise ``err`` when neither is possible."""
    if err.module is not None and err.module not in refuse and len(refuse) < max_refusals:
        refuse[err.module] = ("a pruned trial failed there: "
                              f"{str(err).split(': ', 2)[-1][:100]}")
        return
    if err.module is None:  # a handler failed, not the pruned forward: say so
        raise err
    guilty = localize(plan)  # the module's own sizes did not explain it: find groups
    if not guilty or len(freeze) >= 4 * max_refusals:
        raise err
    for name in guilty:
        freeze[name] = f"a pruned trial failed with them: {str(err)[:100]}"


def _freeze_wrong_values(plan: StructuredPlan, freeze: dict[str, str], max_refusals: int) -> None:
    """The pruned trial ran but computed other values: freeze the groups that explain it."""
    guilty = localize(plan)
    if not guilty or len(freeze) >= 4 * max_refusals:
        raise PruneError("the pruned trial computes values other than the masked reference "
                         "(channels zeroed in the dense model) and no single group explains "
                         "it; nothing was pruned")
    for name in guilty:
        freeze[name] = ("pruning these channels changed the outputs beyond the masked "
                        "reference in a trial (e.g. a size read as a number, or a "
                        "permutation the tracer cannot follow)")


def _amount(cfg: StructuredConfig, choose, evaluate, dense: tuple[int, int], all_units: int
            ) -> float:
    """What ``choose`` is given: the ratio (local) or the number of units removed (global),
    bisected on the counted parameters / MACs when the target names one of them."""
    goal = cfg.target
    hi = cfg.per_layer_max if cfg.scope == "local" else float(all_units)
    if goal is not None and goal.ratio is None:
        which = 0 if goal.params is not None else 1
        frac = goal.params if goal.params is not None else goal.macs
        return bisect(lambda v: evaluate(choose(v))[which], 0.0, hi, frac * dense[which],
                      integer=cfg.scope != "local")
    r = goal.ratio if goal is not None else cfg.ratio
    return r if cfg.scope == "local" else r * all_units


def _estimate_caps(cfg: StructuredConfig, choose, evaluate, dense: tuple[int, int],
                   all_units: int) -> list[int]:
    """Per-group removal caps of the estimate-weighted plan: what the MACs-only plan for the
    same target removes, plus ``ESTIMATE_MAX_EXTRA`` of the group's units."""
    plain = choose(_amount(cfg, lambda x: choose(x, None), evaluate, dense, all_units), None)
    return [int(m.sum()) + int(ESTIMATE_MAX_EXTRA * m.numel()) for m in plain]


def _plan_once(model: nn.Module, example_inputs: Any, cfg: StructuredConfig,
               refuse: dict[str, str], calib_data, loss_fn, max_batches,
               freeze: dict[str, str] | None = None, time_weights=None) -> StructuredPlan:
    freeze = freeze or {}
    graph = DependencyGraph.build(model, example_inputs, cfg.exclude, refuse,
                                  {k: v for k, v in freeze.items() if "::" not in k})
    refs = [group_slices(graph, g) for g in graph.groups]
    internal = [(n, ig) for n, ig in internal_units(graph) if f"{n}::internal" not in freeze]
    stats = calibration_stats(model, graph, refs, internal, cfg, calib_data, loss_fn, max_batches)
    gen = torch.Generator().manual_seed(cfg.seed)
    scores = [score_group(cfg.criterion, r, g.size, stats, gen) for r, g in zip(refs, graph.groups, strict=True)]
    offsets, total = [], 0
    for g in graph.groups:
        offsets.append(total)
        total += g.size
    cost = CostModel(graph, offsets, total)
    scores += [unit_scores(ig, cfg.criterion, gen, stats).float() for _, ig in internal]
    widths = [int(g.widths[0]) if g.widths is not None and g.size else 1 for g in graph.groups]
    rounds = group_rounding(cfg, [g.size * w for g, w in zip(graph.groups, widths, strict=True)])
    widths, rounds = widths + [1] * len(internal), rounds + [1] * len(internal)  # heads: none
    n_graph = len(graph.groups)
    names = [tuple(dict.fromkeys([*g.producers, *g.members])) for g in graph.groups]
    names += [(f"{n}:{ig.name}",) for n, ig in internal]
    if time_weights == "estimate":
        tw = estimated_time_weights(cost, offsets, [g.size for g in graph.groups])
        tw += [1.0] * len(internal)
    else:
        tw = group_weights(time_weights, names)

    def choose(x: float, weights: list[float] | None, caps: list[int] | None = None
               ) -> list[Tensor]:
        if cfg.scope == "local":
            return select_local(scores, x, cfg.per_layer_min, cfg.per_layer_max, rounds, widths)
        return select_global(scores, int(round(x)), cfg.per_layer_min, cfg.per_layer_max,
                             rounds, widths, weights, cfg.scope == "global", cfg.round_to is None,
                             caps)

    exact = {n for n, _ in internal if has_internal_cost(graph.leaves[n])}

    def evaluate(masks: list[Tensor]) -> tuple[int, int]:
        flat = torch.cat(masks[:n_graph]) if n_graph else torch.zeros(0, dtype=torch.bool)
        kept: dict[str, dict[str, int]] = {}
        share = 0
        for (name, ig), m in zip(internal, masks[n_graph:], strict=True):
            if name in exact:
                kept.setdefault(name, {})[ig.name] = int((~m).sum())
            else:  # no exact formula: remove the group's weight share
                share += int(internal_params(ig) * float(m.float().mean()))
        params, macs = cost.evaluate(flat, kept)
        return params - share, macs

    all_units = total + sum(ig.size for _, ig in internal)
    dense = evaluate([torch.zeros(s.numel(), dtype=torch.bool) for s in scores])
    caps = (_estimate_caps(cfg, choose, evaluate, dense, all_units)
            if time_weights == "estimate" else None)
    masks = choose(_amount(cfg, lambda x: choose(x, tw, caps), evaluate, dense, all_units), tw,
                   caps)
    _ensure_nonempty(graph, masks, scores)
    _internal_minimum(internal, masks[n_graph:], scores[n_graph:])
    keep_internal = {}
    for (name, ig), m in zip(internal, masks[n_graph:], strict=True):
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
