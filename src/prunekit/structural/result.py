"""The plan types: the planner's validated options, the per-layer and per-parameter edits, and
:class:`StructuredPlan` — what a structural pruning would do, readable before anything changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.config import TargetSpec, check_ratio, parse_scope
from prunekit.graph.dependency import DependencyGraph
from prunekit.graph.labels import FIXED
from prunekit.importance.structured import GROUP_CRITERIA
from prunekit.structural.select import free_axis
from prunekit.graph.rules import flat_tensors
from prunekit.structural.apply import apply_plan


@dataclass(frozen=True)
class StructuredConfig:
    """Validated options of :func:`plan_structured` (see there)."""

    criterion: str = "l1"
    ratio: float = 0.5
    scope: str = "local"
    round_to: int | None = None
    exclude: tuple[str, ...] = ()
    target: TargetSpec | None = None
    per_layer_min: float = 0.0
    per_layer_max: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        GROUP_CRITERIA.get(self.criterion)
        check_ratio(self.ratio, "ratio")
        object.__setattr__(self, "scope", parse_scope(self.scope).value)
        if self.round_to is not None and (isinstance(self.round_to, bool) or not isinstance(
                self.round_to, int) or self.round_to < 1):
            raise ValueError(f"round_to must be an integer >= 1 or None, got {self.round_to!r}")
        check_ratio(self.per_layer_min, "per_layer_min")
        if not (isinstance(self.per_layer_max, (int, float)) and 0.0 <= self.per_layer_max <= 1.0):
            raise ValueError(f"per_layer_max must be in [0, 1], got {self.per_layer_max!r}")
        if self.per_layer_min > self.per_layer_max:
            raise ValueError("per_layer_min must not exceed per_layer_max")
        if isinstance(self.exclude, str):
            object.__setattr__(self, "exclude", (self.exclude,))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.target is not None and not isinstance(self.target, TargetSpec):
            raise ValueError("target must be a TargetSpec (ratio=, params= or macs=)")
        if self.target is not None and self.target.latency is not None:
            raise ValueError("latency targets are not supported by plan_structured")


@dataclass
class LayerEdit:
    """What happens to one handled module (kept indices; ``None`` = side unchanged)."""

    name: str
    kind: str
    coupled: bool
    in_full: int | None
    out_full: int | None
    keep_in: Tensor | None
    keep_out: Tensor | None
    in_dim: int
    out_dim: int
    exact: bool = True
    internal: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class ParamEdit:
    """A free parameter/buffer sliced along ``axis`` (layer scale, position embedding, ...)."""

    owner: str
    attr: str
    axis: int
    full: int
    keep: Tensor


@dataclass
class GroupReport:
    index: int
    name: str
    producers: list[str]
    size: int
    removed: int
    score_min: float
    score_max: float


@dataclass
class StructuredPlan:
    """The outcome of :func:`prunekit.plan_structured`; ``apply()`` performs it.

    Attributes:
        edits: per handled module, the kept input / output channel indices.
        param_edits: free parameters sliced along one axis.
        groups: per coupled group, units before and removed.
        fixed: ``(module.side, channels, reason)`` for channels that cannot be removed.
        params / macs: ``(dense, planned)`` counts from the handlers' cost formulas.
    """

    model: nn.Module = field(repr=False)
    example_inputs: Any = field(repr=False)
    config: StructuredConfig
    edits: list[LayerEdit]
    param_edits: list[ParamEdit]
    groups: list[GroupReport]
    fixed: list[tuple[str, int, str]]
    params: tuple[int, int]
    macs: tuple[int, int]
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    not_called: list[str] = field(default_factory=list)
    train_output_shapes: list[tuple[int, ...]] | None = None  # training-only branches ran
    output_ragged: list[tuple[int, ...]] = field(default_factory=list)  # data-dependent dims
    train_output_ragged: list[tuple[int, ...]] = field(default_factory=list)
    checked: bool = False  # a copy was pruned and ran the example inputs at planning time

    @classmethod
    def build(cls, model: nn.Module, example_inputs: Any, cfg: StructuredConfig,
              graph: DependencyGraph, scores: list[Tensor], masks: list[Tensor],
              dense: tuple[int, int], planned: tuple[int, int],
              internal: dict[str, dict[str, Tensor]] | None = None) -> StructuredPlan:
        removed = torch.zeros(len(graph.uf), dtype=torch.bool)
        for g, m in zip(graph.groups, masks, strict=True):
            removed[g.units[m]] = True
        internal = internal or {}
        edits = [_edit(graph, name, removed, internal.get(name, {})) for name in graph.leaves]
        edits = [e for e in edits if e is not None]
        pedits = []
        for fp, roots in zip(graph.free, graph.free_roots, strict=True):
            ax = free_axis(roots)
            if ax is None:
                continue
            line = roots.movedim(ax, 0).reshape(roots.shape[ax], -1)[:, 0]
            keep = keep_from_roots(line, removed)
            if len(keep) < line.numel():
                owner, _, attr = fp.name.rpartition(".")
                pedits.append(ParamEdit(owner, attr, ax, line.numel(), keep))
        reports = [GroupReport(g.index, g.name, g.producers, g.size, int(m.sum()),
                               float(s.min()) if s.numel() else 0.0,
                               float(s.max()) if s.numel() else 0.0)
                   for g, m, s in zip(graph.groups, masks, scores, strict=True)]
        fixed, seen = [], set()
        for f in graph.fixed:
            if (f.name, f.reason) not in seen:
                seen.add((f.name, f.reason))
                fixed.append((f"{f.name}.{f.side}", f.channels, f.reason))

        shapes = [tuple(t.shape) for t in flat_tensors(_tuple(graph.result.outputs))]
        idle = [n for n, r in graph.leaves.items() if r.calls == 0]
        train = graph.result.train_outputs
        train_shapes = None if train is None else [
            tuple(t.shape) for t in flat_tensors(_tuple(train))]
        return cls(model, example_inputs, cfg, edits, pedits, reports, fixed,
                   (dense[0], planned[0]), (dense[1], planned[1]), shapes, idle, train_shapes,
                   graph.result.ragged, graph.result.train_ragged)

    # ------------------------------------------------------------------ reading
    def summary(self, max_rows: int = 200) -> str:
        c = self.config
        lines = [f"StructuredPlan: criterion={c.criterion} scope={c.scope} ratio={c.ratio}"
                 + (f" target={c.target}" if c.target else "") + f" round_to={c.round_to or 'auto'}",
                 f"  params {self.params[0]:,} -> {self.params[1]:,} "
                 f"({_pct(self.params)}), MACs {self.macs[0]:,} -> {self.macs[1]:,} "
                 f"({_pct(self.macs)}) [handler-counted]",
                 f"  {len(self.groups)} prunable groups, {len(self.edits)} modules change"]
        lines.append("  groups (units before -> after, score range):")
        for g in self.groups[:max_rows]:
            lines.append(f"    [{g.index}] {g.name}: {g.size} -> {g.size - g.removed} "
                         f"(scores {g.score_min:.3g}..{g.score_max:.3g})")
        lines.append("  modules (in / out channels before -> after):")
        for e in self.edits[:max_rows]:
            extra = "".join(f", {k} kept {len(v)}" for k, v in e.internal.items())
            lines.append(f"    {e.name} ({e.kind}): in {_fmt(e.in_full, e.keep_in)}, "
                         f"out {_fmt(e.out_full, e.keep_out)}{extra}")
        for p in self.param_edits:
            lines.append(f"    {p.owner}.{p.attr}: axis {p.axis} {p.full} -> {len(p.keep)}")
        if self.not_called:
            lines.append(f"  warning: {len(self.not_called)} handled modules were not called on the "
                         f"example inputs, not even with the model's containers in training mode, "
                         f"and are not pruned; if they read pruned channels the pruned model "
                         f"fails where they run (give example inputs on which they run): "
                         f"{', '.join(self.not_called[:8])}{' ...' if len(self.not_called) > 8 else ''}")
        if self.fixed:
            lines.append("  not pruned (why):")
            for name, n, why in self.fixed[:max_rows]:
                lines.append(f"    {name} ({n} ch): {why}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-serialisable description (indices as lists)."""
        return {
            "config": {"criterion": self.config.criterion, "ratio": self.config.ratio,
                       "scope": self.config.scope, "round_to": self.config.round_to,
                       "exclude": list(self.config.exclude),
                       "target": None if self.config.target is None else {
                           k: getattr(self.config.target, k) for k in ("ratio", "params", "macs")
                           if getattr(self.config.target, k) is not None}},
            "params": list(self.params), "macs": list(self.macs),
            "groups": [g.__dict__ | {} for g in self.groups],
            "edits": [{"name": e.name, "kind": e.kind, "in": [e.in_full, _n(e.keep_in, e.in_full)],
                       "out": [e.out_full, _n(e.keep_out, e.out_full)],
                       "keep_in": None if e.keep_in is None else e.keep_in.tolist(),
                       "keep_out": None if e.keep_out is None else e.keep_out.tolist(),
                       "internal": {k: v.tolist() for k, v in e.internal.items()}}
                      for e in self.edits],
            "param_edits": [{"param": f"{p.owner}.{p.attr}", "axis": p.axis, "full": p.full,
                             "keep": p.keep.tolist()} for p in self.param_edits],
            "fixed": [{"name": n, "channels": c, "reason": w} for n, c, w in self.fixed],
            "not_called": list(self.not_called),
        }

    # ------------------------------------------------------------------ acting
    def apply(self, copy: bool = False, validate: bool | None = None) -> nn.Module:
        """Physically remove the planned channels.

        Args:
            copy: prune a deep copy and leave the original alone.
            validate: run the example inputs through the pruned model before committing
                (default: only when the plan was not already tried on a copy, ``checked``).

        Returns:
            The pruned model (the original object when ``copy=False``).

        Raises:
            PruneError: a handler refused or the pruned model does not run; the model is left
                exactly as it was and the message names the module and the operation.
        """

        if validate is None:
            validate = not self.checked
        return apply_plan(self, copy=copy, validate=validate)


