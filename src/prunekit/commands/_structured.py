"""`prunekit prune --structured`: plan, apply, (optionally) mask, save, print before/after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from torch import nn


def run_structured(model: nn.Module, x: Any, output: Path, *, spec: str, ratio: float, criterion: str,
                   scope: str, round_to: int, exclude: list[str], target_macs: float | None,
                   target_params: float | None, weights: dict | None) -> None:
    from rich.console import Console

    from prunekit.config import TargetSpec
    from prunekit.masks import finalize
    from prunekit.serialize import save
    from prunekit.stats import stats
    from prunekit.structural import plan_structured
    from prunekit.weights import prune_weights

    console = Console()
    target = None
    if target_macs is not None or target_params is not None:
        target = TargetSpec(macs=target_macs, params=target_params)
    before = stats(model, x)
    scope = "local" if scope == "layer" else scope
    try:
        plan = plan_structured(model, example_inputs=x, criterion=criterion, ratio=ratio, scope=scope,
                               round_to=round_to, exclude=list(exclude), target=target)
        pruned = plan.apply()
        if weights is not None:
            prune_weights(pruned, **weights)
            finalize(pruned)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    after = stats(pruned, x)
    save(pruned, output, spec=spec)
    console.print(plan.summary())
    console.print(
        f"params {before.params:,} -> {after.params:,} ({after.params / before.params:.1%}), "
        f"nonzero {after.nonzero:,}, MACs {before.macs:,} -> {after.macs:,} "
        f"({after.macs / max(before.macs, 1):.1%}) -> {output}")
