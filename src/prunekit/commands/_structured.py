"""`prunekit prune structured`: plan, apply, (optionally) mask, save, print before/after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from torch import nn

from prunekit.config import TargetSpec
from prunekit.handlers import PruneError
from prunekit.masks import finalize
from prunekit.serialize import save
from prunekit.stats import stats
from prunekit.structural import plan_structured
from prunekit.structural.hybrid import prune_hybrid
from prunekit.bench.width_tables import module_time_weights


def run_structured(model: nn.Module, x: Any, output: Path, *, spec: str, ratio: float, criterion: str,
                   scope: str, round_to: int | None, exclude: list[str], target_macs: float | None,
                   target_params: float | None, weights: dict | None,
                   device_aware: bool = False, macs_only: bool = False) -> None:
    from rich.console import Console


    console = Console()
    try:
        target = None
        if target_macs is not None or target_params is not None:
            target = TargetSpec(macs=target_macs, params=target_params)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--target-macs/--target-params") from None
    before = stats(model, x)
    options = dict(criterion=criterion, ratio=ratio, scope=scope, round_to=round_to,
                   exclude=list(exclude), target=target)
    if device_aware:
        if scope != "global":
            raise typer.BadParameter("--device-aware needs --scope global", param_hint="--scope")
        options["time_weights"] = module_time_weights(model, x)
    if macs_only:
        if device_aware:
            raise typer.BadParameter("--macs-only and --device-aware exclude each other",
                                     param_hint="--macs-only")
        options["time_weights"] = None
    try:
        if weights is not None:
            pruned, report = prune_hybrid(model, x, structured=options, weights=weights)
            plan = report.structured
            finalize(pruned)
        else:
            plan = plan_structured(model, example_inputs=x, **options)
            pruned = plan.apply()
    except (ValueError, PruneError) as exc:
        raise typer.BadParameter(str(exc)) from None
    after = stats(pruned, x)
    save(pruned, output, spec=spec)
    console.print(plan.summary())
    console.print(
        f"params {before.params:,} -> {after.params:,} ({after.params / before.params:.1%}), "
        f"nonzero {after.nonzero:,}, MACs {before.macs:,} -> {after.macs:,} "
        f"({after.macs / max(before.macs, 1):.1%}) -> {output}")
