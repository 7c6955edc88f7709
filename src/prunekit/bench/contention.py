"""Contention probe: is someone else using the CPU while we time?

Interleaving cancels *steady* slowdowns, but a shared machine's load comes and goes. The
probe times a fixed reference workload (a float32 matrix product at the benchmark's thread
count) before, between and after the timed chunks, with both the wall clock and this
process's CPU clock, and reads the load average. The machine is called busy when

- the CPU share the workload got (``cpu_time / (wall_time × threads)``) fell below
  ``min_share`` at any probe: our threads waited for a core; or
- the reference workload's time drifted by more than ``max_drift`` between probes; or
- the 1-minute load average exceeds ``max_load_per_cpu`` × the CPU count.

>>> probe = ContentionProbe(threads=1)
>>> _ = probe.sample("before"), probe.sample("after")
>>> isinstance(probe.verdict().busy, bool)
True
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


@dataclass(frozen=True)
class ProbePoint:
    label: str
    wall_ms: float
    cpu_ms: float
    threads: int
    load: float | None

    @property
    def share(self) -> float:
        """CPU share the reference workload got: 1.0 when all its threads ran undisturbed."""
        return min(1.0, self.cpu_ms / max(self.wall_ms * self.threads, 1e-9))


@dataclass(frozen=True)
class ContentionReport:
    busy: bool
    reason: str
    points: tuple[ProbePoint, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"busy": self.busy, "reason": self.reason,
                "points": [dict(p.__dict__, share=p.share) for p in self.points]}


def _reference_workload(threads: int) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(384, 384, generator=gen)
    b = torch.randn(384, 384, generator=gen)

    def run() -> None:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for _ in range(3):
                torch.mm(a, b)
        finally:
            torch.set_num_threads(old)

    return run


class ContentionProbe:
    """Times a fixed reference workload at chosen moments and judges the machine busy or not.

    Args:
        threads: threads of the reference workload (use the benchmark's).
        reps: workload runs per probe point (timed together).
        min_share, max_drift, max_load_per_cpu: thresholds of the verdict (see module doc).
        workload: a custom ``() -> None`` reference (tests).
        load_fn: a custom load-average reader (tests).
    """

    def __init__(self, threads: int = 1, *, reps: int = 5, min_share: float = 0.75,
                 max_drift: float = 0.25, max_load_per_cpu: float = 2.0,
                 workload: Callable[[], None] | None = None,
                 load_fn: Callable[[], float | None] = load_average) -> None:
        if threads < 1 or reps < 1:
            raise ValueError(f"threads and reps must be >= 1, got {threads}, {reps}")
        self.threads, self.reps = threads, reps
        # The built-in workload runs on one thread: a matmul this small is not spread over
        # several threads, so a share computed over more would read as contention on an idle
        # machine. One thread that waits for a core shows the contention all the same.
        self.work_threads = threads if workload is not None else 1
        self.min_share, self.max_drift, self.max_load = min_share, max_drift, max_load_per_cpu
        self.workload = workload or _reference_workload(1)
        self.load_fn = load_fn
        self.points: list[ProbePoint] = []
        self.workload()  # warm up

    def sample(self, label: str) -> ProbePoint:
        """Time the reference workload now (mean of ``reps`` back-to-back runs) and read the
        load. Totals, not a median: one short run often fits in a scheduler slice that another
        process does not interrupt, so a median of runs can read an idle core on a busy
        machine; the runs together span several slices."""
        w0, c0 = time.perf_counter_ns(), time.process_time_ns()
        for _ in range(self.reps):
            self.workload()
        wall = (time.perf_counter_ns() - w0) / 1e6 / self.reps
        cpu = (time.process_time_ns() - c0) / 1e6 / self.reps
        p = ProbePoint(label, wall, cpu, self.work_threads, self.load_fn())
        self.points.append(p)
        return p

    def verdict(self) -> ContentionReport:
        """Busy or not, with the reason in words (empty reason when quiet)."""
        pts = tuple(self.points)
        if not pts:
            return ContentionReport(False, "", pts)
        why = []
        share = min(p.share for p in pts)
        if share < self.min_share:
            why.append(f"the reference workload got {100 * share:.0f}% of {self.work_threads} "
                       "core(s)")
        walls = [p.wall_ms for p in pts]
        drift = max(walls) / max(min(walls), 1e-9) - 1
        if len(pts) > 1 and drift > self.max_drift:
            why.append(f"the reference workload's time varied by {100 * drift:.0f}%")
        loads = [p.load for p in pts if p.load is not None]
        cpus = os.cpu_count() or 1
        if loads and max(loads) > self.max_load * cpus:
            why.append(f"load average {max(loads):.1f} on {cpus} CPUs")
        return ContentionReport(bool(why), "; ".join(why), pts)


def load_text(points: tuple[ProbePoint, ...] | list[ProbePoint]) -> str:
    """``"load average 0.4–1.2 on 2 CPUs"`` over the probe points (or the current load)."""
    loads = [p.load for p in points if p.load is not None] or [load_average()]
    loads = [v for v in loads if v is not None]
    if not loads:
        return "load average unknown"
    lo, hi = min(loads), max(loads)
    span = f"{lo:.1f}" if abs(hi - lo) < 0.05 else f"{lo:.1f}–{hi:.1f}"
    return f"load average {span} on {os.cpu_count()} CPUs"
