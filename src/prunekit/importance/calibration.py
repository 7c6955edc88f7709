"""Collect per-layer calibration statistics (gradients, input activations) with hooks.

The user's batches are consumed once; the model's parameters are not changed (gradients are
cleared afterwards and the training mode is restored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit.call import call_model, no_kv_cache
from prunekit.importance.base import LayerStats
from prunekit.masks.layout import TRANSPOSED, layout_for


def _split(batch: Any) -> tuple[Any, Any]:
    """A calibration batch is ``(inputs, target)`` or just inputs."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def weight_param(module: nn.Module) -> nn.Parameter:
    """The leaf parameter behind ``module.weight`` (the original when it is parametrized)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def _in_dim(module: nn.Module) -> int:
    return 0 if layout_for(module) is TRANSPOSED else 1


def _act_hook(stats: LayerStats) -> Callable:
    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0].detach().float()
        if isinstance(module, nn.modules.conv._ConvNd):  # (B, C, *spatial) -> (rows, C)
            x = x.transpose(0, 1).reshape(x.shape[1], -1).t()
        else:
            x = x.reshape(-1, x.shape[-1])
        sq = x.pow(2).sum(0)
        stats.act_sq = sq if stats.act_sq is None else stats.act_sq + sq
        stats.samples += x.shape[0]

    return hook


def collect_stats(
    model: nn.Module,
    layers: dict[str, nn.Module],
    calib_data: Iterable[Any],
    needs: set[str],
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    max_batches: int | None = None,
) -> dict[str, LayerStats]:
    """Accumulate the statistics ``needs`` (subset of {"grad", "act"}) for ``layers``.

    Args:
        calib_data: iterable of batches: ``(inputs, target)`` pairs, or bare inputs when only
            activations are needed.
        loss_fn: ``loss_fn(output, target) -> scalar``; required for ``grad``.
    """
    stats = {n: LayerStats(extra={"name": n, "in_dim": _in_dim(m)}) for n, m in layers.items()}
    if not needs:
        return stats
    handles = []
    if "act" in needs:
        handles = [m.register_forward_pre_hook(_act_hook(stats[n])) for n, m in layers.items()]

    def accumulate_grads() -> None:
        for n, m in layers.items():
            w = weight_param(m)
            if w.grad is None:
                continue
            g = w.grad.detach().float()
            s = stats[n]
            s.grad_abs = g.abs() if s.grad_abs is None else s.grad_abs + g.abs()
            t = (g * w.detach().float()).abs()
            s.taylor = t if s.taylor is None else s.taylor + t
            s.batches += 1

    run_calibration(model, calib_data, loss_fn=loss_fn, handles=handles, max_batches=max_batches,
                    on_backward=accumulate_grads if "grad" in needs else None,
                    who="gradient-based criteria need")
    return stats


def run_calibration(
    model: nn.Module,
    calib_data: Iterable[Any],
    *,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    on_backward: Callable[[], None] | None = None,
    handles: Iterable[Any] = (),
    max_batches: int | None = None,
    who: str = "this criterion needs",
) -> int:
    """Run every calibration batch once in eval mode, for the hooks in ``handles`` to observe.

    With ``on_backward``, each batch is ``(inputs, target)``: forward, ``loss_fn``, backward, then
    ``on_backward()`` reads the gradients; otherwise a ``torch.no_grad`` forward. Afterwards the
    hooks are removed and the parameters' ``.grad`` and the training mode are restored, even on
    error. Returns the number of batches; raises ValueError if there were none.
    """
    was_training = model.training
    saved_grads = {id(p): p.grad for p in model.parameters()}
    model.eval()
    seen = 0
    try:
        if on_backward is not None and loss_fn is None:
            raise ValueError(f"{who} loss_fn=(output, target) -> loss")
        for batch in calib_data:
            if max_batches is not None and seen >= max_batches:
                break
            inputs, target = _split(batch)
            if on_backward is not None:
                if target is None:
                    raise ValueError(f"{who} (inputs, target) batches")
                model.zero_grad(set_to_none=True)
                with torch.enable_grad(), no_kv_cache(model):
                    loss_fn(call_model(model, inputs), target).backward()
                on_backward()
            else:
                with torch.no_grad(), no_kv_cache(model):
                    call_model(model, inputs)
            seen += 1
    finally:
        for h in handles:
            h.remove()
        for p in model.parameters():
            p.grad = saved_grads.get(id(p))
        model.train(was_training)
    if seen == 0:
        raise ValueError("calib_data yielded no batches")
    return seen
