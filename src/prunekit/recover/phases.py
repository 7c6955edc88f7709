"""Turn a :class:`Recipe` into training phases (one registered builder per method).

Builders are pure planners: they return the list of :class:`Phase` objects; the pruning itself
happens inside the phases' ``prune`` callables at the scheduled optimizer steps.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from prunekit._registry import Registry
from prunekit.recover.progressive import progressive_phases
from prunekit.recover.pruners import PruneContext, mask_pruner, nm_pruner
from prunekit.recover.recipe import Recipe
from prunekit.recover.slimming import slimming_phases
from prunekit.recover.structured import structured_pruner
from prunekit.recover.training import Phase


PhaseBuilder = Callable[[nn.Module, PruneContext], list[Phase]]
METHOD_BUILDERS: Registry[PhaseBuilder] = Registry("method")


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
    r = ctx.recipe
    return _pre(r) + [_ft(r, structured_pruner(ctx, r.criterion))]


@METHOD_BUILDERS.register("slimming")
def _slimming(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    return slimming_phases(model, ctx)


@METHOD_BUILDERS.register("progressive")
def _progressive(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    return progressive_phases(model, ctx)


def build_phases(model: nn.Module, ctx: PruneContext) -> list[Phase]:
    ctx.model = model
    return METHOD_BUILDERS.get(ctx.recipe.method)(model, ctx)


__all__ = ["METHOD_BUILDERS", "PruneContext", "build_phases", "mask_pruner", "nm_pruner"]
