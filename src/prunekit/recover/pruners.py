"""Pruning callables for the training phases: ``prune(model, amount)`` with weight masks or
along an N:M ramp, and the context they need besides the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from prunekit.masks.select import parse_pattern
from prunekit.recover.recipe import Recipe
from prunekit.recover.schedules import nm_level
from prunekit.weights import prune_weights, select_layers


@dataclass
class PruneContext:
    """What pruning callables need besides the model.

    Attributes:
        recipe: the run's recipe.
        loss_fn: task loss (gradient/Taylor criteria).
        calib: ``calib() -> list of (inputs, target)`` batches, identical on every rank.
        example_inputs: one input batch (structural tracing).
        model: the dense model the phases are built on.
        out_dir: the run directory (plots go there), or ``None``.
    """

    recipe: Recipe
    loss_fn: Callable
    calib: Callable[[], list]
    example_inputs: Any
    model: nn.Module | None = None
    out_dir: Any = None


def mask_pruner(ctx: PruneContext, only: str | None = None) -> Callable[[nn.Module, float], bool]:
    """``prune(model, amount)`` with weight masks (cumulative; ``only``: a single layer)."""
    r = ctx.recipe

    def prune(model: nn.Module, amount: float) -> bool:
        exclude = tuple(r.exclude)
        if only is not None:

            exclude += tuple(n for n in select_layers(model, r.exclude) if n != only)
        scale = amount / r.amount if r.amount > 0 else 0.0
        overrides = {k: v * scale for k, v in r.overrides} if only is None else None
        prune_weights(model, sparsity=amount, criterion=r.criterion, scope=r.scope,
                      exclude=exclude, calib_data=ctx.calib(), loss_fn=ctx.loss_fn, seed=r.seed,
                      overrides=overrides)
        return False

    return prune


def nm_pruner(ctx: PruneContext) -> Callable[[nn.Module, float], bool]:
    """``prune(model, amount)`` along the N:M ramp (decreasing N at fixed M)."""
    r = ctx.recipe
    n, m = parse_pattern(r.pattern)

    def prune(model: nn.Module, amount: float) -> bool:
        level = nm_level(amount, r.amount, n, m)
        if level is not None:
            prune_weights(model, criterion=r.criterion, pattern=(level, m), exclude=r.exclude,
                          calib_data=ctx.calib(), loss_fn=ctx.loss_fn, skip_incompatible=True,
                          seed=r.seed)
        return False

    return prune
