"""``pk.run_recipe``: prune with a recipe, recover, checkpoint, resume.

>>> result = pk.run_recipe(recipe, model, train_loader, val_loader, loss_fn, eval_fn,
...                 checkpoint_dir="runs/a")           # later: resume=True after a crash
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.call import call_model
from prunekit.masks.apply import apply_masks, finalize
from prunekit.masks.save_guard import guard_save_pretrained
from prunekit.recover import ddp
from prunekit.io import atomic_write_bytes
from prunekit.recover.checkpoint import Checkpointer, model_fingerprint
from prunekit.recover.distill import Distiller
from prunekit.recover.training import LoopState, describe, evaluate, peek, split_batch, to_device
from prunekit.recover.loop import TrainLoop
from prunekit.recover.phases import build_phases
from prunekit.recover.pruners import PruneContext
from prunekit.recover.recipe import Recipe
from prunekit.masks.layout import layout_for
from prunekit.recover.structured import resize_like


@dataclass
class RunResult:
    """Outcome of :func:`run_recipe`. ``metric`` values are whatever ``eval_fn`` returns."""

    model: nn.Module
    dense_metric: Any
    final_metric: Any
    history: list = field(default_factory=list)
    sparsity: float = 0.0
    run_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dense_metric": self.dense_metric, "final_metric": self.final_metric,
                "sparsity": self.sparsity, "history": self.history,
                "run_dir": None if self.run_dir is None else str(self.run_dir)}


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zeros over the weights of Linear/Conv (and registered-layout) layers."""

    zeros = total = 0
    for m in model.modules():
        w = getattr(m, "weight", None)
        if layout_for(m) is not None and isinstance(w, torch.Tensor):
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total if total else 0.0


def calib_provider(loader: Iterable, n: int, device: torch.device,
                   calib_loader: Iterable | None = None) -> Callable[[], list]:
    """First ``n`` batches of an unshuffled view of the training data (same on every rank; the
    batch size is the global one, ``loader.batch_size * world_size``)."""
    source: Iterable = calib_loader if calib_loader is not None else loader
    if calib_loader is None and isinstance(loader, torch.utils.data.DataLoader):
        bs = getattr(loader.batch_sampler, "global_batch", None)
        bs = bs or (loader.batch_size or 1) * ddp.world_size()
        source = torch.utils.data.DataLoader(loader.dataset, batch_size=bs, shuffle=False,
                                             collate_fn=loader.collate_fn)

    def calib() -> list:
        out = []
        with torch.random.fork_rng(devices=[]):
            for batch in source:
                out.append(to_device(batch, device))
                if len(out) >= n:
                    break
        return out

    return calib


def preflight(model: nn.Module, loader: Iterable, loss_fn: Callable, name: str) -> Any:
    """Run the first batch through model and loss (eval mode, no grad); clear error otherwise."""
    batch = to_device(peek(loader), ddp.model_device(model))
    x, y = split_batch(batch, name)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            loss = loss_fn(call_model(model, x), y)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise ValueError(f"{name}: the model cannot run its first batch (inputs {describe(x)}, "
                         f"target {describe(y)}): {e}") from e
    finally:
        model.train(was)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar tensor, got {describe(loss)}")
    return x


def _restore_model(model: nn.Module, blob: dict) -> None:
    resize_like(model, blob["model"])
    apply_masks(model, blob["masks"])
    model.load_state_dict(blob["model"])


def _open_checkpoint(recipe: Recipe, model: nn.Module, checkpoint_dir: str | Path | None,
                     resume: bool) -> tuple[Checkpointer | None, dict | None]:
    """The run's checkpointer and, when resuming, its saved blob (refuses to overwrite)."""
    if checkpoint_dir is None:
        return None, None
    ckpt = Checkpointer(checkpoint_dir, recipe.fingerprint(), model_fingerprint(model),
                        enabled=ddp.rank() == 0)
    if ckpt.exists() and not resume:
        raise ValueError(f"{ckpt.path} exists; pass resume=True (--resume) to continue that "
                         "run, or use an empty checkpoint directory (nothing was overwritten)")
    return ckpt, (ckpt.load() if resume and ckpt.exists() else None)


def _distiller(recipe: Recipe, model: nn.Module, x0: Any, dev: torch.device) -> Distiller | None:
    """The dense model as teacher (projections prepared without consuming the run's RNG)."""
    if recipe.distill is None:
        return None
    distiller = Distiller(copy.deepcopy(model).to(dev), model, recipe.distill)
    with torch.random.fork_rng(devices=[]):
        distiller.prepare(x0, model)
    return distiller.to(dev)


