"""Structured (channel) pruning inside schedules, behind one small interface.

The structural planner (``prunekit.structural.plan_structured``) plans which channels
of each coupled group to remove and slices the modules. Schedules speak in *amounts* relative
to the dense model; the planner speaks relative to the model it is given. :func:`structured_pruner`
converts: to reach a MACs amount ``a`` of the dense model when the current model already keeps
``k`` of the dense MACs, it asks the planner to keep ``(1 - a) / k`` of the current MACs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zlib

import torch
from torch import nn

from prunekit.macs import count_macs
from prunekit.recover import ddp
from prunekit.structural import plan_structured
from prunekit.config import TargetSpec
from prunekit.handlers import get_handler


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def structured_pruner(ctx: Any, criterion: str, scope: str | None = None
                      ) -> Callable[[nn.Module, float], bool]:
    """``prune(model, amount) -> True``: channel pruning to ``amount`` of the dense model.

    ``scope``: ``local`` (every group the same ratio) or ``global``; default from the recipe
    (``layer`` -> ``local``)."""

    scope = scope or ("global" if ctx.recipe.scope == "global" else "local")
    target = ctx.recipe.target

    def measure(model: nn.Module) -> float:
        if target.params is not None:
            return float(count_params(model))
        return float(count_macs(model, ctx.example_inputs))

    dense = measure(ctx.model)  # phases are built on the dense model (also when resuming)

    def prune(model: nn.Module, amount: float) -> bool:
        keep_now = measure(model) / dense
        keep = (1.0 - amount) / keep_now
        if keep >= 1.0 - 1e-9:
            return False
        if target.ratio is not None:
            spec = TargetSpec(ratio=min(1.0 - keep, 0.999))
        elif target.params is not None:
            spec = TargetSpec(params=keep)
        else:
            spec = TargetSpec(macs=keep)
        try:
            plan = plan_structured(model, ctx.example_inputs, criterion=criterion, scope=scope,
                                   target=spec, exclude=ctx.recipe.exclude,
                                   calib_data=ctx.calib(), loss_fn=ctx.loss_fn,
                                   seed=ctx.recipe.seed)
        except ValueError as e:
            raise ValueError(f"target: structured pruning to {amount:g} of the dense model "
                             f"failed (unreachable?): {e}") from e
        plan_dict = plan.to_dict() if hasattr(plan, "to_dict") else None
        ddp.verify_same(zlib.crc32(repr(plan_dict).encode()), "structural plans")
        plan.apply()
        return True

    return prune


def resize_like(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Reshape ``model``'s modules to the tensor shapes of ``state`` (a pruned checkpoint).

    No-op when the shapes already match; otherwise every module with a differing tensor is
    resized by its structural handler's ``resize`` (the handler protocol), so the
    checkpoint's state_dict can then be loaded strictly.

    Raises:
        ValueError: a differing module has no handler (or handlers are unavailable).
    """
    own = model.state_dict()
    norm = {k.replace("parametrizations.weight.original", "weight"): v for k, v in state.items()
            if ".parametrizations.weight.0." not in k}
    by_module: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, v in norm.items():
        if key in own and own[key].shape != v.shape:
            mod, _, attr = key.rpartition(".")
            by_module.setdefault(mod, {})[attr] = tuple(v.shape)
    if not by_module:
        return
    modules = dict(model.named_modules())
    plans = []
    for name, shapes in by_module.items():
        handler = get_handler(modules[name]) if name in modules else None
        if handler is None:
            raise ValueError(f"checkpoint: module {name!r} has other shapes than the model "
                             f"({shapes}) and no structural handler to resize it")
        full = {a: tuple(norm[f"{name}.{a}"].shape) for a in
                [k.rpartition(".")[2] for k in norm if k.rpartition(".")[0] == name]}
        plans.append((handler, modules[name], full))
    for handler, module, full in plans:  # all validated: mutate last
        handler.resize(module, full)


__all__ = ["count_macs", "count_params", "resize_like", "structured_pruner"]
