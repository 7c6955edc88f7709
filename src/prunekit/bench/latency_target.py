"""Latency-targeted structured pruning: prune until the *measured* latency meets the target.

MACs are a poor proxy for time (memory-bound BatchNorm/ReLU/add traffic, kernel shape
preferences, launch overhead at batch 1), so the search measures: the pruning ratio of the
structural planner is bisected, each candidate is timed against the dense model in the same
process (paired, interleaved), and the least-pruned model whose measured latency is within the
target is returned. Channel rounding comes from measured per-layer latency tables
(:mod:`prunekit.bench.latency_lut`). If no candidate is faster than dense, dense is returned:
the result is never slower than the model you started with.

>>> res = prune_for_latency(model, torch.randn(32, 3, 224, 224), target=0.5, device="cuda",
...                         dtype="fp16", runtime="cudagraph")
>>> res.model, res.relative_latency, res.met
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from prunekit.bench.harness import compare
from prunekit.bench.config import BenchConfig
from prunekit.structural import plan_structured
from prunekit.bench.harness import fixed_threads
from prunekit.bench.inputs import cast_inputs, resize_batch
from prunekit.bench.latency_lut import LatencyLUT, choose_round_to
from prunekit.bench.timer import compare_latency

RelLatency = Callable[[nn.Module], float]
MakeFn = Callable[[float], nn.Module]


def parse_latency_target(text: str | float) -> float:
    """``"0.5x"``, ``"0.5"``, ``"50%"`` or ``0.5`` -> 0.5 (fraction of dense latency to reach)."""
    raw = text
    if isinstance(text, str):
        t = text.strip().lower()
        scale = 1.0
        if t.endswith("%"):
            t, scale = t[:-1], 0.01
        elif t.endswith("x"):
            t = t[:-1]
        try:
            text = float(t) * scale
        except ValueError:
            raise ValueError(f"target latency must look like 0.5x or 50%, got {raw!r}") from None
    if isinstance(text, bool) or not isinstance(text, (int, float)) or not 0 < text < 1:
        raise ValueError(f"target latency must be a fraction of dense in (0, 1), got {raw!r}")
    return float(text)


@dataclass
class LatencySearchResult:
    """Outcome of :func:`search_latency`.

    Attributes:
        model: the chosen model (the dense model itself when nothing beat it).
        ratio: the planner ratio of ``model`` (0.0 for dense).
        relative_latency: measured latency of ``model`` / dense.
        met: whether ``relative_latency <= target``.
        trace: every (ratio, relative latency) measured, in order.
    """

    model: nn.Module
    ratio: float
    relative_latency: float
    met: bool
    target: float
    trace: list[tuple[float, float]] = field(default_factory=list)
    round_to: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "relative_latency": self.relative_latency, "met": self.met,
                "target": self.target, "trace": [list(t) for t in self.trace],
                "round_to": self.round_to, "notes": list(self.notes)}


def search_latency(
    dense: nn.Module,
    make: MakeFn,
    rel_latency: RelLatency,
    target: float,
    *,
    max_ratio: float = 0.9,
    tol: float = 0.01,
    max_iters: int = 12,
) -> LatencySearchResult:
    """Bisect the pruning ratio until the measured relative latency meets ``target``.

    Args:
        dense: the unpruned model (returned when no candidate is faster).
        make: ``make(ratio) -> pruned model`` (a fresh model each call).
        rel_latency: ``rel_latency(model) -> measured latency / dense latency`` (injectable:
            tests use a fake latency model).
        target: fraction of dense latency to reach, in (0, 1).
        max_ratio: the most pruning tried.
        tol: stop when the bracketing ratios are closer than this.
        max_iters: at most this many bisection steps after the first probe.

    Latency is assumed to fall (noisily) as the ratio grows; the result is the smallest
    measured ratio that met the target, so noise can only make it prune more, not miss.
    """
    target = parse_latency_target(target)
    trace: list[tuple[float, float]] = []
    best: tuple[float, float, nn.Module] | None = None  # (ratio, rel, model) meeting target
    fastest: tuple[float, float, nn.Module] | None = None

    def probe(r: float) -> float:
        nonlocal best, fastest
        m = make(r)
        rel = float(rel_latency(m))
        trace.append((r, rel))
        if fastest is None or rel < fastest[1]:
            fastest = (r, rel, m)
        if rel <= target and (best is None or r < best[0]):
            best = (r, rel, m)
        return rel

    lo, hi = 0.0, max_ratio
    if probe(hi) <= target:
        for _ in range(max_iters):
            if hi - lo < tol:
                break
            mid = (lo + hi) / 2
            if probe(mid) <= target:
                hi = mid
            else:
                lo = mid
    if best is not None:
        return LatencySearchResult(best[2], best[0], best[1], True, target, trace)
    if fastest is not None and fastest[1] < 1.0:
        return LatencySearchResult(fastest[2], fastest[0], fastest[1], False, target, trace,
                                   notes=[f"target {target:g}x not reached even at ratio "
                                          f"{max_ratio:g}; returning the fastest measured"])
    return LatencySearchResult(dense, 0.0, 1.0, False, target, trace,
                               notes=["no pruned candidate was measured faster than dense; "
                                      "returning the dense model"])


def paired_rel_latency(dense: nn.Module, example_inputs: Any, config: Any) -> RelLatency:
    """Measured latency of a model relative to ``dense``: median of per-round paired ratios,
    both timed interleaved in this process under ``config`` (first runtime and batch)."""

    def rel(model: nn.Module) -> float:
        res = compare({"dense": dense, "candidate": model}, example_inputs, config)
        row = res.speedups()[0]
        if row["status"] != "ok":
            raise RuntimeError(f"timing failed: {row.get('error')}")
        return 1.0 / row["speedup"]

    return rel


def prune_for_latency(
    model: nn.Module,
    example_inputs: Any,
    target: float | str = 0.5,
    *,
    config: Any = None,
    criterion: str = "l1",
    round_to: int | None = None,
    lut_path: str | None = None,
    rel_latency: RelLatency | None = None,
    make: MakeFn | None = None,
    **search_kwargs: Any,
) -> LatencySearchResult:
    """Structurally prune ``model`` (a copy) until its measured latency is ``target`` × dense.

    Args:
        model: dense model (not modified).
        example_inputs: one batch at the batch size to optimise for.
        target: e.g. ``0.5`` or ``"0.5x"``: reach half the dense latency.
        config: :class:`~prunekit.bench.config.BenchConfig` (device, dtype, runtime, threads);
            its first batch and runtime are used.
        criterion: the planner's group criterion.
        round_to: channel rounding; ``None`` chooses it from measured latency tables.
        lut_path: JSON cache of the latency tables (keyed by device, dtype, batch).
        rel_latency, make: injectable measurement and pruning functions (tests, custom flows).

    Raises:
        RuntimeError: the structural planner is not available and ``make`` was not given.
    """

    target = parse_latency_target(target)
    cfg = config or BenchConfig(repeats=10, warmup=2)
    notes = []
    if make is None:
        if round_to is None:
            round_to, _ = _measured_round_to(model, example_inputs, cfg, lut_path)
            notes.append(f"round_to={round_to} chosen from measured per-layer latency tables")

        def make(r: float) -> nn.Module:
            plan = plan_structured(model, example_inputs, criterion=criterion, ratio=r,
                                   scope="global", round_to=round_to)
            return plan.apply(copy=True).eval()

    rel = rel_latency or paired_rel_latency(copy.deepcopy(model).eval(), example_inputs, cfg)
    res = search_latency(model, make, rel, target, **search_kwargs)
    res.round_to, res.notes = round_to, notes + res.notes
    return res


def _measured_round_to(model: nn.Module, example_inputs: Any, cfg: Any,
                       lut_path: str | None) -> tuple[int, dict[str, Any]]:
    batch = cfg.batches[0]
    m = copy.deepcopy(model).eval().to(device=cfg.device, dtype=cfg.torch_dtype)
    x = cast_inputs(resize_batch(example_inputs, batch), cfg.torch_dtype, cfg.device)
    clock = type(cfg.clock).__name__ if cfg.clock is not None else None
    lut = LatencyLUT(lut_path, LatencyLUT.make_key(cfg.device, cfg.torch_dtype, batch, clock))
    timer = None
    if cfg.clock is not None:  # tables timed with the same clock as the search

        def timer(mods, xx):
            stats = compare_latency(dict(mods), xx, warmup=2, repeats=10, rotate=None,
                                    number=None, clock=cfg.clock)
            return {k: v.median for k, v in stats.items()}

    with fixed_threads(cfg.threads):
        return choose_round_to(m, x, lut, timer=timer)
