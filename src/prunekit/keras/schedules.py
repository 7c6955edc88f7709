"""Pruning schedules with TF-MOT's names and semantics (``tfmot.sparsity.keras``).

A schedule maps the training step to ``(should_prune, sparsity)``: masks are recomputed only
on steps where ``should_prune`` is true — every ``frequency`` steps from ``begin_step`` to
``end_step`` (``-1``: no end) — as in Zhu & Gupta, "To prune, or not to prune: exploring the
efficacy of pruning for model compression" (2017), whose cubic polynomial schedule
:class:`PolynomialDecay` implements.
"""

from __future__ import annotations

import keras


def _check_sparsity(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _check_steps(begin_step: int, end_step: int, frequency: int, allow_open_end: bool) -> None:
    for name, v in (("begin_step", begin_step), ("end_step", end_step), ("frequency", frequency)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if begin_step < 0:
        raise ValueError(f"begin_step must be >= 0, got {begin_step}")
    if frequency < 1:
        raise ValueError(f"frequency must be >= 1, got {frequency}")
    if allow_open_end and end_step == -1:
        return
    if end_step < begin_step or (not allow_open_end and end_step == begin_step):
        raise ValueError(f"end_step must be {'-1 or ' if allow_open_end else ''}"
                         f"{'>=' if allow_open_end else '>'} begin_step ({begin_step}), "
                         f"got {end_step}")


class PruningSchedule:
    """Base class: ``schedule(step) -> (should_prune, sparsity)``."""

    begin_step: int
    end_step: int
    frequency: int

    def should_prune(self, step: int) -> bool:
        """In ``[begin_step, end_step]`` (``end_step=-1``: open) and on a ``frequency`` turn."""
        in_range = step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)
        return in_range and (step - self.begin_step) % self.frequency == 0

    def sparsity_at(self, step: int) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> tuple[bool, float]:
        step = int(step)
        return self.should_prune(step), self.sparsity_at(step)

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> PruningSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()


@keras.saving.register_keras_serializable(package="prunekit")
class ConstantSparsity(PruningSchedule):
    """Prune to ``target_sparsity`` every ``frequency`` steps in ``[begin_step, end_step]``.

    Args:
        target_sparsity: fraction of weights zeroed, in [0, 1).
        begin_step: first step at which masks are computed.
        end_step: last step at which masks may change (``-1``: until training ends).
        frequency: steps between two mask updates.
    """

    def __init__(self, target_sparsity: float, begin_step: int, end_step: int = -1,
                 frequency: int = 100) -> None:
        _check_sparsity(target_sparsity, "target_sparsity")
        _check_steps(begin_step, end_step, frequency, allow_open_end=True)
        self.target_sparsity = float(target_sparsity)
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency

    def sparsity_at(self, step: int) -> float:
        return self.target_sparsity

    def get_config(self) -> dict:
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency}


@keras.saving.register_keras_serializable(package="prunekit")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from ``initial_sparsity`` to ``final_sparsity`` along a polynomial.

    ``s(t) = final + (initial - final) * (1 - p)**power`` with
    ``p = clip((t - begin_step) / (end_step - begin_step), 0, 1)`` (Zhu & Gupta 2017, power 3).

    Args:
        initial_sparsity: sparsity at ``begin_step``, in [0, 1).
        final_sparsity: sparsity at and after ``end_step``, in [0, 1).
        begin_step: first step at which masks are computed.
        end_step: step at which ``final_sparsity`` is reached (``> begin_step``).
        power: exponent of the decay (3 in the paper).
        frequency: steps between two mask updates.
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int,
                 end_step: int, power: float = 3, frequency: int = 100) -> None:
        _check_sparsity(initial_sparsity, "initial_sparsity")
        _check_sparsity(final_sparsity, "final_sparsity")
        _check_steps(begin_step, end_step, frequency, allow_open_end=False)
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
            raise ValueError(f"power must be a positive number, got {power!r}")
        self.initial_sparsity, self.final_sparsity = float(initial_sparsity), float(final_sparsity)
        self.begin_step, self.end_step = begin_step, end_step
        self.power, self.frequency = power, frequency

    def sparsity_at(self, step: int) -> float:
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1 - p) ** self.power

    def get_config(self) -> dict:
        return {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}
