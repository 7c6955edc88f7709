"""``TrainLoop``: runs phases with pruning events, AMP, DDP, distillation and checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.call import call_model
from prunekit.masks.apply import get_mask, masked_modules
from prunekit.recover import ddp
from prunekit.recover.checkpoint import capture_rng, restore_rng
from prunekit.recover.training import (
    LoopState, Phase, _loader_rng, _set_loader_rng, build_optimizer, describe, evaluate,
    split_batch, steps_per_epoch, to_device,
)
from prunekit.recover.recipe import Finetune, Iterative
from prunekit.recover.schedules import events

_BATCH_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


class TrainLoop:
    """Trains ``model`` phase by phase (see :class:`prunekit.recover.training.Phase`).

    Args:
        model: the student (masks/structure change in place).
        train_loader: ``(inputs, target)`` batches.
        loss_fn: ``loss_fn(output, target) -> scalar``.
        val_loader, eval_fn: evaluated at every epoch end (``eval_fn(model, val_loader)``).
        device: where to train (default: the model's device).
        distiller: optional :class:`prunekit.recover.distill.Distiller`.
        save: ``save(blob)`` writes a checkpoint (``None``: no checkpoints).
    """

    def __init__(self, model: nn.Module, train_loader: Iterable, loss_fn: Callable, *,
                 val_loader: Iterable | None = None, eval_fn: Callable | None = None,
                 device: str | torch.device | None = None, distiller: Any = None,
                 save: Callable[[dict], None] | None = None) -> None:
        self.device = torch.device(device) if device is not None else ddp.model_device(model)
        self.model = model.to(self.device)
        self.loader, self.loss_fn = train_loader, loss_fn
        self.val_loader, self.eval_fn = val_loader, eval_fn
        self.distiller = distiller
        self.save_fn = save

    # --- pieces ------------------------------------------------------------------------------
    def _params(self) -> list[nn.Parameter]:
        """Trainable parameters in an order that does not depend on which layers are masked
        (parametrization moves ``weight`` to ``parametrizations.weight.original``), so a resumed
        optimizer state lines up with its parameters."""
        named = sorted((n.replace("parametrizations.weight.original", "weight"), p)
                       for n, p in self.model.named_parameters() if p.requires_grad)
        params = [p for _, p in named]
        if self.distiller is not None:
            params += [p for p in self.distiller.proj.parameters() if p.requires_grad]
        return params

    def _amp(self, cfg) -> Any:
        if not cfg.amp:
            return nullcontext()
        dt = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        return torch.autocast(self.device.type, dtype=dt)

    def blob(self, state: LoopState, opt=None, sched=None, scaler=None, epoch_rng=None) -> dict:
        """Everything a checkpoint holds (plain values and tensors only)."""
        blob = {
            "state": state.to_dict(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "masks": {n: get_mask(m).cpu() for n, m in masked_modules(self.model).items()},
            "rng": dict(capture_rng(), loader=_loader_rng(self.loader).get("loader")),
            "epoch_rng": epoch_rng,
        }
        if self.distiller is not None:
            blob["distiller"] = {k: v.cpu() for k, v in self.distiller.state_dict().items()}
            blob["teacher"] = {k: v.cpu() for k, v in self.distiller.teacher[0].state_dict().items()}
        if opt is not None:
            blob.update(optimizer=opt.state_dict(), sched=sched.state_dict(),
                        scaler=scaler.state_dict())
        return blob

    def _save(self, *args: Any) -> None:
        if self.save_fn is not None:
            self.save_fn(self.blob(*args))

    def _restore_rng(self, rng: dict) -> None:
        restore_rng(rng)
        _set_loader_rng(self.loader, {"torch": rng["torch"], **({"loader": rng["loader"]}
                                                                  if rng.get("loader") is not None
                                                                  else {})})

    # --- the phase loop ----------------------------------------------------------------------
    def run_phase(self, phase: Phase, state: LoopState, resume: dict | None = None) -> None:
        """Run ``phase`` from ``state`` (``resume``: the checkpoint blob to continue from)."""
        cfg = phase.cfg
        spe = steps_per_epoch(self.loader, cfg)
        total = cfg.epochs * spe
        ev = dict(events(phase.schedule, phase.amount, total)) if phase.schedule else {}
        # iterative prune -> retrain cycles each get a full cosine LR cycle (warm restarts)
        self._restarts = tuple(ev) if isinstance(phase.schedule, Iterative) else ()
        opt, sched = build_optimizer(self._params(), cfg, total, self._restarts)
        scaler = torch.amp.GradScaler(self.device.type,
                                      enabled=cfg.amp and self.device.type == "cuda")
        if resume is not None and "optimizer" in resume:
            opt.load_state_dict(resume["optimizer"])
            sched.load_state_dict(resume["sched"])
            scaler.load_state_dict(resume["scaler"])
        elif phase.refresh_teacher and self.distiller is not None:
            self.distiller.teacher[0].load_state_dict(self.model.state_dict())
        net = ddp.wrap(self.model)
        for epoch in range(state.epoch, cfg.epochs):
            for attr in ("sampler", "batch_sampler"):
                sampler = getattr(self.loader, attr, None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(state.epochs_done)
            skip = state.batch if resume is not None else 0
            if skip:
                epoch_rng = resume["epoch_rng"]
                _set_loader_rng(self.loader, epoch_rng)
            else:
                if resume is not None:
                    self._restore_rng(resume["rng"])
                epoch_rng = _loader_rng(self.loader)
            it = iter(self.loader)
            for _ in range(skip):
                next(it)
            if skip:
                self._restore_rng(resume["rng"])
            resume = None
            losses = []
            for b in range(skip, spe):
                t = epoch * spe + b
                batch = next(it, None)
                if batch is None:
                    raise ValueError(f"train_loader ended after {b} batches; len() said {spe}")
                if t in ev and ev[t] > state.amount + 1e-12:
                    net, opt, sched = self._prune(phase, ev[t], state, net, opt, sched, total,
                                                  batch)
                losses.append(self._step(net, phase, batch, opt, sched, scaler, f"batch {b} of "
                                         f"epoch {epoch} (phase {phase.name!r})",
                                         ddp.loss_scale(self.loader, b)))
                state.batch = b + 1
                if cfg.checkpoint_every and (t + 1) % cfg.checkpoint_every == 0 and b + 1 < spe:
                    self._save(state, opt, sched, scaler, epoch_rng)
            state.epoch, state.batch = epoch + 1, 0
            state.epochs_done += 1
            metric = evaluate(self.model, self.val_loader, self.eval_fn)
            state.history.append({"phase": phase.name, "epoch": epoch + 1, "amount": state.amount,
                                  "loss": sum(losses) / max(len(losses), 1), "metric": metric})
            if state.epoch < cfg.epochs:
                self._save(state, opt, sched, scaler, None)
        state.phase, state.epoch, state.batch, state.amount = state.phase + 1, 0, 0, 0.0
        self._save(state)  # phase boundary: the next phase starts a fresh optimizer

    def _prune(self, phase: Phase, amount: float, state: LoopState, net, opt, sched, total,
               batch: Any):
        changed = phase.prune(self.model, amount)
        ddp.sync_masks(self.model)
        state.amount = amount
        if not changed:  # new masks re-register parameters: DDP must be rebuilt
            return (ddp.wrap(self.model) if ddp.is_dist() else net), opt, sched
        if self.distiller is not None:  # hidden projections follow the new widths
            x, _ = split_batch(to_device(batch, self.device), "train_loader")
            with torch.random.fork_rng(devices=[]):
                self.distiller.prepare(x, self.model)
            self.distiller.to(self.device)
        new_opt, new_sched = build_optimizer(self._params(), phase.cfg, total, self._restarts)
        new_sched.load_state_dict(sched.state_dict())
        for group, lr in zip(new_opt.param_groups, new_sched.get_last_lr(), strict=True):
            group["lr"] = lr
        return ddp.wrap(self.model), new_opt, new_sched

    def _step(self, net, phase: Phase, batch: Any, opt, sched, scaler, where: str,
              scale: float = 1.0) -> float:
        self.model.train()
        x, y = split_batch(to_device(batch, self.device), f"train_loader {where}")
        try:
            with self._amp(phase.cfg):
                out = call_model(net, x)
                loss = self.loss_fn(out, y)
                if self.distiller is not None and phase.distill:
                    loss = self.distiller.loss(out, self.distiller.teacher_forward(x), loss)
        except _BATCH_ERRORS as e:
            raise ValueError(f"train_loader {where}: forward/loss failed on inputs {describe(x)} "
                             f"with target {describe(y)}: {e}") from e
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar tensor, got {describe(loss)}")
        opt.zero_grad(set_to_none=True)
        # scale: this rank's share of a partial global batch (see ddp.GlobalBatchSampler)
        scaler.scale(loss * scale if scale != 1.0 else loss).backward()
        if phase.grad_hook is not None or phase.cfg.grad_clip is not None:
            scaler.unscale_(opt)
        if phase.grad_hook is not None:
            phase.grad_hook(self.model)
        if phase.cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self._params(), phase.cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        return float(loss.detach())


__all__ = ["TrainLoop", "finetune"]


def finetune(model: nn.Module, train_loader: Iterable, loss_fn: Callable[[Any, Any], Tensor],
             cfg: Finetune | None = None, *, val_loader: Iterable | None = None,
             eval_fn: Callable | None = None, device: str | torch.device | None = None,
             distiller: Any = None) -> list[dict[str, Any]]:
    """Fine-tune ``model`` in place (masks stay applied); returns the per-epoch history."""

    loop = TrainLoop(model, train_loader, loss_fn, val_loader=val_loader, eval_fn=eval_fn,
                     device=device, distiller=distiller)
    state = LoopState()
    loop.run_phase(Phase("finetune", cfg or Finetune()), state)
    return state.history
