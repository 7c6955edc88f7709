"""Latency timing: clocks (wall clock on CPU, CUDA events on GPU) and robust statistics.

The numbers a user sees are the median and the 10th/90th percentiles over repeated samples,
never a single run or a mean that one hiccup can drag. Each sample times ``number`` calls
and divides, so very short calls are still resolved by the clock.

>>> import torch
>>> stats = measure_latency(torch.nn.Linear(8, 8), torch.randn(1, 8), warmup=2, repeats=5)
>>> stats.p10 <= stats.median <= stats.p90   # milliseconds
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from prunekit.bench.inputs import input_pool
from prunekit.call import call_model


class Clock(Protocol):
    """Times one call of ``fn`` in milliseconds (the injectable seam of every measurement)."""

    def time_call(self, fn: Callable[[], Any]) -> float: ...


class WallClock:
    """``time.perf_counter_ns`` around the call (CPU runtimes: the call is synchronous)."""

    def time_call(self, fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6


class ProcessCpuClock:
    """CPU time of this process around the call (``time.process_time_ns``).

    On a shared, oversubscribed machine wall-clock latency mostly measures other users'
    load; with ONE intra-op thread the process CPU time is the latency the call would have on
    an idle core (cache and memory-bandwidth interference still count). Never use it with more
    than one thread: it then sums the threads' CPU time. Label figures taken with it.
    """

    def time_call(self, fn: Callable[[], Any]) -> float:
        t0 = time.process_time_ns()
        fn()
        return (time.process_time_ns() - t0) / 1e6


class CudaEventClock:
    """CUDA events recorded on the current stream around the call, then synchronized.

    The device is synchronized before the start event so queued work of a previous call is
    not charged to this one.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CudaEventClock needs CUDA, but torch.cuda.is_available() is False")
        self.device = torch.device(device or "cuda")

    def time_call(self, fn: Callable[[], Any]) -> float:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self.device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))


class SyncWallClock:
    """Wall clock between full device synchronizations (runtimes with their own CUDA streams)."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device or "cuda")

    def time_call(self, fn: Callable[[], Any]) -> float:
        torch.cuda.synchronize(self.device)
        t0 = time.perf_counter_ns()
        fn()
        torch.cuda.synchronize(self.device)
        return (time.perf_counter_ns() - t0) / 1e6


def clock_for(device: torch.device | str, device_timed: bool = True) -> Clock:
    """CUDA events on a CUDA device (or a synchronized wall clock), the wall clock on CPU."""
    if torch.device(device).type != "cuda":
        return WallClock()
    return CudaEventClock(device) if device_timed else SyncWallClock(device)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in [0, 100]."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples, all in milliseconds per call.

    Attributes:
        samples: per-sample latency (ms per call), in measurement order.
        number: calls averaged inside each sample.
    """

    samples: tuple[float, ...]
    number: int = 1

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("samples must not be empty")

    @property
    def median(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p10(self) -> float:
        return percentile(self.samples, 10)

    @property
    def p90(self) -> float:
        return percentile(self.samples, 90)

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)

    @property
    def spread(self) -> float:
        """Relative spread ``(p90 - p10) / median`` (0.05 means the middle 80% lie within 5%)."""
        return (self.p90 - self.p10) / self.median if self.median > 0 else float("inf")

    @property
    def repeats(self) -> int:
        return len(self.samples)

    # names of the foundation's first timer (kept: demo and users read them)
    median_ms = median
    p10_ms = p10
    p90_ms = p90
    mean_ms = mean
    n = repeats

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], number: int = 1) -> LatencyStats:
        """Statistics of per-call latencies (ms)."""
        if not samples_ms:
            raise ValueError("no timing samples")
        return cls(tuple(float(v) for v in samples_ms), number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median, "p10_ms": self.p10, "p90_ms": self.p90,
            "mean_ms": self.mean, "spread": self.spread, "repeats": self.repeats,
            "number": self.number, "samples_ms": list(self.samples),
        }


def _check_counts(warmup: int, repeats: int, number: int | None) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                               or number < 1):
        raise ValueError(f"number must be None (auto) or an int >= 1, got {number!r}")


def calibrate_number(clock: Clock, call: Callable[[], Any], min_sample_ms: float,
                     cap: int = 1000) -> int:
    """Calls per sample so one sample lasts at least ``min_sample_ms`` (at most ``cap``)."""
    one = max(clock.time_call(call), 1e-6)
    return max(1, min(cap, math.ceil(min_sample_ms / one)))


