"""Recovery recipes: frozen, validated dataclasses (YAML is a thin layer over them).

>>> recipe = Recipe(method="unstructured", criterion="l1", target=TargetSpec(ratio=0.5),
...                 schedule=Cubic(steps=10), finetune=Finetune(epochs=2),
...                 distill=Distill(temperature=4.0, alpha=0.7))

Every ``ValueError`` raised here starts with the field name (``epochs: must be > 0``); the YAML
loader prefixes the key path (``finetune.epochs: must be > 0``).

A target's *amount* is what a schedule ramps: the fraction removed in the target's own unit
(``ratio`` -> fraction of weights/channels pruned; ``macs``/``params`` -> ``1 - kept fraction``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Union

from prunekit.config import TargetSpec
from prunekit.masks.select import parse_pattern
from prunekit.recover.tasks import TASKS



def __getattr__(name: str) -> Any:
    if name == "Target":  # the old spelling, kept for one release
        import warnings

        warnings.warn("prunekit.recover.recipe.Target is deprecated; use prunekit.TargetSpec",
                      DeprecationWarning, stacklevel=2)
        return TargetSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fail(name: str, msg: str) -> None:
    raise ValueError(f"{name}: {msg}")


def _int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, f"must be an integer, got {value!r}")
    if value < minimum:
        _fail(name, f"must be {'> 0' if minimum == 1 else f'>= {minimum}'}, got {value}")


def _num(value: Any, name: str, lo: float, hi: float, hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        _fail(name, f"must be a number, got {value!r}")
    if value < lo or value > hi or (hi_open and value == hi):
        _fail(name, f"must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value!r}")


def _positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        _fail(name, f"must be a number, got {value!r}")
    if value <= 0 or math.isinf(value):
        _fail(name, f"must be > 0 (and finite), got {value!r}")


def _choice(value: Any, name: str, options: tuple[str, ...]) -> None:
    if value not in options:
        _fail(name, f"must be one of {', '.join(options)}; got {value!r}")


def target_amount(target: TargetSpec) -> float:
    """Fraction removed in the target's own unit (what schedules ramp from 0 to)."""
    if target.ratio is not None:
        return float(target.ratio)
    if target.macs is not None:
        return 1.0 - float(target.macs)
    if target.params is not None:
        return 1.0 - float(target.params)
    return 1.0 - float(target.latency)


# --- schedules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OneShot:
    """Prune to the target once, before fine-tuning."""

    kind: str = field(default="oneshot", init=False)


@dataclass(frozen=True)
class Iterative:
    """``steps`` equal pruning steps (amount ``end * i / steps``), each followed by an equal share
    of the fine-tuning budget (Han et al., NeurIPS 2015: prune -> retrain, repeated). With the
    cosine LR schedule every retrain cycle gets its own cosine cycle (warm restart at each step),
    so the last step is not retrained at a near-zero learning rate."""

    steps: int = 3
    kind: str = field(default="iterative", init=False)

    def __post_init__(self) -> None:
        _int(self.steps, "steps", 1)


@dataclass(frozen=True)
class Cubic:
    """Gradual pruning of Zhu & Gupta, "To prune, or not to prune", 2017.

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3`` for ``t = t0, t0 + dt, ...,
    t0 + n * dt``; masks are updated only at those optimizer steps.

    Attributes:
        steps: ``n``, the number of mask updates after ``t0``.
        start: ``s_i``, the amount at ``t0``.
        end: ``s_f``; ``None`` takes the recipe target's amount (must match it when given).
        begin: ``t0`` in optimizer steps of the fine-tuning phase.
        every: ``dt`` in optimizer steps; ``None`` spreads the updates over the first 75 % of
            fine-tuning, leaving the last quarter to recover.
    """

    steps: int = 10
    start: float = 0.0
    end: float | None = None
    begin: int = 0
    every: int | None = None
    kind: str = field(default="cubic", init=False)

    def __post_init__(self) -> None:
        _int(self.steps, "steps", 1)
        _num(self.start, "start", 0.0, 1.0, hi_open=True)
        if self.end is not None:
            _num(self.end, "end", 0.0, 1.0, hi_open=True)
            if self.end < self.start:
                _fail("end", f"must be >= start ({self.start}), got {self.end}")
        _int(self.begin, "begin", 0)
        if self.every is not None:
            _int(self.every, "every", 1)


Schedule = Union[OneShot, Iterative, Cubic]
SCHEDULES = {"oneshot": OneShot, "iterative": Iterative, "cubic": Cubic}


