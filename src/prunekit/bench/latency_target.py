"""Latency-targeted structured pruning: prune until the *measured* latency meets the target.

MACs are a poor proxy for time (memory-bound BatchNorm/ReLU/add traffic, kernel shape
preferences, launch overhead at batch 1), so the search measures: the pruning ratio of the
structural planner is bisected, each candidate is timed against the dense model in the same
process (paired, interleaved), and the least-pruned model whose measured latency is within the
target is returned. Channel rounding comes from measured per-layer latency tables
(:mod:`prunekit.bench.latency_lut`). If no candidate is faster than dense, dense is returned:
the result is never slower than the model you started with.

The search's own figures are selection noise-prone (the minimum of several noisy draws), so
the returned model is **re-measured** against a fresh dense copy in a new interleaved,
adaptive run; the target counts as met only when the upper bound of that run's 95% interval
of the relative latency is at or under the target.

>>> import torch
>>> from torch import nn
>>> from prunekit.bench import BenchConfig, prune_for_latency
>>> net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3),
...                     nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))
>>> cfg = BenchConfig(device="cpu", dtype="fp32", batches=(2,), runtimes=("eager",),
...                   repeats=5, max_repeats=5, memory=False)
>>> res = prune_for_latency(net, torch.randn(2, 3, 16, 16), 0.7, config=cfg, round_to=4,
...                         max_iters=2)
>>> res.setting, res.met in (True, False)
('cpu, fp32, eager, batch 2, ... threads', True)
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from prunekit.bench.config import BenchConfig
from prunekit.bench.harness import compare, fixed_threads
from prunekit.bench.inputs import cast_inputs, first_batch_size, resize_batch
from prunekit.bench.latency_lut import LatencyLUT, choose_round_to
from prunekit.bench.reliability import SpeedupEstimate
from prunekit.bench.timer import compare_latency
from prunekit.bench.width_tables import module_time_weights
from prunekit.config import parse_latency_target
from prunekit.structural import plan_structured

RelLatency = Callable[[nn.Module], float]
MakeFn = Callable[[float], nn.Module]
Verify = Callable[[nn.Module], SpeedupEstimate]


@dataclass
class LatencySearchResult:
    """Outcome of :func:`search_latency`.

    Attributes:
        model: the chosen model (the dense model itself when nothing beat it).
        ratio: the planner ratio of ``model`` (0.0 for dense).
        relative_latency: latency of ``model`` / dense in the fresh verification run (the
            search's own figure before verification).
        met: whether the verification interval's upper bound is at or under ``target``.
        trace: every (ratio, relative latency) measured during the search, in order.
        search_relative_latency: what the search measured for ``model`` (the upper bound
            of its interval with the default measurement).
        search_met: whether the search's own measurement met ``target``.
        verified: the fresh run's speedup estimate (interval, rounds, reliability).
        setting: device, dtype, runtime, batch and threads of every measurement.
    """

    model: nn.Module
    ratio: float
    relative_latency: float
    met: bool
    target: float
    trace: list[tuple[float, float]] = field(default_factory=list)
    round_to: int | None = None
    notes: list[str] = field(default_factory=list)
    search_relative_latency: float | None = None
    search_met: bool | None = None
    verified: SpeedupEstimate | None = None
    setting: str = ""

    @property
    def relative_interval(self) -> tuple[float, float] | None:
        """95% interval of the verified relative latency (``1 / speedup`` bounds)."""
        v = self.verified
        return None if v is None else (1.0 / v.ci_high, 1.0 / v.ci_low)

    def to_dict(self) -> dict[str, Any]:
        d = {"ratio": self.ratio, "relative_latency": self.relative_latency, "met": self.met,
             "target": self.target, "trace": [list(t) for t in self.trace],
             "round_to": self.round_to, "notes": list(self.notes), "setting": self.setting,
             "search_relative_latency": self.search_relative_latency, "verified": None}
        if self.verified is not None:
            lo, hi = self.relative_interval
            d["verified"] = dict(self.verified.to_dict(), relative_latency=self.relative_latency,
                                 relative_ci_low=lo, relative_ci_high=hi)
        return d


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
    """Measured latency of a model relative to ``dense``, both timed interleaved in this
    process under ``config`` (first runtime and batch): the upper bound of the 95% interval
    of the paired ratios, so a probe counts as meeting a target only when its whole
    interval does (a point estimate at the target misses it on every other re-run)."""
    verify = fresh_verification(dense, example_inputs, config)
    return lambda model: 1.0 / verify(model).ci_low


def fresh_verification(dense: nn.Module, example_inputs: Any, config: BenchConfig) -> Verify:
    """``verify(model)``: a new interleaved, adaptive run of a fresh dense copy vs ``model``
    under ``config`` (first runtime and batch); returns the paired speedup estimate."""
    def verify(model: nn.Module) -> SpeedupEstimate:
        res = compare({"dense": copy.deepcopy(dense), "candidate": model}, example_inputs,
                      config)
        row = res.speedups()[0]
        if row["status"] != "ok":
            raise RuntimeError(f"timing failed: {row.get('error')}")
        return SpeedupEstimate(row["speedup"], row["ratio_of_medians"], row["ci_low"],
                               row["ci_high"], row["rounds"], row["ci_level"],
                               row["tolerance"], tuple(row["unreliable_reasons"]))

    return verify


def _setting_for(config: BenchConfig | None, example_inputs: Any,
                 notes: list[str]) -> BenchConfig:
    """The config to time with; a default one is announced loudly (warning + note)."""
    batch = first_batch_size(example_inputs) or 1
    if config is None:
        config = BenchConfig(batches=(batch,), repeats=10, warmup=2, memory=False)
        text = (f"no config given: timing on cpu, fp32, eager, batch {batch} (the batch of "
                f"example_inputs), {config.threads} threads; pass "
                "config=BenchConfig(device=, dtype=, batches=, runtimes=) to choose")
        warnings.warn(text, UserWarning, stacklevel=3)
        notes.append(text)
    elif config.batches[0] != batch:
        text = (f"timing at batch {config.batches[0]} from config, while example_inputs has "
                f"batch {batch}")
        warnings.warn(text, UserWarning, stacklevel=3)
        notes.append(text)
    return config


def describe(config: BenchConfig) -> str:
    """``"cpu, fp32, eager, batch 1, 2 threads"``."""
    return (f"{config.device}, {config.dtype}, {config.runtimes[0]}, batch {config.batches[0]}, "
            f"{config.threads} threads")


def prune_for_latency(
    model: nn.Module,
    example_inputs: Any,
    target: float | str = 0.5,
    *,
    config: BenchConfig | None = None,
    criterion: str = "l1",
    round_to: int | None = None,
    lut_path: str | None = None,
    rel_latency: RelLatency | None = None,
    make: MakeFn | None = None,
    verify: Verify | None = None,
    device_aware: bool = False,
    **search_kwargs: Any,
) -> LatencySearchResult:
    """Structurally prune ``model`` (a copy) until its measured latency is ``target`` × dense.

    Args:
        model: dense model (not modified).
        example_inputs: one batch at the batch size to optimise for.
        target: e.g. ``0.5`` or ``"0.5x"``: reach half the dense latency.
        config: :class:`~prunekit.bench.config.BenchConfig` (device, dtype, runtime, threads,
            batch); its first batch and runtime are used. Without it: cpu, fp32, eager at the
            batch of ``example_inputs``, announced with a warning.
        criterion: the planner's group criterion.
        round_to: channel rounding; ``None`` chooses it from measured latency tables.
        lut_path: JSON cache of the latency tables (keyed by device, dtype, batch).
        rel_latency: injectable measurement function (tests, custom flows).
        make: injectable pruning function (tests, custom flows).
        verify: ``verify(model) -> SpeedupEstimate`` of the returned model against dense
            (default: a fresh interleaved run, :func:`fresh_verification`).
        device_aware: weigh the planner's global ranking by measured time saved per unit
            (:func:`prunekit.bench.width_tables.module_time_weights`, timed with ``config``'s
            threads and clock), so the cut goes where this device saves time; otherwise the
            planner's default analytic estimate (:mod:`prunekit.structural.time_proxy`).

    Returns:
        A :class:`LatencySearchResult`; ``met`` is decided by the fresh verification run.

    Raises:
        RuntimeError: the structural planner is not available and ``make`` was not given.
    """
    target = parse_latency_target(target)
    notes: list[str] = []
    cfg = _setting_for(config, example_inputs, notes)
    if make is None:
        if round_to is None:
            round_to, _ = _measured_round_to(model, example_inputs, cfg, lut_path)
            notes.append(f"round_to={round_to} chosen from measured per-layer latency tables")
        weights: Any = "estimate"
        if device_aware:
            weights = _measured_time_weights(model, example_inputs, cfg)
            notes.append(f"global ranking weighed by measured time per unit ({len(weights)} "
                         "layers)")
        else:
            notes.append("global ranking weighed by the analytic layer-time estimate")

        def make(r: float) -> nn.Module:
            plan = plan_structured(model, example_inputs, criterion=criterion, ratio=r,
                                   scope="global", round_to=round_to, time_weights=weights)
            return plan.apply(copy=True).eval()

    dense = copy.deepcopy(model).eval()
    rel = rel_latency or paired_rel_latency(dense, example_inputs, cfg)
    verify = verify or fresh_verification(dense, example_inputs, cfg)
    res = search_latency(model, make, rel, target, **search_kwargs)
    res.round_to, res.notes, res.setting = round_to, notes + res.notes, describe(cfg)
    _verify(res, verify)
    if res.ratio > 0.0 and not res.met and res.search_met:  # missed on re-measurement:
        aim = target * target / res.relative_interval[1]  # search once more, below the miss
        retry = search_latency(model, make, rel, aim, **search_kwargs)
        retry.target = target
        retry.round_to, retry.setting = round_to, res.setting
        retry.notes = res.notes + [f"searched again for {aim:.3f}x"] + retry.notes
        _verify(retry, verify)
        if retry.met or retry.relative_latency < res.relative_latency:
            return retry
        res.notes.append(f"searched again for {aim:.3f}x; that model measured "
                         f"{retry.relative_latency:.3f}x, no better: the first one is kept")
    return res


def _verify(res: LatencySearchResult, verify: Verify) -> None:
    """Re-measure ``res.model``; ``met`` only if the interval's upper bound is under target."""
    res.search_relative_latency = res.relative_latency
    if res.ratio == 0.0:
        res.met = False
        return
    est = verify(res.model)
    res.verified = est
    res.relative_latency = 1.0 / est.speedup
    upper = 1.0 / est.ci_low
    searched_met, res.met = res.met, upper <= res.target
    res.search_met = searched_met
    if searched_met and not res.met:
        res.notes.append(f"the search measured {res.search_relative_latency:.3f}x, but a fresh "
                         f"run measured {res.relative_latency:.3f}x (95% CI up to {upper:.3f}x): "
                         f"target {res.target:g}x NOT met")
    if not est.reliable:
        res.notes.append("verification unreliable: " + "; ".join(est.reasons))


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


def _measured_time_weights(model: nn.Module, example_inputs: Any, cfg: Any) -> dict[str, float]:
    """Per-layer time per unit on ``cfg``'s device, batch, threads and clock."""
    m = copy.deepcopy(model).eval().to(device=cfg.device, dtype=cfg.torch_dtype)
    x = cast_inputs(resize_batch(example_inputs, cfg.batches[0]), cfg.torch_dtype, cfg.device)
    with fixed_threads(cfg.threads):
        return module_time_weights(m, x, clock=cfg.clock)
