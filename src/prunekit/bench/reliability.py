"""Paired speedups with a bootstrap confidence interval, and when to distrust them.

Dense and pruned are timed in interleaved rounds, so each round gives one paired ratio
``dense_ms / model_ms``; drift (frequency scaling, other processes) hits both halves of a pair
alike. The speedup is the median of those ratios; its 95% interval is a percentile bootstrap
over rounds (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13).

A figure is *reliable* only when all of these hold:

- at least :data:`MIN_ROUNDS` rounds were measured;
- the interval's half-width is within ``tolerance`` of the speedup (default ±5%);
- the median of ratios and the ratio of medians agree: when contention comes and goes, the
  two estimates part, and a ratio of medians outside the interval (by more than half the
  tolerance) means the pairs were not exchangeable;
- the contention probe (:mod:`prunekit.bench.contention`) saw no busy machine.

Every reason a figure is unreliable is kept as a sentence, so reports can say why.

>>> est = paired_speedup([4.0, 4.1, 3.9, 4.0, 4.0], [1.0, 1.0, 1.0, 1.0, 1.0])
>>> round(est.speedup, 2), est.reliable
(4.0, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_ROUNDS = 5
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class SpeedupEstimate:
    """A paired speedup with its interval and reliability verdict.

    Attributes:
        speedup: median over rounds of ``baseline_ms / model_ms``.
        ratio_of_medians: ``median(baseline_ms) / median(model_ms)``.
        ci_low, ci_high: bootstrap interval of ``speedup`` at ``level``.
        rounds: paired rounds used.
        tolerance: the half-width (relative) a reliable figure may have.
        reasons: why the figure is unreliable (empty when reliable).
    """

    speedup: float
    ratio_of_medians: float
    ci_low: float
    ci_high: float
    rounds: int
    level: float = 0.95
    tolerance: float = DEFAULT_TOLERANCE
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def half_width(self) -> float:
        """Relative half-width of the interval (0.05 means ±5%)."""
        return (self.ci_high - self.ci_low) / 2 / self.speedup if self.speedup > 0 else np.inf

    @property
    def reliable(self) -> bool:
        return not self.reasons

    def with_reasons(self, extra: Sequence[str]) -> SpeedupEstimate:
        """A copy with more reasons (e.g. the contention probe's verdict)."""
        kept = tuple(self.reasons) + tuple(r for r in extra if r not in self.reasons)
        return SpeedupEstimate(self.speedup, self.ratio_of_medians, self.ci_low, self.ci_high,
                               self.rounds, self.level, self.tolerance, kept)

    def to_dict(self) -> dict[str, Any]:
        return {"speedup": self.speedup, "ratio_of_medians": self.ratio_of_medians,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "ci_level": self.level,
                "ci_half_width": self.half_width, "rounds": self.rounds,
                "tolerance": self.tolerance, "reliable": self.reliable,
                "unreliable_reasons": list(self.reasons)}


def bootstrap_median_ci(values: Sequence[float], level: float = 0.95, n_boot: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (deterministic for a seed)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("values must not be empty")
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    meds = np.median(v[rng.integers(0, v.size, size=(n_boot, v.size))], axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(meds, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_speedup(baseline_ms: Sequence[float], model_ms: Sequence[float], *,
                   tolerance: float = DEFAULT_TOLERANCE, level: float = 0.95,
                   n_boot: int = 2000, seed: int = 0) -> SpeedupEstimate:
    """Speedup of a model over the baseline from interleaved rounds (same length, paired).

    Args:
        baseline_ms, model_ms: per-round latencies; round ``i`` of both were taken together.
        tolerance: relative half-width above which the figure is unreliable.
        level: confidence level of the interval.

    Returns:
        A :class:`SpeedupEstimate` (``reasons`` says why it is unreliable, if it is).
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    b = np.asarray(baseline_ms, dtype=np.float64)
    m = np.asarray(model_ms, dtype=np.float64)
    if b.shape != m.shape or b.size == 0:
        raise ValueError(f"baseline_ms and model_ms must be paired rounds of equal non-zero "
                         f"length, got {b.size} and {m.size}")
    if (m <= 0).any() or (b <= 0).any():
        raise ValueError("latencies must be > 0 ms")
    ratios = b / m
    speedup = float(np.median(ratios))
    rom = float(np.median(b) / np.median(m))
    lo, hi = bootstrap_median_ci(ratios, level, n_boot, seed)
    est = SpeedupEstimate(speedup, rom, lo, hi, int(b.size), level, tolerance)
    return est.with_reasons(_reasons(est))


def _reasons(e: SpeedupEstimate) -> list[str]:
    out = []
    if e.rounds < MIN_ROUNDS:
        out.append(f"only {e.rounds} rounds (at least {MIN_ROUNDS} needed for an interval)")
    if e.half_width > e.tolerance:
        out.append(f"interval ±{100 * e.half_width:.1f}% is wider than ±{100 * e.tolerance:g}%")
    outside = not e.ci_low <= e.ratio_of_medians <= e.ci_high
    if outside and abs(e.ratio_of_medians / e.speedup - 1) > e.tolerance / 2:
        gap = abs(e.ratio_of_medians / e.speedup - 1)
        out.append(f"median of ratios and ratio of medians disagree by {100 * gap:.0f}%, "
                   "beyond the interval")
    return out


def needs_more(estimates: Sequence[SpeedupEstimate]) -> bool:
    """Whether any interval is still wider than its tolerance (adaptive repetition goes on)."""
    return any(e.rounds < MIN_ROUNDS or e.half_width > e.tolerance for e in estimates)