def _edit(graph: DependencyGraph, name: str, removed: Tensor,
          internal: dict[str, Tensor]) -> LayerEdit | None:
    rec = graph.leaves[name]
    h, m = rec.handler, rec.module
    out_r, in_r = graph.out_roots[name], graph.in_roots[name]
    keep_in = keep_from_roots(in_r, removed) if in_r is not None else None
    keep_out = keep_in if rec.coupled else (
        keep_from_roots(out_r, removed) if out_r is not None else None)
    cin, cout = h.in_channels(m), h.out_channels(m)
    if keep_in is not None and len(keep_in) == cin:
        keep_in = None
    if keep_out is not None and len(keep_out) == cout:
        keep_out = None
    if keep_in is None and keep_out is None and not internal:
        return None
    return LayerEdit(name, type(m).__name__, rec.coupled, cin, cout, keep_in, keep_out,
                     rec.in_dim, rec.out_dim, bool(h.masking_is_exact(m)),
                     dict(internal))


def _tuple(out: Any) -> Any:
    return out.to_tuple() if hasattr(out, "to_tuple") and callable(out.to_tuple) else out


def _pct(pair: tuple[int, int]) -> str:
    return f"{100.0 * pair[1] / pair[0]:.1f}% kept" if pair[0] else "n/a"


def _n(keep: Tensor | None, full: int | None) -> int | None:
    return full if keep is None else len(keep)


def _fmt(full: int | None, keep: Tensor | None) -> str:
    return "-" if full is None else f"{full}" if keep is None else f"{full} -> {len(keep)}"


def keep_from_roots(roots: Tensor, removed: set[int] | Tensor) -> Tensor:
    """Sorted kept positions: those whose unit is not removed (fixed positions are kept).

    ``removed`` is a set of root ids or a bool tensor indexed by root id.
    """
    if isinstance(removed, Tensor):
        return torch.nonzero(~removed[roots]).flatten()
    keep = [i for i, u in enumerate(roots.tolist()) if u == FIXED or u not in removed]
    return torch.tensor(keep, dtype=torch.long)