@dataclass
class _Rotating:
    """Calls ``fn(inputs[i])`` cycling over distinct inputs (so caches do not serve stale data)."""

    fn: Callable[[Any], Any]
    inputs: Sequence[Any]
    i: int = field(default=0)

    def __call__(self) -> Any:
        x = self.inputs[self.i % len(self.inputs)]
        self.i += 1
        return self.fn(x)

    def many(self, number: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(number):
                self()
        return run


def time_samples(
    fn: Callable[[Any], Any],
    inputs: Sequence[Any],
    *,
    warmup: int = 5,
    repeats: int = 30,
    number: int | None = 1,
    clock: Clock | None = None,
    min_sample_ms: float = 1.0,
) -> LatencyStats:
    """Time ``fn`` over rotating ``inputs``: ``warmup`` untimed calls, then ``repeats`` samples.

    Args:
        fn: one inference ``fn(inputs_i)``; must be synchronous with ``clock``.
        inputs: distinct inputs, used in turn.
        number: calls per sample; ``None`` picks it so a sample lasts ``min_sample_ms``.
        clock: defaults to the wall clock.
    """
    _check_counts(warmup, repeats, number)
    if not inputs:
        raise ValueError("inputs must hold at least one input")
    clock = clock or WallClock()
    rot = _Rotating(fn, inputs)
    for _ in range(warmup):
        rot()
    if number is None:
        number = calibrate_number(clock, rot, min_sample_ms)
    run = rot.many(number)
    samples = tuple(clock.time_call(run) / number for _ in range(repeats))
    return LatencyStats(samples, number)


def interleaved_samples(
    fns: Mapping[str, Callable[[Any], Any]],
    pool: Sequence[Any],
    *,
    warmup: int,
    repeats: int,
    numbers: Mapping[str, int],
    clock: Clock | Mapping[str, Clock],
) -> dict[str, LatencyStats]:
    """Round-robin samples of several callables over the same rotating inputs.

    Round ``r`` times every callable once (``numbers[name]`` calls each), in forward order on
    even rounds and reverse order on odd ones.
    """
    names = list(fns)
    clocks = clock if isinstance(clock, Mapping) else {n: clock for n in names}
    pos = dict.fromkeys(names, 0)

    def call_many(name: str, number: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(number):
                fns[name](pool[pos[name] % len(pool)])
                pos[name] += 1
        return run

    for _ in range(warmup):
        for n in names:
            call_many(n, 1)()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            samples[n].append(clocks[n].time_call(call_many(n, numbers[n])) / numbers[n])
    return {n: LatencyStats(tuple(s), numbers[n]) for n, s in samples.items()}


def _pool_from(inputs: Any, rotate: int | None) -> list[Any]:
    """Rotating inputs: ``inputs`` may be one example or a factory ``i -> inputs``."""

    if callable(inputs) and not isinstance(inputs, (torch.Tensor, nn.Module)):
        return [inputs(i) for i in range(max(rotate or 4, 1))]
    if rotate is not None:
        return input_pool(inputs, min_count=rotate, max_count=rotate)
    return input_pool(inputs)


def compare_latency(
    models: Mapping[str, nn.Module | Callable[..., Any]],
    make_inputs: Any,
    *,
    warmup: int = 5,
    repeats: int = 30,
    rotate: int | None = 4,
    number: int | None = 1,
    clock: Clock | None = None,
    device: torch.device | str | None = None,
) -> dict[str, LatencyStats]:
    """Time several models on the same rotating inputs, interleaved round by round.

    Args:
        models: name -> model (all on one device, in eval mode and the dtype to time).
        make_inputs: ``i -> inputs`` (called ``rotate`` times up front), or one example input
            from which ``rotate`` random distinct copies are made (``rotate=None``: enough
            copies to exceed the cache).
        warmup: untimed calls per model; repeats: timed samples per model.
        number: calls per sample (``None``: calibrated so a sample lasts about 1 ms).
        clock: default: CUDA events when the first model's parameters are on CUDA, else wall.
        device: selects the default clock instead of the first model's parameters.

    Returns:
        name -> :class:`LatencyStats` (``median_ms``, ``p10_ms``, ``p90_ms`` …).
    """

    _check_counts(warmup, repeats, number)
    if not models:
        raise ValueError("models must hold at least one model")
    pool = _pool_from(make_inputs, rotate)
    if clock is None:
        first = next(iter(models.values()))
        params = first.parameters() if isinstance(first, nn.Module) else iter(())
        dev = device or next((p.device for p in params), torch.device("cpu"))
        clock = clock_for(dev)

    def fn_for(m: Any) -> Callable[[Any], Any]:
        def run(x: Any) -> Any:
            with torch.inference_mode():
                return call_model(m, x)
        return run

    fns = {k: fn_for(m) for k, m in models.items()}
    numbers = {k: number or calibrate_number(clock, lambda f=f: f(pool[0]), 1.0)
               for k, f in fns.items()}
    return interleaved_samples(fns, pool, warmup=warmup, repeats=repeats, numbers=numbers,
                               clock=clock)


def measure_latency(model: nn.Module | Callable[..., Any], inputs: Any, **kw: Any) -> LatencyStats:
    """Latency of ``model`` under ``torch.inference_mode`` (see :func:`compare_latency`).

    ``inputs`` is one example input (random distinct copies rotate) or a factory ``i -> inputs``.
    Returns :class:`LatencyStats` with ``median``/``p10``/``p90`` (also ``*_ms``) in milliseconds.
    """
    return compare_latency({"model": model}, inputs, **kw)["model"]
