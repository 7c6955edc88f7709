"""Pure selection: unit scores + target -> which units of each group are removed.

Also the cost model used for parameter / MAC targets: each handler's ``cost(m, n_in, n_out)``
evaluated on the kept channel counts, times the number of output positions seen in the trace
(element-wise ops are not counted). A target is met by bisection over the pruning ratio (local
scope) or over the number of globally ranked units (global scope).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from prunekit.graph.dependency import DependencyGraph


@dataclass
class _Row:
    name: str
    handler: object
    module: object
    coupled: bool
    positions: int
    cin: int | None
    cout: int | None
    in_idx: Tensor | None  # global unit index per in position (-1 = never removed)
    out_idx: Tensor | None


class CostModel:
    """Parameters and MACs of the model for a given set of removed units (global indices)."""

    def __init__(self, graph: DependencyGraph, offsets: list[int], total: int) -> None:
        self.total = total
        table = graph.global_index(offsets)

        def gidx(roots: Tensor | None) -> Tensor | None:
            return None if roots is None else table[roots]

        self.rows: list[_Row] = []
        leaf_params: set[int] = set()
        for name, rec in graph.leaves.items():
            leaf_params.update(id(p) for p in rec.module.parameters())
            h, m = rec.handler, rec.module
            self.rows.append(_Row(name, h, m, rec.coupled, rec.positions, h.in_channels(m),
                                  h.out_channels(m), gidx(graph.in_roots[name]),
                                  gidx(graph.out_roots[name])))
        self.free = []
        counted = set()
        for fp, roots in zip(graph.free, graph.free_roots, strict=True):
            ax = free_axis(roots)
            if isinstance(fp.tensor, torch.nn.Parameter) and ax is not None:
                line = roots.movedim(ax, 0).reshape(roots.shape[ax], -1)[:, 0]
                self.free.append((fp.tensor.numel(), gidx(line)))
                counted.add(id(fp.tensor))
        self.base_params = sum(p.numel() for p in graph.model.parameters()
                               if id(p) not in leaf_params and id(p) not in counted)

    @staticmethod
    def _kept(idx: Tensor | None, keep: Tensor, full: int | None) -> int | None:
        if idx is None or full is None:
            return full
        fixed = int((idx < 0).sum())
        return fixed + int(keep[idx[idx >= 0]].sum())

    def evaluate(self, removed: Tensor, internal: Mapping[str, dict[str, int]] | None = None
                 ) -> tuple[int, int]:
        """``(params, macs)`` with ``removed`` a bool mask over all units and ``internal``
        ``{module name: {internal group: kept units}}`` for handlers whose ``internal_cost`` is exact."""
        keep = ~removed
        params, macs = self.base_params, 0
        for r in self.rows:
            n_in = self._kept(r.in_idx, keep, r.cin)
            n_out = n_in if r.coupled else self._kept(r.out_idx, keep, r.cout)
            exact = (r.handler.internal_cost(r.module, n_in, n_out, internal[r.name])
                     if internal and r.name in internal else None)
            p, mpp = exact if exact is not None else r.handler.cost(r.module, n_in, n_out)
            params += p
            macs += mpp * r.positions
        for numel, idx in self.free:
            params += int(round(numel * self._kept(idx, keep, len(idx)) / max(len(idx), 1)))
        return int(params), int(macs)


def free_axis(roots: Tensor) -> int | None:
    """The single axis along which a free parameter's units vary (None if it is not pruned)."""
    for d in range(roots.dim()):
        if roots.shape[d] > 1 and not torch.equal(roots, roots.narrow(d, 0, 1).expand_as(roots)):
            return d
    return None


SIMD_LANES = 16  # fp32 lanes of an AVX-512 register (two AVX2 registers, a tensor-core tile)
THREAD_BLOCKS = 2  # channel blocks per thread split a wide layer evenly over 2 and 4 threads


