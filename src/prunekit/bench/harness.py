"""Benchmark harness: dense and pruned models timed side by side in one process.

Rules (DESIGN.md, "Measuring speed honestly"): every model of a comparison runs under the same
runtime, dtype, batch and thread count; samples are interleaved round-robin (order reversed
every round so drift hits all models alike); warm-up first; CUDA events on GPU; rotating
distinct random inputs larger than the cache; median and p10/p90 reported; the speedup is the
median of per-round paired ratios, so the spread of the ratio is honest too.

>>> res = compare({"dense": dense, "pruned": pruned}, torch.randn(1, 3, 224, 224),
...               BenchConfig(batches=(1, 32), runtimes=("eager", "onnxruntime")))
>>> res.speedups()
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit.bench.config import BenchConfig
from prunekit.bench.env import environment
from prunekit.bench.inputs import cast_inputs, input_pool, resize_batch
from prunekit.bench.metrics import ModelCost, energy_per_inference, model_cost, peak_memory
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
                             "energy_note": self.energy_note}
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
                ratios = [x / y for x, y in zip(b.latency.samples, c.latency.samples, strict=True)]
                row.update(status="ok", speedup=percentile(ratios, 50),
                           speedup_p10=percentile(ratios, 10), speedup_p90=percentile(ratios, 90),
                           baseline_ms=b.latency.median, model_ms=c.latency.median)
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bench", "config": self.config.to_dict(), "baseline": self.baseline,
            "environment": self.environment, "notes": list(self.notes),
            "models": {k: v.to_dict() for k, v in self.costs.items()},
            "cells": [c.to_dict() for c in self.cells], "speedups": self.speedups(),
        }


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


def _time_runtime(rt: str, models: dict[str, nn.Module], pool: list[Any], batch: int,
                  cfg: BenchConfig, device: torch.device) -> list[BenchCell]:
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
        try:
            stats = interleaved_samples(fns, pool, warmup=cfg.warmup, repeats=cfg.repeats,
                                        numbers=numbers, clock=clock)
        except Exception as e:  # noqa: BLE001
            for n in fns:
                cells[n].error = f"timing failed: {type(e).__name__}: {e}"
            stats = {}
        for n, s in stats.items():
            cells[n].latency = s
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
                res.cells.extend(_time_runtime(rt, prepared, pool, batch, cfg, device))
    return res


def _per_sample(cost: ModelCost, batch: int) -> ModelCost:
    return ModelCost(cost.params, cost.nonzero_params, cost.size_bytes, cost.macs // batch,
                     cost.effective_macs // batch)


def bench(model: nn.Module, example_inputs: Any, config: BenchConfig | None = None,
          **kwargs: Any) -> BenchResult:
    """Measure one model (see :func:`compare`)."""
    return compare({"model": model}, example_inputs, config, **kwargs)