# --- training pieces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Finetune:
    """A training phase (fine-tuning, or sparse training before pruning).

    Attributes:
        epochs: passes over the training loader.
        lr: learning rate; ``optimizer``: ``sgd`` (momentum) or ``adamw``.
        lr_schedule: ``cosine`` (to 0 over the phase) or ``constant``.
        batch_size: used when prunekit builds the loaders (CLI / YAML ``data``).
        amp: autocast (bfloat16 on CPU, float16 + GradScaler on CUDA).
        grad_clip: max gradient norm, or ``None``.
        checkpoint_every: also checkpoint every that many optimizer steps (always at epoch end).
        max_steps_per_epoch: cap on batches per epoch (quick runs), or ``None``.
    """

    epochs: int = 1
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    batch_size: int = 64
    amp: bool = False
    grad_clip: float | None = None
    checkpoint_every: int | None = None
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        _int(self.epochs, "epochs", 1)
        _positive(self.lr, "lr")
        _choice(self.optimizer, "optimizer", ("sgd", "adamw"))
        _num(self.momentum, "momentum", 0.0, 1.0, hi_open=True)
        _num(self.weight_decay, "weight_decay", 0.0, 1.0)
        _choice(self.lr_schedule, "lr_schedule", ("cosine", "constant"))
        _int(self.batch_size, "batch_size", 1)
        if not isinstance(self.amp, bool):
            _fail("amp", f"must be true/false, got {self.amp!r}")
        if self.grad_clip is not None:
            _positive(self.grad_clip, "grad_clip")
        for name in ("checkpoint_every", "max_steps_per_epoch"):
            if getattr(self, name) is not None:
                _int(getattr(self, name), name, 1)


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation from the dense teacher (Hinton et al., 2015).

    ``loss = (1 - alpha) * task + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
    + hidden_weight * sum MSE(proj(h_s), h_t)`` (hidden matching: FitNets, Romero et al. 2015).

    Attributes:
        temperature: ``T`` > 0.
        alpha: weight of the soft (KL) term in [0, 1].
        hidden: ``(student_module, teacher_module)`` name pairs whose outputs are matched through
            a learnable linear projection (1x1 conv for 4-D outputs).
        hidden_weight: weight of the hidden-state term.
    """

    temperature: float = 4.0
    alpha: float = 0.7
    hidden: tuple[tuple[str, str], ...] = ()
    hidden_weight: float = 1.0

    def __post_init__(self) -> None:
        _positive(self.temperature, "temperature")
        _num(self.alpha, "alpha", 0.0, 1.0)
        pairs = tuple(tuple(p) for p in self.hidden)
        for i, p in enumerate(pairs):
            if len(p) != 2 or not all(isinstance(s, str) and s for s in p):
                _fail(f"hidden[{i}]", f"must be a (student, teacher) module-name pair, got {p!r}")
        object.__setattr__(self, "hidden", pairs)
        _num(self.hidden_weight, "hidden_weight", 0.0, math.inf)


@dataclass(frozen=True)
class DataSpec:
    """Data a recipe names (built by the CLI): a built-in task or ``module:pkg.mod:factory``
    returning ``(train_dataset, val_dataset)``.

    Attributes:
        name: ``digits``, ``mnist1d`` or ``module:pkg.mod:factory``.
        limit: use only the first N samples of each split (quick runs).
        shuffle: shuffle training batches (seeded; identical across ranks and resumes).
    """

    name: str = "digits"
    limit: int | None = None
    shuffle: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not (
                self.name in TASKS or (self.name.startswith("module:")
                                       and self.name.count(":") == 2)):
            _fail("name", f"unknown data {self.name!r}; use {', '.join(TASKS)} or "
                  "module:pkg.mod:factory")
        if self.limit is not None:
            _int(self.limit, "limit", 1)
        if not isinstance(self.shuffle, bool):
            _fail("shuffle", f"must be true/false, got {self.shuffle!r}")


METHODS = ("unstructured", "nm", "structured", "slimming", "progressive")
"""``unstructured``: weight masks; ``nm``: N:M masks; ``structured``: channel removal with
the structural planner; ``slimming``: Network Slimming (L1 on BN gamma, then channels by |gamma|);
``progressive``: weight masks layer by layer, input to output, retraining after each layer."""


@dataclass(frozen=True)
class Recipe:
    """A complete pruning-and-recovery run.

    Attributes:
        method: one of :data:`METHODS`.
        criterion: importance criterion (``l1``, ``taylor``, ... ; ``bn_scale`` for slimming).
        target: :class:`~prunekit.config.TargetSpec`; for ``nm`` it may be omitted (implied by ``pattern``).
        schedule: :class:`OneShot`, :class:`Iterative` or :class:`Cubic`.
        finetune: the recovery phase after (and during) pruning.
        distill: optional :class:`Distill` from the dense teacher.
        pretrain: optional training phase before pruning (dense, or sparse for slimming).
        scope: ``layer`` or ``global`` ranking for weight masks.
        pattern: ``"N:M"`` for ``nm``.
        l1: slimming's L1 penalty on BatchNorm gamma (Liu et al. 2017 use 1e-4 to 1e-5).
        calib_batches: training batches used for gradient/activation criteria at each event.
        exclude: module globs/types never pruned.
        overrides: ``(glob, ratio)`` pairs: per-layer final ratios for weight masks (e.g. chosen
            by :func:`prunekit.recover.sensitivity.sensitivity`); scheduled proportionally.
        seed: seeds torch, numpy and random at the start of the run.
        model, data, eval: what the CLI builds (``module:pkg.mod:factory``, ``digits``, ...).
    """

    method: str = "unstructured"
    criterion: str = "l1"
    target: TargetSpec | None = None
    schedule: Schedule = field(default_factory=OneShot)
    finetune: Finetune = field(default_factory=Finetune)
    distill: Distill | None = None
    pretrain: Finetune | None = None
    scope: str = "layer"
    pattern: str | None = None
    l1: float = 1e-4
    calib_batches: int = 4
    exclude: tuple[str, ...] = ()
    overrides: tuple[tuple[str, float], ...] = ()
    seed: int = 0
    model: str | None = None
    data: DataSpec | None = None
    eval: str = "accuracy"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            _fail("method", f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if not isinstance(self.criterion, str) or not self.criterion:
            _fail("criterion", f"must be a name, got {self.criterion!r}")
        _choice(self.scope, "scope", ("layer", "local", "global"))
        if not isinstance(self.schedule, (OneShot, Iterative, Cubic)):
            _fail("schedule", f"must be OneShot, Iterative or Cubic, got {self.schedule!r}")
        _num(self.l1, "l1", 0.0, math.inf)
        _int(self.calib_batches, "calib_batches", 1)
        _int(self.seed, "seed", 0)
        if isinstance(self.data, str):
            object.__setattr__(self, "data", DataSpec(self.data))
        if self.data is not None and not isinstance(self.data, DataSpec):
            _fail("data", f"must be a DataSpec or a name, got {self.data!r}")
        if self.model is not None and (not isinstance(self.model, str) or ":" not in self.model):
            _fail("model", f"must be a spec such as prunekit:cnn2d, module:pkg.mod:factory or "
                  f"torchvision:resnet18; got {self.model!r}")
        _choice(self.eval, "eval", ("accuracy",))
        object.__setattr__(self, "exclude", tuple([self.exclude] if isinstance(self.exclude, str)
                                                  else self.exclude))
        ov = self.overrides.items() if isinstance(self.overrides, dict) else self.overrides
        object.__setattr__(self, "overrides", tuple((str(k), v) for k, v in ov))
        for k, v in self.overrides:
            _num(v, f"overrides[{k!r}]", 0.0, 1.0, hi_open=True)
        if self.overrides and self.method not in ("unstructured", "progressive"):
            _fail("overrides", f"per-layer ratios apply to weight masks, not method {self.method!r}")
        self._check_target()

    def _check_target(self) -> None:
        if self.method == "nm":
            try:
                n, m = parse_pattern(self.pattern) or (None, None)
            except ValueError as e:
                _fail("pattern", str(e))
            if n is None:
                _fail("pattern", "method nm needs pattern 'N:M' (e.g. '2:4')")
            implied = 1.0 - n / m
            if self.target is None:
                object.__setattr__(self, "target", TargetSpec(ratio=implied))
            elif self.target.ratio is None or abs(self.target.ratio - implied) > 1e-9:
                _fail("target", f"unreachable with pattern {n}:{m}: N:M masks remove exactly "
                      f"{implied:g} of the weights (use target ratio {implied:g} or omit it)")
        elif self.pattern is not None:
            _fail("pattern", f"only used by method nm, not {self.method!r}")
        if self.target is None:
            _fail("target", f"method {self.method!r} needs a target")
        if self.method in ("unstructured", "progressive") and self.target.ratio is None:
            _fail("target", f"unreachable with method {self.method!r}: weight masks leave the dense "
                  "MACs/params/latency unchanged; give ratio (fraction of weights to prune)")
        if self.method == "slimming" and self.criterion != "bn_scale":
            _fail("criterion", f"slimming ranks channels by |gamma|: use bn_scale, not "
                  f"{self.criterion!r}")
        if self.method == "slimming" and self.pretrain is None:
            _fail("pretrain", "slimming needs a sparse-training phase (pretrain: {epochs: N}) "
                  "during which the L1 penalty on BN gamma is applied")
        end = getattr(self.schedule, "end", None)
        if end is not None and abs(end - self.amount) > 1e-9:
            _fail("schedule.end", f"{end} does not match the target, which removes {self.amount:g}")

    @property
    def amount(self) -> float:
        """Final amount removed (what the schedule ramps to)."""
        return target_amount(self.target)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of this recipe (stored in checkpoints)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        out = {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.compare}
        return out
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    return obj


__all__ = [
    "Cubic", "DataSpec", "Distill", "Finetune", "Iterative", "METHODS", "OneShot", "Recipe", "SCHEDULES",
    "Schedule", "TargetSpec", "target_amount",
]
