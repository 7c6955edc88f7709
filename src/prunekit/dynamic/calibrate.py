"""Per-layer input thresholds from calibration activations (uniform or greedy allocation).

TEAL (Liu et al., "Training-Free Activation Sparsity in Large Language Models", ICLR 2025)
zeroes the entries of a linear layer's input whose magnitude is below a per-layer threshold.
A threshold for sparsity ``s`` is the ``s``-quantile of ``|x|`` over calibration tokens. The
greedy per-layer allocation is in :mod:`prunekit.dynamic.greedy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn



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
