"""Frozen, validated configuration dataclasses. Strings are parsed at the CLI/YAML edge only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from prunekit.masks.select import parse_pattern
from prunekit.importance import CRITERIA


class Scope(str, Enum):
    """Where a ratio applies: to every layer/group on its own (``local``), as one ranking
    across all of them after per-group normalisation (``global``), or on raw scores with one
    threshold for the whole model (``threshold``, structural only: Network Slimming ranks
    BatchNorm scales this way). ``"layer"`` is accepted as a synonym of ``"local"``."""

    LOCAL = "local"
    GLOBAL = "global"
    THRESHOLD = "threshold"
    LAYER = "local"  # alias: the same member as LOCAL

    @classmethod
    def _missing_(cls, value: object) -> Scope | None:
        if isinstance(value, str) and value.lower() == "layer":
            return cls.LOCAL
        return None


def parse_scope(value: str | Scope, allowed: tuple[Scope, ...] = (Scope.LOCAL, Scope.GLOBAL,
                                                                   Scope.THRESHOLD)) -> Scope:
    """The one scope vocabulary: ``local`` (alias ``layer``), ``global`` or ``threshold``, of
    which ``allowed``; ValueError otherwise."""
    names = " or ".join(repr(s.value) for s in allowed)
    try:
        scope = Scope(value)
    except ValueError:
        raise ValueError(f"scope must be {names} ('layer' means 'local'), got {value!r}") from None
    if scope not in allowed:
        raise ValueError(f"scope must be {names} here, got {value!r}")
    return scope


def check_ratio(value: float, name: str) -> float:
    """Validate a ratio in [0, 1) and return it as float (ValueError names the argument)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    v = float(value)
    if math.isnan(v) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


@dataclass(frozen=True)
class WeightPruneConfig:
    """What :func:`prunekit.prune_weights` does.

    Attributes:
        sparsity: fraction of weights zeroed (unstructured); ignored for N:M patterns.
        criterion: registered criterion name (``l1``, ``l2``, ``random``, ``gradient``, ``taylor``,
            ``activation``).
        scope: ``local`` (alias ``layer``: each layer hits the target) or ``global`` (one ranking
            across layers).
        pattern: ``None`` (unstructured) or ``(n, m)``.
        overrides: module-name glob -> sparsity for those layers (layer-wise).
        exclude: module-name globs or type names never pruned.
        skip_incompatible: with N:M, skip layers whose reduction dim is not divisible by M
            instead of raising.
        seed: seed for the random criterion.
    """

    sparsity: float = 0.5
    criterion: str = "l1"
    scope: Scope = Scope.LOCAL
    pattern: tuple[int, int] | None = None
    overrides: tuple[tuple[str, float], ...] = ()
    exclude: tuple[str, ...] = ()
    skip_incompatible: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_ratio(self.sparsity, "sparsity")
        object.__setattr__(self, "scope", parse_scope(self.scope, (Scope.LOCAL, Scope.GLOBAL)))
        object.__setattr__(self, "pattern", parse_pattern(self.pattern))
        if isinstance(self.overrides, dict):
            object.__setattr__(self, "overrides", tuple(self.overrides.items()))
        for pat, val in self.overrides:
            check_ratio(val, f"overrides[{pat!r}]")
        if isinstance(self.exclude, str):
            object.__setattr__(self, "exclude", (self.exclude,))
        object.__setattr__(self, "exclude", tuple(self.exclude))

        if self.criterion not in CRITERIA:
            CRITERIA.get(self.criterion)  # raises with the known names


@dataclass(frozen=True)
class TargetSpec:
    """A pruning target: exactly one of ratio / params / macs / latency (fractions kept)."""

    ratio: float | None = None
    params: float | None = None
    macs: float | None = None
    latency: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        given = {k: v for k, v in (("ratio", self.ratio), ("params", self.params),
                                   ("macs", self.macs), ("latency", self.latency)) if v is not None}
        if len(given) != 1:
            raise ValueError(f"Target needs exactly one of ratio/params/macs/latency, got {given}")
        (k, v), = given.items()
        if k == "ratio":
            check_ratio(v, "ratio")
        elif not (isinstance(v, (int, float)) and 0.0 < float(v) <= 1.0):
            raise ValueError(f"Target {k} is the fraction of the dense model to keep, in (0, 1]; got {v!r}")
