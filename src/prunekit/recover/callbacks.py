"""Keep your own training code: schedules as Hugging Face ``Trainer`` and Lightning callbacks.

>>> from prunekit.recover.callbacks import HFPruningCallback
>>> trainer = Trainer(model, args, train_dataset=ds,
...                   callbacks=[HFPruningCallback(pk.Cubic(steps=10), amount=0.8)])

Both callbacks drive the framework-independent :class:`ScheduledPruner`: events are computed from
the run's total optimizer steps when training starts, and masks are updated (cumulatively, with
:func:`prunekit.prune_weights`) before the optimizer step each event names. Masks are
parametrizations, so the optimizer keeps updating the same parameter objects. ``transformers``
and ``lightning`` are imported only when their callback class is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from prunekit.masks.apply import finalize
from prunekit.masks.select import parse_pattern
from prunekit.recover.recipe import OneShot, Schedule
from prunekit.recover.schedules import events, nm_level
from prunekit.weights import prune_weights


class ScheduledPruner:
    """Apply a schedule's weight-mask events at given optimizer steps.

    Args:
        schedule: :class:`OneShot`, :class:`Iterative` or :class:`Cubic`.
        amount: final sparsity (for ``pattern`` it must be ``1 - N/M``; may be omitted).
        criterion: as :func:`prunekit.prune_weights`.
        scope: as :func:`prunekit.prune_weights`.
        exclude: as :func:`prunekit.prune_weights`.
        pattern: ``"N:M"`` for the N:M ramp (decreasing N at fixed M).
        calib_data: calibration batches for gradient/activation criteria.
        loss_fn: the loss for gradient criteria.
        finalize_at_end: bake masks into plain weights when training ends.
    """

    def __init__(self, schedule: Schedule | None = None, amount: float | None = None, *,
                 criterion: str = "l1", scope: str = "layer", pattern: str | None = None,
                 exclude: Iterable[str] = (), calib_data: Iterable | None = None,
                 loss_fn: Callable | None = None, finalize_at_end: bool = True) -> None:
        self.schedule = schedule or OneShot()
        self.nm = parse_pattern(pattern)
        if amount is None:
            if self.nm is None:
                raise ValueError("amount: give the final sparsity (or a pattern)")
            amount = 1.0 - self.nm[0] / self.nm[1]
        if not 0.0 <= amount < 1.0:
            raise ValueError(f"amount: must be in [0, 1), got {amount}")
        self.amount = float(amount)
        self.kw = {"criterion": criterion, "scope": scope, "exclude": tuple(exclude),
                   "calib_data": calib_data, "loss_fn": loss_fn}
        self.finalize_at_end = finalize_at_end
        self.plan: dict[int, float] = {}
        self.current = 0.0

    def setup(self, total_steps: int) -> dict[int, float]:
        self.plan = dict(events(self.schedule, self.amount, int(total_steps)))
        return self.plan

    def step(self, model: nn.Module, t: int) -> bool:
        """Prune if an event falls on optimizer step ``t``; True when masks changed."""
        value = self.plan.get(int(t))
        if value is None or value <= self.current + 1e-12:
            return False
        if self.nm is None:
            prune_weights(model, sparsity=value, **self.kw)
        else:
            level = nm_level(value, self.amount, *self.nm)
            if level is None:
                return False
            kw = {k: v for k, v in self.kw.items() if k != "scope"}
            prune_weights(model, pattern=(level, self.nm[1]), skip_incompatible=True, **kw)
        self.current = value
        return True

    def end(self, model: nn.Module) -> None:
        if self.finalize_at_end:
            finalize(model)


def _hf_class() -> type:
    from transformers import TrainerCallback

    class HFPruningCallback(TrainerCallback):
        """``transformers.Trainer`` callback running a prunekit schedule (see module doc)."""

        def __init__(self, schedule: Schedule | None = None, amount: float | None = None,
                     **kwargs: Any) -> None:
            self.pruner = ScheduledPruner(schedule, amount, **kwargs)

        def on_train_begin(self, args, state, control, model=None, **kw):
            self.pruner.setup(state.max_steps)

        def on_step_begin(self, args, state, control, model=None, **kw):
            self.pruner.step(model, state.global_step)

        def on_train_end(self, args, state, control, model=None, **kw):
            self.pruner.end(model)

    return HFPruningCallback


def _lightning_class() -> type:
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback  # type: ignore[no-redef]
        except ImportError as e:
            raise ImportError("LightningPruningCallback needs `pip install lightning`") from e

    class LightningPruningCallback(Callback):
        """PyTorch Lightning callback running a prunekit schedule (see module doc)."""

        def __init__(self, schedule: Schedule | None = None, amount: float | None = None,
                     **kwargs: Any) -> None:
            self.pruner = ScheduledPruner(schedule, amount, **kwargs)

        def on_train_start(self, trainer, pl_module):
            self.pruner.setup(int(trainer.estimated_stepping_batches))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.pruner.step(pl_module, trainer.global_step)

        def on_train_end(self, trainer, pl_module):
            self.pruner.end(pl_module)

    return LightningPruningCallback


_LAZY = {"HFPruningCallback": _hf_class, "LightningPruningCallback": _lightning_class}
_CACHE: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if name not in _CACHE:
            _CACHE[name] = _LAZY[name]()
        return _CACHE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HFPruningCallback", "LightningPruningCallback", "ScheduledPruner"]  # noqa: F822 (lazy)
