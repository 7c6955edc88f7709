"""Pruning schedules as pure functions: which amount is in force at each optimizer step.

An *event* ``(t, s)`` means "before optimizer step ``t`` of the phase, prune to amount ``s``"
(cumulative: masks combine, so already-pruned weights stay pruned and the total is exactly
``s``). Amounts are in the target's unit (see :func:`prunekit.recover.recipe.target_amount`).

N:M ramp (our choice, documented): the schedule's amount is mapped to the nearest achievable
level at or below it by *decreasing N at fixed M*: ``M:M`` (dense) -> ``(M-1):M`` -> ... ->
``N:M``. Every intermediate mask is a valid, nested ``N':M`` mask, so the final mask is
hardware-valid and nothing pruned is ever revived.
"""

from __future__ import annotations

import math

from prunekit.recover.recipe import Cubic, Iterative, OneShot, Schedule

CUBIC_SPAN = 0.75
"""With ``Cubic(every=None)`` the updates span the first 75 % of fine-tuning."""


def cubic_sparsity(t: int, start: float, end: float, t0: int, steps: int, every: int) -> float:
    """Zhu & Gupta (2017): ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3``, held constant
    between updates (``t`` is floored to the last update) and clamped outside ``[t0, t0+n dt]``.
    """
    if t < t0:
        return 0.0
    j = min((t - t0) // every, steps)
    return end + (start - end) * (1.0 - j / steps) ** 3


def cubic_every(schedule: Cubic, total_steps: int) -> int:
    """``dt`` of a cubic schedule for a phase of ``total_steps`` optimizer steps."""
    if schedule.every is not None:
        return schedule.every
    return max(1, math.floor(CUBIC_SPAN * (total_steps - schedule.begin) / schedule.steps))


def events(schedule: Schedule, amount: float, total_steps: int) -> list[tuple[int, float]]:
    """The pruning events ``[(step, amount), ...]`` of ``schedule`` over ``total_steps``.

    Raises:
        ValueError: the schedule does not fit in the phase (named ``schedule.<field>``).
    """
    if total_steps < 1:
        raise ValueError(f"schedule: the fine-tuning phase has no optimizer steps ({total_steps})")
    if isinstance(schedule, OneShot):
        return [(0, amount)]
    if isinstance(schedule, Iterative):
        k = schedule.steps
        if k > total_steps:
            raise ValueError(f"schedule.steps: {k} pruning steps need at least {k} optimizer "
                             f"steps; fine-tuning has {total_steps}")
        return [(i * total_steps // k, amount * (i + 1) / k) for i in range(k)]
    if isinstance(schedule, Cubic):
        end = amount if schedule.end is None else schedule.end
        dt = cubic_every(schedule, total_steps)
        last = schedule.begin + schedule.steps * dt
        if last >= total_steps:
            raise ValueError(f"schedule: the last cubic update (step {last} = begin + steps * "
                             f"every) is beyond the fine-tuning budget of {total_steps} steps")
        return [(schedule.begin + j * dt,
                 cubic_sparsity(schedule.begin + j * dt, schedule.start, end, schedule.begin,
                                schedule.steps, dt))
                for j in range(schedule.steps + 1)]
    raise ValueError(f"schedule: unknown schedule {schedule!r}")


def amount_at(schedule: Schedule, amount: float, total_steps: int, t: int) -> float:
    """Amount in force during optimizer step ``t`` (after any event at ``t``)."""
    current = 0.0
    for step, value in events(schedule, amount, total_steps):
        if step <= t:
            current = value
    return current


def nm_level(value: float, final: float, n: int, m: int) -> int | None:
    """N' of the N:M ramp for scheduled amount ``value`` of ``final`` (``None`` = still dense).

    ``N' = M - floor((value / final) * (M - N))``, so ``value = final`` gives exactly ``N``.
    """
    if final <= 0:
        return None
    frac = min(max(value / final, 0.0), 1.0)
    removed = math.floor(frac * (m - n) + 1e-9)
    return None if removed == 0 else m - removed


__all__ = ["CUBIC_SPAN", "amount_at", "cubic_every", "cubic_sparsity", "events", "nm_level"]
