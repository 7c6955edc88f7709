"""DependencyGraph: coupled channel groups built from one traced forward pass.

A *unit* is a class of channel ids that must be removed together (one filter of a plain conv,
the same channel of every conv feeding a residual stream, a whole group of a grouped conv). A
*group* is a set of units that share producers (e.g. every channel of a ResNet stage's residual
stream): ratios apply per group, importance is compared inside a group (local) or across
groups after normalisation (global).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.graph.labels import FIXED
from prunekit.graph.trace import FreeParam, LeafRecord, TraceResult, trace


@dataclass
class Group:
    """Coupled channels: ``units`` are the removable classes, ``producers`` make them.

    Attributes:
        index: position in :attr:`DependencyGraph.groups`.
        units: ``(U,)`` class representatives (root ids), in producer channel order.
        producers: names of the modules whose output channels are these units.
        members: names of every module that is sliced when a unit is removed.
        widths: ``(U,)`` channels per unit in the first producer (1 normally).
    """

    index: int
    units: Tensor
    producers: list[str]
    members: list[str] = field(default_factory=list)
    widths: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.units.numel())

    @property
    def name(self) -> str:
        extra = f" +{len(self.producers) - 1}" if len(self.producers) > 1 else ""
        return f"{self.producers[0]}{extra}"


@dataclass
class Fixed:
    """A module side whose channels cannot be removed, and why."""

    name: str
    side: str
    channels: int
    reason: str


class DependencyGraph:
    """Channel coupling of a model, traced once on example inputs.

    Build with :meth:`build`. ``groups`` are the prunable groups; ``fixed`` lists the module
    sides that are not prunable with the reason (output layers, unsupported ops, ...).
    """

    def __init__(self, model: nn.Module, result: TraceResult) -> None:
        self.model = model
        self.result = result
        self.uf = result.uf
        self.leaves: dict[str, LeafRecord] = result.leaves
        self.free: list[FreeParam] = result.free
        self.out_roots: dict[str, Tensor] = {}
        self.in_roots: dict[str, Tensor] = {}
        self.free_roots: list[Tensor] = []
        self.groups: list[Group] = []
        self.fixed: list[Fixed] = []
        self.excluded: set[str] = set()

    @classmethod
    def build(cls, model: nn.Module, example_inputs: Any,
              exclude: tuple[str, ...] | list[str] = (),
              refuse: dict[str, str] | None = None,
              freeze: dict[str, str] | None = None) -> DependencyGraph:
        """Trace ``model`` on ``example_inputs`` and group coupled channels.

        Args:
            exclude: module names or glob patterns never modified (each must match a module).
            refuse: module name -> reason: channels reshaped/split inside that module are fixed
                (set by the planner when a pruned trial failed there: sizes hard-coded).
            freeze: producer name -> reason: its output channels are fixed (set by the planner
                when pruning that group alone gave values other than the masked reference).
        """
        names = [n for n, _ in model.named_modules() if n]
        for pat in exclude:
            if not any(n == pat or fnmatch(n, pat) for n in names):
                raise ValueError(f"exclude: no module matches {pat!r}")
        res = trace(model, example_inputs)
        excluded = set()
        for name, rec in res.leaves.items():
            if any(name == p or fnmatch(name, p) or name.startswith(p + ".") for p in exclude):
                res.uf.fix(rec.in_labels, f"{name} is excluded")
                res.uf.fix(rec.out_ids, f"{name} is excluded")
                excluded.add(name)
        mods = dict(model.named_modules())
        for path, why in (refuse or {}).items():
            kind = type(mods[path]) if path in mods else None  # same code, same constants
            same = [n for n, m in mods.items() if type(m) is kind] if kind is not None else [path]
            for name in same:
                for lab in res.sized.get(name, []):
                    res.uf.fix(lab, f"reshaped/split with sizes fixed in the code of "
                                    f"{type(mods[name]).__name__} ({why})")
        for name, why in (freeze or {}).items():
            if name in res.leaves:
                res.uf.fix(res.leaves[name].out_ids, why)
        g = cls(model, res)
        g.excluded = excluded
        g._check_free()
        g._group()
        return g

    # ------------------------------------------------------------------ construction
    def _freeze(self) -> None:
        """Root of every id (0 where fixed), once: later lookups are vectorised."""
        uf = self.uf
        roots = [uf.find(i) for i in range(len(uf))]
        fixed = {r for r in uf.reason}
        self._root = torch.tensor([0 if r in fixed else r for r in roots], dtype=torch.long)

    def _roots(self, ids: Tensor | None) -> Tensor | None:
        if ids is None:
            return None
        return self._root[ids]

    def _check_free(self) -> None:
        """A free parameter is sliceable only if its units vary along a single axis."""
        for fp in self.free:
            r = self.uf.roots(fp.ids)
            axes = [d for d in range(r.dim()) if r.shape[d] > 1 and not torch.equal(
                r, r.narrow(d, 0, 1).expand_as(r))]
            if len(axes) > 1:
                self.uf.fix(fp.ids, f"parameter {fp.name} would need slicing along several axes")

    def _group(self) -> None:
        self._freeze()
        for name, rec in self.leaves.items():
            self.out_roots[name] = self._roots(rec.out_ids)
            self.in_roots[name] = self._roots(rec.in_labels)
        self.free_roots = [self._roots(fp.ids) for fp in self.free]
        parent: dict[int, int] = {}

        def find(a: int) -> int:
            while parent.setdefault(a, a) != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        producers = [n for n, r in self.leaves.items()
                     if r.out_ids is not None and not r.coupled and not self._derived(r)]
        owner: dict[int, str] = {}
        prod_idx = {n: i for i, n in enumerate(producers)}
        for n in producers:
            for u in torch.unique(self.out_roots[n]).tolist():
                if u == FIXED:
                    continue
                if u in owner:
                    parent[find(prod_idx[n])] = find(prod_idx[owner[u]])
                else:
                    owner[u] = n
        comps: dict[int, list[str]] = {}
        for n in producers:
            comps.setdefault(find(prod_idx[n]), []).append(n)
        for names in comps.values():
            units, seen = [], set()
            for n in names:
                for u in self.out_roots[n].tolist():
                    if u != FIXED and u not in seen:
                        seen.add(u)
                        units.append(u)
            if not units:
                continue
            first = self.out_roots[names[0]]
            vals, counts = torch.unique(first, return_counts=True)
            cnt = dict(zip(vals.tolist(), counts.tolist(), strict=True))
            widths = torch.tensor([cnt.get(u, 0) for u in units])
            self.groups.append(Group(len(self.groups), torch.tensor(units), names, widths=widths))
        n = len(self.uf)
        self._ugroup = torch.full((n,), -1, dtype=torch.long)
        self._upos = torch.full((n,), -1, dtype=torch.long)
        for g in self.groups:
            self._ugroup[g.units] = g.index
            self._upos[g.units] = torch.arange(g.size)
        for name, rec in self.leaves.items():
            for side, roots in (("out", self.out_roots[name]), ("in", self.in_roots[name])):
                if roots is None:
                    continue
                gs = torch.unique(self._ugroup[roots]).tolist()
                for gi in (g for g in gs if g >= 0):
                    if name not in self.groups[gi].members:
                        self.groups[gi].members.append(name)
                if side == "out" and bool((roots == FIXED).any()) and not rec.coupled:
                    ids = rec.out_ids[roots == FIXED]
                    self.fixed.append(Fixed(name, "out", int((roots == FIXED).sum()),
                                            self.uf.why(int(ids[0])) or "fixed"))

    @staticmethod
    def _derived(rec: LeafRecord) -> bool:
        """Depthwise-with-multiplier convs reuse their input ids (no channels of their own)."""
        cin = rec.handler.in_channels(rec.module)
        return rec.grouped > 1 and bool(cin) and cin // rec.grouped == 1

    # ------------------------------------------------------------------ queries
    def global_index(self, offsets: list[int] | Tensor) -> Tensor:
        """Per channel id: the index of its unit when every group's units are laid end to end,
        group ``g`` starting at ``offsets[g]`` (extra offsets are ignored); -1 where the id is
        not a unit."""
        start = torch.as_tensor(offsets, dtype=torch.long)[: len(self.groups)]
        start = torch.cat([start, start.new_zeros(1)])  # group -1 -> 0, masked below
        return torch.where(self._ugroup >= 0, start[self._ugroup] + self._upos, -1)

    def unit_index(self, roots: Tensor, group: int) -> Tensor:
        """Per position: index of its unit inside ``group``, or -1."""
        hit = self._ugroup[roots] == group
        return torch.where(hit, self._upos[roots], torch.full_like(roots, -1))

    def summary(self) -> str:
        lines = [f"DependencyGraph: {len(self.leaves)} handled modules, {len(self.groups)} "
                 f"prunable groups"]
        for g in self.groups:
            lines.append(f"  group {g.index}: {g.size} units, producers={g.producers}, "
                         f"members={len(g.members)}")
        for f in self.fixed:
            lines.append(f"  fixed {f.name}.{f.side} ({f.channels} ch): {f.reason}")
        return "\n".join(lines)
