"""Per-layer input thresholds from calibration activations (uniform or greedy allocation).

TEAL (Liu et al., "Training-Free Activation Sparsity in Large Language Models", ICLR 2025)
zeroes the entries of a linear layer's input whose magnitude is below a per-layer threshold.
A threshold for sparsity ``s`` is the ``s``-quantile of ``|x|`` over calibration tokens. The
greedy allocation here raises, one ``step`` at a time, the sparsity of the layer whose relative
output error ``||W (x - x_s)|| / ||W x||`` grows least per weight it stops reading, until the
parameter-weighted average sparsity reaches the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.dynamic.kernels import is_conv1d


def _flat_in(x: Tensor) -> Tensor:
    return x.detach().reshape(-1, x.shape[-1])


@contextmanager
def collect_inputs(layers: dict[str, nn.Module], max_rows: int,
                   seed: int) -> Iterator[dict[str, list[Tensor]]]:
    """Record up to ``max_rows`` input rows of each layer (random subset) while the block runs."""
    store: dict[str, list[Tensor]] = {n: [] for n in layers}
    seen: dict[str, int] = dict.fromkeys(layers, 0)
    gen = torch.Generator().manual_seed(seed)

    def hook(name: str):
        def fn(_m: nn.Module, args: tuple[Any, ...]) -> None:
            rows = _flat_in(args[0])
            seen[name] += rows.shape[0]
            have = sum(r.shape[0] for r in store[name])
            take = min(rows.shape[0], max_rows - have)
            if take > 0:
                pick = torch.randperm(rows.shape[0], generator=gen)[:take]
                store[name].append(rows[pick].float().cpu())
        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
        store["__seen__"] = [torch.tensor([seen[n] for n in layers])]


@contextmanager
def count_zeros(layers: dict[str, nn.Module],
                thresholds: dict[str, float]) -> Iterator[dict[str, list[int]]]:
    """Count input entries at or below each layer's threshold (realised sparsity)."""
    counts: dict[str, list[int]] = {n: [0, 0] for n in layers}

    def hook(name: str):
        def fn(_m: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            counts[name][0] += int((x.abs() <= thresholds[name]).sum())
            counts[name][1] += x.numel()
        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def quantile_threshold(rows: Tensor, sparsity: float) -> float:
    """The ``sparsity``-quantile of ``|rows|`` (0 sparsity gives threshold -1: keep all)."""
    if sparsity <= 0.0:
        return -1.0
    a = rows.abs().reshape(-1)
    k = max(1, min(a.numel(), int(round(sparsity * a.numel()))))
    return float(a.kthvalue(k).values)


def _weight_out_in(m: nn.Module) -> Tensor:
    w = m.weight.detach().float()
    return w.t() if is_conv1d(m) else w


def error_curve(m: nn.Module, rows: Tensor, grid: Iterable[float]) -> list[float]:
    """Relative output error of the layer at each sparsity of ``grid`` on ``rows``."""
    w = _weight_out_in(m)
    x = rows.to(w.device)
    base = (x @ w.t()).norm().clamp_min(1e-12)
    errs = []
    for s in grid:
        thr = quantile_threshold(rows, s)
        dropped = x * (x.abs() <= thr)
        errs.append(float((dropped @ w.t()).norm() / base))
    return errs


def greedy_allocation(curves: dict[str, list[float]], sizes: dict[str, int], grid: list[float],
                      target: float) -> dict[str, float]:
    """Per-layer sparsities with parameter-weighted mean >= ``target``, cheapest error first."""
    level = dict.fromkeys(curves, 0)
    total = float(sum(sizes.values()))
    reached = 0.0
    while reached < target - 1e-9:
        best, best_cost = None, float("inf")
        for n, k in level.items():
            if k + 1 >= len(grid):
                continue
            cost = (curves[n][k + 1] - curves[n][k]) / sizes[n]
            if cost < best_cost:
                best, best_cost = n, cost
        if best is None:
            break
        level[best] += 1
        reached += (grid[level[best]] - grid[level[best] - 1]) * sizes[best] / total
    return {n: grid[k] for n, k in level.items()}
