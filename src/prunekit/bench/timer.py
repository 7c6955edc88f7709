"""Latency measurement: warm-up, synchronized timing, repeats, median with p10/p90.

Dense and pruned models are compared with :func:`compare_latency`, which interleaves them in one
process (same runtime, dtype, batch and threads) so drift hits both equally. Inputs rotate among
several random batches (never zeros).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunekit.calibration import call_model


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds over ``n`` timed repeats."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    n: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: relative spread of the repeats."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms else 0.0

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no timing samples")
        xs = sorted(samples_ms)
        return cls(statistics.median(xs), _quantile(xs, 0.10), _quantile(xs, 0.90),
                   statistics.fmean(xs), len(xs))


def _quantile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already-sorted data."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _timed_call(fn: Callable[[], Any], device: torch.device) -> float:
    """One call's wall time in ms (CUDA events on GPU, perf_counter on CPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def compare_latency(
    models: dict[str, nn.Module],
    make_inputs: Callable[[int], Any],
    *,
    warmup: int = 5,
    repeats: int = 30,
    rotate: int = 4,
) -> dict[str, LatencyStats]:
    """Time several models on the same rotating inputs, interleaved call by call.

    Args:
        models: name -> model (all on the same device, already in eval mode and dtype).
        make_inputs: ``i -> inputs``; called ``rotate`` times up front.
        warmup: untimed calls per model.
        repeats: timed calls per model.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    inputs = [make_inputs(i) for i in range(max(rotate, 1))]
    samples: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for i in range(warmup):
            for m in models.values():
                call_model(m, inputs[i % len(inputs)])
        for i in range(repeats):
            names = list(models) if i % 2 == 0 else list(reversed(list(models)))
            for name in names:
                m, x = models[name], inputs[i % len(inputs)]
                samples[name].append(_timed_call(lambda: call_model(m, x), _device_of(m)))
    return {k: LatencyStats.from_samples(v) for k, v in samples.items()}


def measure_latency(model: nn.Module, make_inputs: Callable[[int], Any], **kw) -> LatencyStats:
    """Latency of one model (see :func:`compare_latency`)."""
    return compare_latency({"model": model}, make_inputs, **kw)["model"]
