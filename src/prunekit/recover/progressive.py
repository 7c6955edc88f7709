"""Progressive layer-by-layer pruning: prune one layer at a time, from the input to the output,
retraining after each (in the spirit of Han et al., NeurIPS 2015, and of layer-wise schemes such
as Guo et al., "Dynamic Network Surgery", 2016).

Each prunable layer gets its own phase: the recipe's schedule prunes that layer (weight masks,
layer scope) to the target ratio during ``recipe.finetune`` epochs, the other layers keep
training. The order is the order in which layers first run in a forward pass on the example
inputs (not the order of definition).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from prunekit.call import hooked_forward
from prunekit.recover.training import Phase
from prunekit.recover.pruners import mask_pruner
from prunekit.weights import select_layers


def forward_order(model: nn.Module, names: list[str], example_inputs: Any) -> list[str]:
    """``names`` sorted by the first time each module runs on ``example_inputs``."""

    seen: list[str] = []
    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_pre_hook(
        lambda m, a, n=n: seen.append(n) if n not in seen else None) for n in names]
    hooked_forward(model, example_inputs, hooks)
    return seen + [n for n in names if n not in seen]


def progressive_phases(model: nn.Module, ctx) -> list:
    """One phase per prunable layer, input to output (after the optional pretrain phase)."""

    r = ctx.recipe
    order = forward_order(model, list(select_layers(model, r.exclude)), ctx.example_inputs)
    phases = [] if r.pretrain is None else [Phase("pretrain", r.pretrain, distill=False)]
    for i, name in enumerate(order):
        phases.append(Phase(f"layer:{name}", r.finetune, r.schedule, r.amount,
                            mask_pruner(ctx, only=name),
                            refresh_teacher=i == 0 and r.pretrain is not None))
    return phases


__all__ = ["forward_order", "progressive_phases"]