def hardware_multiple(size: int) -> int:
    """Kept-width multiple for a group of ``size`` units when the planner picks its width.

    CPU and GPU kernels process channels in blocks of :data:`SIMD_LANES` (oneDNN's
    ``nChw16c`` layout, 8- or 16-wide tensor-core tiles): a width just above a multiple pays the
    time of the next one (a 3x3 conv with 136 channels costs what 144 do; 72 cost 1.5x what
    64 do), and an odd number of blocks splits unevenly over threads. So a group of at least
    32 units keeps a multiple of 16, one of at least 256 a multiple of 32; smaller groups, and
    sizes that are no such multiple, keep the largest common divisor (1 if none).
    Device-independent, so the same plan results on every machine (cf. NVIDIA's "Tensor Core
    requirements" and Torch-Pruning's ``round_to``).

    >>> [hardware_multiple(n) for n in (10, 24, 48, 64, 96, 256, 1000, 2048)]
    [1, 1, 16, 16, 16, 32, 8, 32]
    """
    if size < 2 * SIMD_LANES:
        return 1
    step = SIMD_LANES * (THREAD_BLOCKS if size >= 16 * SIMD_LANES else 1)
    return math.gcd(size, step)


def group_rounding(cfg, channels: Sequence[int]) -> list[int]:
    """One kept-width multiple per group: ``cfg.round_to`` if given, else
    :func:`hardware_multiple` of each group's channel count where the planner picks widths
    (global or threshold scope) and 1 under local scope."""
    if cfg.round_to is not None:
        return [cfg.round_to] * len(channels)
    if cfg.scope == "local":
        return [1] * len(channels)
    return [hardware_multiple(c) for c in channels]


def _bounds(size: int, per_min: float, per_max: float) -> tuple[int, int]:
    lo = min(math.ceil(per_min * size), size - 1)
    hi = min(math.floor(per_max * size + 1e-9), size - 1)
    return max(lo, 0), max(hi, 0)


def _round(size: int, n_prune: int, round_to: int, width: int, nearest: bool = False,
           most: int | None = None) -> int:
    """Fewest removals <= n_prune such that kept channels are a multiple of ``round_to``;
    with ``nearest`` the removals whose kept count is the nearest multiple (at most ``most``
    removals, at least one multiple kept), so rounding spends no MACs on average."""
    if round_to <= 1:
        return n_prune
    step = round_to // math.gcd(round_to, max(width, 1))
    kept = size - n_prune
    if not nearest:
        return size - min(size, int(math.ceil(kept / step) * step))
    near = max(step, int(math.floor(kept / step + 0.5)) * step)
    while most is not None and size - near > most:
        near += step
    return size - min(size, near)


def _per_group(round_to: int | Sequence[int], n: int) -> list[int]:
    return [round_to] * n if isinstance(round_to, int) else [int(r) for r in round_to]


def select_local(scores: list[Tensor], ratio: float, per_min: float, per_max: float,
                 round_to: int | Sequence[int], widths: list[int]) -> list[Tensor]:
    """Remove ``ratio`` of every group's units (lowest scores first); ``round_to`` is one
    multiple for all groups or one per group."""
    out = []
    for s, w, rnd in zip(scores, widths, _per_group(round_to, len(scores)), strict=True):
        lo, hi = _bounds(s.numel(), per_min, per_max)
        n = min(max(int(math.floor(ratio * s.numel() + 1e-9)), lo), hi)
        n = _round(s.numel(), n, rnd, w)
        mask = torch.zeros(s.numel(), dtype=torch.bool)
        mask[torch.argsort(s, stable=True)[:n]] = True
        out.append(mask)
    return out


