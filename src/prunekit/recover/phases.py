"""Turn a :class:`Recipe` into training phases (one registered builder per method).

Builders are pure planners: they return the list of :class:`Phase` objects; the pruning itself
happens inside the phases' ``prune`` callables at the scheduled optimizer steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from prunekit._registry import Registry
from prunekit.masks.select import parse_pattern
from prunekit.recover.finetune import Phase
from prunekit.recover.recipe import Recipe
from prunekit.recover.schedules import nm_level
from prunekit.weights import prune_weights


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


PhaseBuilder = Callable[[nn.Module, PruneContext], list[Phase]]
METHOD_BUILDERS: Registry[PhaseBuilder] = Registry("method")


def mask_pruner(ctx: PruneContext, only: str | None = None) -> Callable[[nn.Module, float], bool]:
    """``prune(model, amount)`` with weight masks (cumulative; ``only``: a single layer)."""
    r = ctx.recipe

    def prune(model: nn.Module, amount: float) -> bool:
        exclude = tuple(r.exclude)
        if only is not None:
            from prunekit.weights import select_layers

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


def _pre(r: Recipe) -> list[Phase]:
    return [] if r.pretrain is None else [Phase("pretrain", r.pretrain, distill=False)]


def _ft(r: Recipe, prune: Callable[[nn.Module, float], bool]) -> Phase:
    return Phase("finetune", r.finetune, r.schedule, r.amount, prune,
                 refresh_teacher=r.pretrain is not None)


@METHOD_BUILDERS.register("unstructured")
def _unstructured(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    r = ctx.recipe
    return _pre(r) + [_ft(r, mask_pruner(ctx))]


@METHOD_BUILDERS.register("nm")
def _nm(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    r = ctx.recipe
    return _pre(r) + [_ft(r, nm_pruner(ctx))]


@METHOD_BUILDERS.register("structured")
def _structured(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    from prunekit.recover.structured import structured_pruner

    r = ctx.recipe
    return _pre(r) + [_ft(r, structured_pruner(ctx, r.criterion))]


@METHOD_BUILDERS.register("slimming")
def _slimming(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    from prunekit.methods.slimming import slimming_phases

    return slimming_phases(model, ctx)


@METHOD_BUILDERS.register("progressive")
def _progressive(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    from prunekit.methods.progressive import progressive_phases

    return progressive_phases(model, ctx)


def build_phases(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    ctx.model = model
    return METHOD_BUILDERS.get(ctx.recipe.method)(model, ctx)


__all__ = ["METHOD_BUILDERS", "PruneContext", "build_phases", "mask_pruner", "nm_pruner"]
