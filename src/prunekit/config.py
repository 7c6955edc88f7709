"""Frozen, validated configuration dataclasses. Strings are parsed at the CLI/YAML edge only.

The one home of the target concept: :class:`TargetSpec` (what the whole model should reach:
a ratio, a fraction of the parameters, MACs or latency), its per-layer view :class:`LayerTarget`
(what one layer kernel removes), and :func:`parse_latency_target`, the one parser of a latency
target (``"0.5x"``, ``"50%"``, ``0.5``).
"""

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


def parse_latency_target(value: str | float) -> float:
    """The one reader of a latency target: ``"0.5x"``, ``"0.5"``, ``"50%"`` or ``0.5`` -> 0.5.

    A latency target is the fraction of the dense model's measured latency to reach, in (0, 1).

    Raises:
        ValueError: naming the value, when it is not a number, ``Nx`` or ``N%`` in (0, 1).
    """
    raw = value
    if isinstance(value, str):
        text, scale = value.strip().lower(), 1.0
        if text.endswith("%"):
            text, scale = text[:-1], 0.01
        elif text.endswith("x"):
            text = text[:-1]
        try:
            value = float(text) * scale
        except ValueError:
            raise ValueError(f"target latency must look like 0.5x or 50%, got {raw!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"target latency must be a fraction of dense in (0, 1), got {raw!r}")
    return float(value)


@dataclass(frozen=True)
class TargetSpec:
    """A pruning target for the whole model: exactly one of ratio / params / macs / latency.

    Attributes:
        ratio: fraction of the units (weights, channels) removed, in [0, 1).
        params: fraction of the dense parameter count kept, in (0, 1].
        macs: fraction of the dense MACs kept, in (0, 1].
        latency: fraction of the dense measured latency to reach, in (0, 1); ``"0.5x"`` and
            ``"50%"`` are read by :func:`parse_latency_target`.
    """

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
        elif k == "latency":
            object.__setattr__(self, "latency", parse_latency_target(v))
        elif not (isinstance(v, (int, float)) and 0.0 < float(v) <= 1.0):
            raise ValueError(f"Target {k} is the fraction of the dense model to keep, in (0, 1]; got {v!r}")


@dataclass(frozen=True)
class LayerTarget:
    """The per-layer view of a target: what a one-shot layer kernel removes from one weight.

    :func:`prunekit.prune_llm` builds one per block from its :class:`~prunekit.llm.oneshot.
    OneShotConfig` (uniform or OWL sparsity) and hands it to the registered method
    (``prune(W, stats, target)``).

    Attributes:
        sparsity: fraction of weights zeroed (unstructured), in [0, 1); unused when ``nm`` is set.
        nm: ``(n, m)`` (or ``"n:m"``): keep ``n`` of every ``m`` consecutive input weights of
            each row.
        blocksize: SparseGPT lazy-update block width (columns), a multiple of ``m``.
        percdamp: SparseGPT dampening as a fraction of the mean Hessian diagonal, in [0, 10).
    """

    sparsity: float = 0.5
    nm: tuple[int, int] | None = None
    blocksize: int = 128
    percdamp: float = 0.01

    def __post_init__(self) -> None:
        check_ratio(self.sparsity, "sparsity")
        object.__setattr__(self, "nm", parse_pattern(self.nm))
        if isinstance(self.blocksize, bool) or not isinstance(self.blocksize, int) or self.blocksize < 1:
            raise ValueError(f"blocksize must be a positive integer, got {self.blocksize!r}")
        if not 0.0 <= float(self.percdamp) < 10.0:
            raise ValueError(f"percdamp must be in [0, 10), got {self.percdamp!r}")
        if self.nm is not None and self.blocksize % self.nm[1]:
            raise ValueError(f"blocksize {self.blocksize} must be a multiple of M={self.nm[1]}")
