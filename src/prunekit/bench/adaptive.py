"""Adaptive repetition: keep timing, interleaved, until every speedup interval is tight.

The first chunk is ``repeats`` rounds; after each chunk every model's paired speedup over the
baseline gets its bootstrap interval (:func:`prunekit.bench.reliability.paired_speedup`), and
timing goes on in further chunks while any interval is wider than the tolerance, until
``max_repeats`` rounds or ``budget_s`` seconds are spent. The contention probe, when given,
runs before the first chunk, between chunks and after the last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prunekit.bench.contention import ContentionProbe
from prunekit.bench.reliability import needs_more, paired_speedup
from prunekit.bench.timer import Clock, LatencyStats, interleaved_samples


@dataclass(frozen=True)
class AdaptivePlan:
    """How long to keep timing.

    Attributes:
        repeats: rounds of the first chunk (also the minimum).
        max_repeats: never more rounds than this.
        tolerance: target relative half-width of every speedup interval.
        budget_s: wall-clock seconds after which no new chunk starts.
        chunk: rounds per further chunk (default: half of ``repeats``, at least 5).
    """

    repeats: int
    max_repeats: int
    tolerance: float = 0.05
    budget_s: float = 20.0
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.max_repeats < self.repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) must be >= repeats "
                             f"({self.repeats})")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance!r}")
        if self.budget_s < 0:
            raise ValueError(f"budget_s must be >= 0, got {self.budget_s!r}")

    @property
    def step(self) -> int:
        return self.chunk or max(5, self.repeats // 2)


def adaptive_samples(
    fns: Mapping[str, Callable[[Any], Any]],
    pool: Sequence[Any],
    *,
    baseline: str | None,
    plan: AdaptivePlan,
    warmup: int,
    numbers: Mapping[str, int],
    clock: Clock | Mapping[str, Clock],
    probe: ContentionProbe | None = None,
    now: Callable[[], float] = time.monotonic,
) -> dict[str, LatencyStats]:
    """Interleaved samples of ``fns``, extended chunk by chunk until intervals are tight.

    Args:
        baseline: the name speedups are taken against (``None`` or absent: no adaptation,
            ``plan.repeats`` rounds only).
        now: the clock of the time budget (tests inject a fake).
    """
    start = now()
    if probe is not None:
        probe.sample("before")
    samples: dict[str, list[float]] = {n: [] for n in fns}
    number_of: dict[str, int] = {}
    reps, first = plan.repeats, True
    while True:
        chunk = interleaved_samples(fns, pool, warmup=warmup if first else 0, repeats=reps,
                                    numbers=numbers, clock=clock)
        first = False
        for n, s in chunk.items():
            samples[n].extend(s.samples)
            number_of[n] = s.number
        done = len(samples[next(iter(samples))])
        if baseline not in fns or done >= plan.max_repeats or now() - start >= plan.budget_s:
            break
        ests = [paired_speedup(samples[baseline], samples[n], tolerance=plan.tolerance)
                for n in fns if n != baseline]
        if not needs_more(ests):
            break
        if probe is not None:
            probe.sample("between")
        reps = min(plan.step, plan.max_repeats - done)
    if probe is not None:
        probe.sample("after")
    return {n: LatencyStats(tuple(s), number_of[n]) for n, s in samples.items()}
