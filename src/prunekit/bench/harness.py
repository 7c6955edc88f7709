"""Benchmark harness: dense and pruned models timed side by side in one process.

Rules (DESIGN.md, "Measuring speed honestly"): every model of a comparison runs under the same
runtime, dtype, batch and thread count; samples are interleaved round-robin (order reversed
every round so drift hits all models alike); warm-up first; CUDA events on GPU; rotating
distinct random inputs larger than the cache; median and p10/p90 reported; the speedup is the
median of per-round paired ratios with a bootstrap 95% interval, repeated adaptively until the
interval is within the tolerance (:mod:`prunekit.bench.adaptive`), and marked unreliable when
it is not, when median-of-ratios and ratio-of-medians disagree, or when the contention probe
saw a busy machine (:mod:`prunekit.bench.reliability`, :mod:`prunekit.bench.contention`).

>>> import torch
>>> from torch import nn
>>> from prunekit.bench import BenchConfig, compare
>>> dense, pruned = nn.Linear(64, 64), nn.Linear(64, 16)
>>> res = compare({"dense": dense, "pruned": pruned}, torch.randn(1, 64),
...               BenchConfig(batches=(1, 8), repeats=5, max_repeats=10, budget_s=1))
>>> row = res.speedups()[0]
>>> sorted(k for k in row if k.startswith("ci_"))
['ci_half_width', 'ci_high', 'ci_level', 'ci_low']
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit.bench.adaptive import AdaptivePlan, adaptive_samples
from prunekit.bench.config import BenchConfig
from prunekit.bench.contention import ContentionProbe, load_text
from prunekit.bench.env import environment
from prunekit.bench.inputs import cast_inputs, input_pool, resize_batch
from prunekit.bench.metrics import ModelCost, energy_per_inference, model_cost, peak_memory
from prunekit.bench.reliability import paired_speedup
from prunekit.bench.runtimes import get_runtime, prepare_runtime, resolve_device
from prunekit.bench.timer import (  # noqa: F401 - interleaved_samples re-exported
    Clock, LatencyStats, calibrate_number, clock_for, interleaved_samples, percentile,
)
from prunekit.bench.bn_fold import fold_batchnorm
from prunekit.masks import finalize, masked_modules


@dataclass
class BenchCell:
    """One (model, runtime, batch) measurement; ``error`` set (and numbers None) if it failed."""

    model: str
    runtime: str
    batch: int
    latency: LatencyStats | None = None
    peak_bytes: int | None = None
    peak_method: str = ""
    energy_j: float | None = None
    energy_note: str = ""
    error: str | None = None
    contention: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.latency is not None

    @property
    def throughput(self) -> float | None:
        """Samples per second at the median latency."""
        return self.batch * 1000.0 / self.latency.median if self.ok else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "runtime": self.runtime, "batch": self.batch,
                             "status": "ok" if self.ok else "failed", "error": self.error,
                             "throughput": self.throughput, "peak_bytes": self.peak_bytes,
                             "peak_method": self.peak_method, "energy_j": self.energy_j,
                             "energy_note": self.energy_note, "contention": self.contention}
        if self.latency is not None:
            d.update(self.latency.to_dict())
        return d


@dataclass
class BenchResult:
    """All cells of a comparison plus the static costs and the environment."""

    config: BenchConfig
    baseline: str
    costs: dict[str, ModelCost]
    cells: list[BenchCell] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def cell(self, model: str, runtime: str, batch: int) -> BenchCell | None:
        for c in self.cells:
            if (c.model, c.runtime, c.batch) == (model, runtime, batch):
                return c
        return None

    def speedups(self) -> list[dict[str, Any]]:
        """Measured speedup of every model over the baseline, per runtime and batch."""
        out = []
        base_cost = self.costs.get(self.baseline)
        for c in self.cells:
            if c.model == self.baseline:
                continue
            b = self.cell(self.baseline, c.runtime, c.batch)
            row: dict[str, Any] = {"model": c.model, "baseline": self.baseline,
                                   "runtime": c.runtime, "batch": c.batch}
            cost = self.costs.get(c.model)
            if base_cost and cost:
                row["macs_ratio"] = base_cost.macs / max(cost.macs, 1)
                row["effective_macs_ratio"] = base_cost.macs / max(cost.effective_macs, 1)
            if b is None or not b.ok or not c.ok:
                row.update(status="failed", error=c.error or (b.error if b else "no baseline"))
            else:
                row.update(status="ok", **_paired_row(b, c, self.config.tolerance))
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bench", "config": self.config.to_dict(), "baseline": self.baseline,
            "environment": self.environment, "notes": list(self.notes),
            "models": {k: v.to_dict() for k, v in self.costs.items()},
            "cells": [c.to_dict() for c in self.cells], "speedups": self.speedups(),
        }


def _paired_row(b: BenchCell, c: BenchCell, tolerance: float) -> dict[str, Any]:
    """Speedup of ``c`` over ``b`` with interval, both estimates and the reliability verdict."""
    ratios = [x / y for x, y in zip(b.latency.samples, c.latency.samples, strict=True)]
    est = paired_speedup(b.latency.samples, c.latency.samples, tolerance=tolerance)
    con = c.contention or {}
    if con.get("busy"):
        est = est.with_reasons([f"busy: {con['reason']}"])
    row = est.to_dict()
    row.update(speedup_p10=percentile(ratios, 10), speedup_p90=percentile(ratios, 90),
               baseline_ms=b.latency.median, model_ms=c.latency.median,
               busy=bool(con.get("busy")), load=con.get("load", ""))
    return row


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Pin PyTorch's intra-op thread count for the block and restore it afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def prepare_models(models: Mapping[str, nn.Module], cfg: BenchConfig,
                   notes: list[str]) -> dict[str, nn.Module]:
    """Inference copies of ``models``: eval, masks baked in, BN folded (all alike), moved, cast."""

    out = {}
    for name, m in models.items():
        m = copy.deepcopy(m).eval()
        if masked_modules(m):
            finalize(m)
        if cfg.fold_bn:
            rep = fold_batchnorm(m)
            if rep.folded or rep.skipped:
                notes.append(f"{name}: folded {len(rep.folded)} BatchNorm layers into the preceding "
                         f"conv/linear ({rep.method}); {len(rep.skipped)} left")  # noqa: E501
        out[name] = m.to(device=cfg.device, dtype=cfg.torch_dtype)
    return out


def _probe_for(cfg: BenchConfig, device: torch.device) -> ContentionProbe | None:
    """The contention probe for wall-clock CPU timing (off for custom clocks and GPUs)."""
    if not cfg.probe or cfg.clock is not None or device.type != "cpu":
        return None
    return ContentionProbe(cfg.threads)


def _time_runtime(rt: str, models: dict[str, nn.Module], pool: list[Any], batch: int,
                  cfg: BenchConfig, device: torch.device,
                  baseline: str | None = None) -> list[BenchCell]:
    cells = {n: BenchCell(n, rt, batch) for n in models}
    fns = {}
    for n, m in models.items():
        try:
            fns[n] = prepare_runtime(rt, m, pool[0], device, cfg.threads)
        except Exception as e:  # noqa: BLE001 - a failing runtime marks its cell, others go on
            cells[n].error = f"{type(e).__name__}: {e}"
    if fns:
        clock = cfg.clock or clock_for(device, get_runtime(rt).device_timed)
        numbers = {n: cfg.number or calibrate_number(clock, lambda f=f: f(pool[0]),
                                                     cfg.min_sample_ms) for n, f in fns.items()}
        plan = AdaptivePlan(cfg.repeats, cfg.max_repeats, cfg.tolerance, cfg.budget_s)
        probe = _probe_for(cfg, device)
        try:
            stats = adaptive_samples(fns, pool, baseline=baseline, plan=plan, warmup=cfg.warmup,
                                     numbers=numbers, clock=clock, probe=probe)
        except Exception as e:  # noqa: BLE001
            for n in fns:
                cells[n].error = f"timing failed: {type(e).__name__}: {e}"
            stats = {}
        contention = None
        if probe is not None:
            v = probe.verdict()
            contention = dict(busy=v.busy, reason=v.reason, load=load_text(v.points),
                              probe=v.to_dict()["points"])
        for n, s in stats.items():
            cells[n].latency = s
            cells[n].contention = contention
            _extras(cells[n], models[n], fns[n], pool, rt, cfg, device)
    return list(cells.values())


def _extras(cell: BenchCell, model: nn.Module, fn: Callable[[Any], Any], pool: list[Any],
            rt: str, cfg: BenchConfig, device: torch.device) -> None:
    measurable = rt == "eager" or (device.type == "cuda" and rt == "compile")
    if cfg.memory and not measurable:
        cell.peak_method = (f"not measured for {rt} on {device.type}: its memory is outside "
                            "PyTorch's allocator (graph pool / runtime arena) or the tracker")
    if cfg.memory and measurable:
        try:
            cell.peak_bytes, cell.peak_method = peak_memory(model, fn, pool[0], device)
        except Exception as e:  # noqa: BLE001 - memory is secondary; say why it is missing
            cell.peak_method = f"failed: {type(e).__name__}: {e}"
    if cfg.energy:
        cell.energy_j, cell.energy_note = energy_per_inference(fn, pool, device)


def compare(
    models: Mapping[str, nn.Module],
    example_inputs: Any,
    config: BenchConfig | None = None,
    *,
    baseline: str | None = None,
    input_fn: Callable[[int], Any] | None = None,
) -> BenchResult:
    """Measure every model under every runtime and batch of ``config``, interleaved.

    Args:
        models: name -> model (not modified: timed on inference copies).
        example_inputs: one batch (any batch size); resized along dim 0 to each batch size.
        config: what to measure; defaults to ``BenchConfig()``.
        baseline: the model speedups are relative to (default: the first).
        input_fn: ``input_fn(batch) -> inputs`` instead of resizing ``example_inputs``.

    Returns:
        A :class:`BenchResult`; failing cells carry their error and the rest goes on.
    """
    cfg = config or BenchConfig()
    if not models:
        raise ValueError("models must name at least one model")
    baseline = baseline or next(iter(models))
    if baseline not in models:
        raise ValueError(f"baseline={baseline!r} is not one of the models {list(models)}")
    for rt in cfg.runtimes:
        get_runtime(rt)
    device = resolve_device(cfg.device)
    notes: list[str] = []
    with fixed_threads(cfg.threads):
        prepared = prepare_models(models, cfg, notes)
        res = BenchResult(cfg, baseline, {}, environment=environment(device, cfg.threads),
                          notes=notes)
        for batch in cfg.batches:
            x = input_fn(batch) if input_fn else resize_batch(example_inputs, batch)
            x = cast_inputs(x, cfg.torch_dtype, device)
            if not res.costs:
                res.costs = {n: _per_sample(model_cost(m, x), batch) for n, m in prepared.items()}
            pool = input_pool(x, cache_bytes=cfg.cache_bytes, seed=batch)
            for rt in cfg.runtimes:
                res.cells.extend(_time_runtime(rt, prepared, pool, batch, cfg, device,
                                               baseline))
    return res


def _per_sample(cost: ModelCost, batch: int) -> ModelCost:
    return ModelCost(cost.params, cost.nonzero_params, cost.size_bytes, cost.macs // batch,
                     cost.effective_macs // batch)


def bench(model: nn.Module, example_inputs: Any, config: BenchConfig | None = None,
          **kwargs: Any) -> BenchResult:
    """Measure one model (see :func:`compare`)."""
    return compare({"model": model}, example_inputs, config, **kwargs)