def select_global(scores: list[Tensor], n_total: int, per_min: float, per_max: float,
                  round_to: int | Sequence[int], widths: list[int],
                  time_weights: list[float] | None = None, normalize: bool = True,
                  nearest: bool = False, caps: Sequence[int] | None = None) -> list[Tensor]:
    """Remove the ``n_total`` lowest scores across groups (within per-group bounds); each
    group's scores are divided by their mean first when ``normalize`` (else one threshold on
    the raw scores, as Network Slimming does). ``round_to``: one multiple of kept units for all
    groups or one per group (e.g. :func:`hardware_multiple` of each group's size); kept counts
    are rounded up to it, or to the nearest multiple with ``nearest``.

    ``time_weights[g]`` (optional, > 0): measured time saved per removed unit of group ``g``
    relative to what its MACs predict (:func:`prunekit.bench.width_tables.time_per_unit`);
    normalised scores are divided by it, so units whose removal saves more device time are
    removed first at equal importance. ``None`` (default): every group weighs 1.

    ``caps[g]`` (optional): at most this many units of group ``g`` are removed (tighter than
    ``per_max`` where given).
    """
    norm = [s / s.mean().clamp_min(1e-12) if s.numel() and normalize else s for s in scores]
    if time_weights is not None:
        if len(time_weights) != len(scores) or any(not w > 0 for w in time_weights):
            raise ValueError("time_weights must hold one positive weight per group, got "
                             f"{len(time_weights)} for {len(scores)} groups")
        norm = [s / float(w) for s, w in zip(norm, time_weights, strict=True)]
    masks = [torch.zeros(s.numel(), dtype=torch.bool) for s in scores]
    bounds = [_bounds(s.numel(), per_min, per_max) for s in scores]
    if caps is not None:
        bounds = [(min(lo, int(c)), min(hi, int(c))) for (lo, hi), c in zip(bounds, caps,
                                                                              strict=True)]
    counts = [0] * len(scores)
    for g, (lo, _) in enumerate(bounds):  # per-group minimum first
        if lo:
            masks[g][torch.argsort(norm[g], stable=True)[:lo]] = True
            counts[g] = lo
    if norm:
        allv = torch.cat(norm)
        gid = torch.cat([torch.full((s.numel(),), g) for g, s in enumerate(norm)])
        pos = torch.cat([torch.arange(s.numel()) for s in norm])
        done = sum(counts)
        for k in torch.argsort(allv, stable=True).tolist():
            if done >= n_total:
                break
            g, i = int(gid[k]), int(pos[k])
            if masks[g][i] or counts[g] >= bounds[g][1]:
                continue
            masks[g][i] = True
            counts[g] += 1
            done += 1
    for g, (s, r) in enumerate(zip(norm, _per_group(round_to, len(norm)), strict=True)):
        n = _round(s.numel(), counts[g], r, widths[g], nearest, bounds[g][1])
        if n < counts[g]:  # give back the best-scored removed units
            idx = torch.nonzero(masks[g]).flatten()
            best = idx[torch.argsort(s[idx], descending=True, stable=True)[:counts[g] - n]]
            masks[g][best] = False
        elif n > counts[g]:  # remove the worst-scored kept units too
            idx = torch.nonzero(~masks[g]).flatten()
            masks[g][idx[torch.argsort(s[idx], stable=True)[:n - counts[g]]]] = True
    return masks


def bisect(fn, lo: float, hi: float, goal: float, steps: int = 24, integer: bool = False) -> float:
    """Smallest x in [lo, hi] with ``fn(x) <= goal`` (fn non-increasing); ``hi`` if none."""
    for _ in range(steps):
        if (hi - lo) <= (1 if integer else 1e-4):
            break
        mid = (lo + hi) // 2 if integer else (lo + hi) / 2
        if fn(mid) <= goal:
            hi = mid
        else:
            lo = mid
    return hi


def group_weights(time_weights, names: list[tuple[str, ...]]) -> list[float] | None:
    """One weight per group from a callable or a ``{module name: weight}`` mapping."""
    if time_weights is None:
        return None
    if isinstance(time_weights, Mapping):
        table = time_weights

        def time_weights(members: tuple[str, ...]) -> float:
            found = [table[m.split(":")[0]] for m in members if m.split(":")[0] in table]
            return float(found[0]) if found else 1.0
    elif not callable(time_weights):
        raise ValueError("time_weights must be a callable, a mapping or None, got "
                         f"{type(time_weights).__name__}")
    out = [float(time_weights(m)) for m in names]
    bad = [(m, w) for m, w in zip(names, out, strict=True) if not w > 0]
    if bad:
        raise ValueError(f"time_weights must be > 0; group {bad[0][0]} got {bad[0][1]}")
    return out