def _resumed_state(model: nn.Module, blob: dict, distiller: Distiller | None, x0: Any,
                   dev: torch.device) -> LoopState:
    _restore_model(model, blob)
    if distiller is not None and "distiller" in blob:
        with torch.random.fork_rng(devices=[]):
            distiller.prepare(x0, model)  # projections at the restored (pruned) widths
        distiller.to(dev).load_state_dict(blob["distiller"])
        distiller.teacher[0].load_state_dict(blob["teacher"])
    return LoopState(**blob["state"])


def run_recipe(recipe: Recipe, model: nn.Module, train_loader: Iterable,
               val_loader: Iterable | None = None, loss_fn: Callable | None = None,
               eval_fn: Callable | None = None, *, checkpoint_dir: str | Path | None = None,
               resume: bool = False, device: str | torch.device | None = None,
               calib_loader: Iterable | None = None, finalize_model: bool = True) -> RunResult:
    """Prune ``model`` with ``recipe`` and recover accuracy (in place).

    Args:
        recipe: a :class:`Recipe`.
        model: the dense, trained model (also the distillation teacher).
        train_loader: ``(inputs, target)`` batches; under ``torchrun`` give each rank its shard.
        val_loader: evaluated at every epoch end with ``eval_fn(model, val_loader)``
            (default: top-1 accuracy in percent).
        loss_fn: ``loss_fn(output, target)``; default cross-entropy.
        checkpoint_dir: run directory for ``last.pt``/``meta.json``/``result.json``.
        resume: continue from ``checkpoint_dir``'s checkpoint (fingerprints must match).
        device: training device (default: the model's).
        calib_loader: batches for gradient/activation criteria (default: unshuffled train data).
        finalize_model: bake masks into plain weights at the end.

    Raises:
        ValueError: bad recipe/loaders, an existing checkpoint without ``resume``, or a
            checkpoint written for another model or recipe. Nothing is written in those cases.
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a prunekit Recipe, got {type(recipe).__name__}")
    loss_fn = loss_fn or F.cross_entropy
    if device is not None:
        model.to(device)
    dev = ddp.model_device(model)
    ckpt, blob = _open_checkpoint(recipe, model, checkpoint_dir, resume)
    x0 = preflight(model, train_loader, loss_fn, "train_loader")
    if val_loader is not None:
        preflight(model, val_loader, loss_fn, "val_loader")
    seed_everything(recipe.seed)
    distiller = _distiller(recipe, model, x0, dev)
    ctx = PruneContext(recipe, loss_fn, calib_provider(train_loader, recipe.calib_batches, dev,
                                                       calib_loader), x0,
                       out_dir=None if ckpt is None or not ckpt.enabled else ckpt.dir)
    phases = build_phases(model, ctx)
    save = None
    if ckpt is not None:
        meta = {"recipe": recipe.to_dict(), "phases": [p.name for p in phases]}
        save = lambda b: ckpt.save(b, dict(meta, state=b["state"]))  # noqa: E731
    loop = TrainLoop(model, train_loader, loss_fn, val_loader=val_loader, eval_fn=eval_fn,
                     device=dev, distiller=distiller, save=save)
    if blob is not None:
        state = _resumed_state(model, blob, distiller, x0, dev)
    else:
        state = LoopState(history=[{"phase": "dense", "metric": evaluate(model, val_loader,
                                                                          eval_fn)}])
    for i in range(state.phase, len(phases)):
        loop.run_phase(phases[i], state, blob)
        blob = None
    if not state.done:
        state.done = True
        state.history.append({"phase": "final", "metric": evaluate(model, val_loader, eval_fn)})
        if save is not None:
            save(loop.blob(state))
    if distiller is not None:
        distiller.close()
    result = RunResult(model, state.history[0]["metric"], state.history[-1]["metric"],
                       state.history, weight_sparsity(model),
                       None if ckpt is None else ckpt.dir)
    if finalize_model:
        finalize(model)
    else:
        guard_save_pretrained(model)
    if ckpt is not None and ckpt.enabled:
        atomic_write_bytes(ckpt.dir / "result.json",
                           json.dumps(result.to_dict(), indent=2, default=str).encode())
    return result


__all__ = ["RunResult", "calib_provider", "preflight", "run_recipe", "seed_everything", "weight_sparsity"]
