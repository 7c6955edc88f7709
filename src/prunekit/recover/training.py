"""The parts of the training loop behind fine-tuning, sparse training and every schedule:
phases, loop state, optimizer and learning-rate schedule, evaluation (the loop itself is
:class:`prunekit.recover.loop.TrainLoop`).

A *phase* trains for ``cfg.epochs`` epochs and applies its schedule's pruning events before the
optimizer steps they name. The loop is deterministic and resumable: at every checkpoint it
records the RNG state at the start of the epoch (torch global + the loader's own generator) and
the number of batches consumed, so a resumed run rebuilds the very same loader order, skips the
consumed batches and restores the RNG of the checkpoint instant.

Plain use, with your model, loader, loss and metric::
    finetune(model, train_loader, torch.nn.functional.cross_entropy, Finetune(epochs=2),
             val_loader=val_loader, eval_fn=accuracy)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.call import call_model
from prunekit.recover import ddp
from prunekit.recover.recipe import Finetune, Schedule
from prunekit.recover.distill import logits_of


@dataclass
class Phase:
    """One training segment of a run.

    Attributes:
        name: label in the history (``pretrain``, ``finetune``, ``layer:conv1`` ...).
        cfg: optimizer/epochs of the phase.
        schedule: pruning schedule applied during the phase (``None``: no pruning).
        amount: final amount the schedule reaches.
        prune: ``prune(model, amount) -> structure_changed``.
        grad_hook: called after backward (gradients unscaled), e.g. slimming's L1 subgradient.
        distill: use the distiller (when the run has one) in this phase.
        refresh_teacher: at the start of the phase, the teacher becomes a copy of the current
            model (the dense model after a pretrain / sparse-training phase).
    """

    name: str
    cfg: Finetune
    schedule: Schedule | None = None
    amount: float = 0.0
    prune: Callable[[nn.Module, float], bool] | None = None
    grad_hook: Callable[[nn.Module], None] | None = None
    distill: bool = True
    refresh_teacher: bool = False


@dataclass
class LoopState:
    """Where the run is (checkpointed as plain values)."""

    phase: int = 0
    epoch: int = 0
    batch: int = 0
    epochs_done: int = 0
    amount: float = 0.0
    history: list = field(default_factory=list)
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def split_batch(batch: Any, where: str) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(f"{where}: batches must be (inputs, target) pairs, got {type(batch).__name__}")


def describe(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"tensor{tuple(x.shape)}:{str(x.dtype).replace('torch.', '')}"
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in x) + ")"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in x.items()) + "}"
    return type(x).__name__


def steps_per_epoch(loader: Iterable, cfg: Finetune) -> int:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        if cfg.max_steps_per_epoch is None:
            raise ValueError("train_loader has no len(); set finetune.max_steps_per_epoch") from None
        return cfg.max_steps_per_epoch
    if n == 0:
        raise ValueError("train_loader yields no batches")
    return min(n, cfg.max_steps_per_epoch or n)


def cosine_factor(step: int, total: int, restarts: tuple[int, ...] = ()) -> float:
    """Cosine LR factor at ``step`` of ``total``; restarts at the given steps (each segment
    between restarts decays from 1 to 0), as in iterative prune -> retrain cycles."""
    bounds = sorted({0, *[r for r in restarts if 0 < r < total], total})
    step = min(max(step, 0), total)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if lo <= step < hi:
            return 0.5 * (1.0 + math.cos(math.pi * (step - lo) / (hi - lo)))
    return 0.0


def build_optimizer(params: list[nn.Parameter], cfg: Finetune, total: int,
                    restarts: tuple[int, ...] = ()):
    """Optimizer + LR schedule of a phase (``restarts``: cosine warm restarts at these steps)."""
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "cosine":
        fn = lambda s: cosine_factor(s, total, restarts)  # noqa: E731
    else:
        fn = lambda s: 1.0  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, fn)


def _loader_rng(loader: Any) -> dict[str, Any]:
    gen = getattr(loader, "generator", None)
    state = {"torch": torch.get_rng_state()}
    if isinstance(gen, torch.Generator):
        state["loader"] = gen.get_state()
    return state


def _set_loader_rng(loader: Any, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    gen = getattr(loader, "generator", None)
    if "loader" in state and isinstance(gen, torch.Generator):
        gen.set_state(state["loader"])


def peek(loader: Iterable) -> Any:
    """First batch of ``loader`` without disturbing any RNG (global or the loader's own)."""
    saved = _loader_rng(loader)
    with torch.random.fork_rng(devices=[]):
        try:
            batch = next(iter(loader))
        except StopIteration:
            raise ValueError("loader yields no batches") from None
    _set_loader_rng(loader, saved)
    return batch


def default_accuracy(model: nn.Module, loader: Iterable) -> float:
    """Top-1 accuracy in percent over ``(inputs, labels)`` batches."""

    dev = ddp.model_device(model)
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            x, y = split_batch(to_device(batch, dev), "val_loader")
            pred = logits_of(call_model(model, x)).argmax(-1)
            correct += int((pred == y).sum())
            total += y.numel()
    return 100.0 * correct / max(total, 1)


def evaluate(model: nn.Module, loader: Iterable | None, eval_fn: Callable | None) -> Any:
    if loader is None and eval_fn is None:
        return None
    was = model.training
    model.eval()
    try:
        return (eval_fn or default_accuracy)(model, loader)
    finally:
        model.train(was)


__all__ = [
    "LoopState", "Phase", "build_optimizer", "default_accuracy", "describe", "evaluate",
    "peek", "split_batch", "steps_per_epoch", "to_device",
]
