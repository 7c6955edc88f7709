"""Greedy per-layer sparsities that minimise each block's output error (TEAL's allocation).

TEAL (Liu et al., "Training-Free Activation Sparsity in Large Language Models", ICLR 2025,
Sec. 4.2) keeps one sparsity per transformer block and spreads it over the block's layers
greedily: starting dense, each step raises by ``step`` the sparsity of the layer whose increase
adds the least to the error of the *block's output* — so a layer whose zeros are absorbed
further down the block (by the residual, a gate, a later projection) takes more of them.

A block is the module named by a layer's name up to its first numeric component
(``model.layers.3`` for ``model.layers.3.mlp.up_proj``); a layer without one is its own block.
The block's recorded inputs from the calibration forward are replayed with the candidate
thresholds installed as input hooks, and the error is ``||y - y_dense|| / ||y_dense||``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.call import is_kv_cache
from prunekit.dynamic.calibrate import quantile_threshold

Call = tuple[tuple[Any, ...], dict[str, Any]]


def block_name(layer: str) -> str:
    """``a.b.3.c.d`` -> ``a.b.3``; a name without a numeric part is its own block."""
    parts = layer.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return layer


def group_blocks(layers: dict[str, nn.Module]) -> dict[str, list[str]]:
    """Block name -> the selected layers inside it, in model order."""
    out: dict[str, list[str]] = {}
    for n in layers:
        out.setdefault(block_name(n), []).append(n)
    return out


def _detach(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.detach()
    if isinstance(v, tuple):
        return tuple(_detach(t) for t in v)
    return v


@contextmanager
def capture_calls(model: nn.Module, blocks: list[str], tokens: int) -> Iterator[dict[str, list[Call]]]:
    """Record each block's call arguments until it has seen ``tokens`` token positions."""
    mods = dict(model.named_modules())
    store: dict[str, list[Call]] = {b: [] for b in blocks}
    seen = dict.fromkeys(blocks, 0)

    def hook(name: str):
        def fn(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if seen[name] >= tokens or not args or not isinstance(args[0], Tensor):
                return
            seen[name] += args[0].numel() // max(args[0].shape[-1], 1)
            kw = {k: _detach(v) for k, v in kwargs.items() if not is_kv_cache(k, v)}
            store[name].append((tuple(_detach(a) for a in args), kw))
        return fn

    handles = [mods[b].register_forward_pre_hook(hook(b), with_kwargs=True) for b in blocks]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _first_tensor(out: Any) -> Tensor:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    hidden = getattr(out, "last_hidden_state", None)
    if isinstance(hidden, Tensor):
        return hidden
    raise ValueError(f"block output of type {type(out).__name__} holds no tensor to compare")


@contextmanager
def _masked(mods: dict[str, nn.Module], thresholds: dict[str, float]) -> Iterator[None]:
    hs = [mods[n].register_forward_pre_hook(
        lambda _m, a, t=t: (F.hardshrink(a[0], t), *a[1:]))
        for n, t in thresholds.items() if t >= 0]
    try:
        yield
    finally:
        for h in hs:
            h.remove()


def _outputs(block: nn.Module, calls: list[Call], mods: dict[str, nn.Module],
             thresholds: dict[str, float]) -> list[Tensor]:
    with torch.no_grad(), _masked(mods, thresholds):
        return [_first_tensor(block(*a, **k)).float() for a, k in calls]


def _error(outs: list[Tensor], ref: list[Tensor]) -> float:
    num = sum(float((o - r).pow(2).sum()) for o, r in zip(outs, ref, strict=True))
    den = sum(float(r.pow(2).sum()) for r in ref)
    return math.sqrt(num / max(den, 1e-30))


def greedy_block(block: nn.Module, calls: list[Call], members: dict[str, nn.Module],
                 rows: dict[str, Tensor], target: float, step: float) -> dict[str, float]:
    """Per-layer sparsities of one block, parameter-weighted mean >= ``target``."""
    grid = [round(i * step, 6) for i in range(int(round(0.95 / step)) + 1)]
    thr = {n: [quantile_threshold(rows[n], s) for s in grid] for n in members}
    sizes = {n: int(m.weight.numel()) for n, m in members.items()}
    total = float(sum(sizes.values()))
    level = dict.fromkeys(members, 0)
    ref = _outputs(block, calls, members, {})
    cur, reached = 0.0, 0.0
    while reached < target - 1e-9:
        best, best_cost, best_err = None, math.inf, cur
        for n in members:
            if level[n] + 1 >= len(grid):
                continue
            trial = {m: thr[m][level[m] + (m == n)] for m in members}
            err = _error(_outputs(block, calls, members, trial), ref)
            cost = (err - cur) / sizes[n]
            if cost < best_cost:
                best, best_cost, best_err = n, cost, err
        if best is None:
            break
        level[best] += 1
        cur = best_err
        reached += step * sizes[best] / total
    return {n: grid[k] for n, k in level.items()}


def greedy_targets(model: nn.Module, layers: dict[str, nn.Module], rows: dict[str, Tensor],
                   calls: dict[str, list[Call]], target: float, step: float) -> dict[str, float]:
    """Every block at ``target`` (parameter-weighted), spread over its layers greedily."""
    mods = dict(model.named_modules())
    out: dict[str, float] = {}
    for b, names in group_blocks(layers).items():
        if not calls.get(b):
            raise ValueError(f"calib: block {b} was never called during calibration")
        out.update(greedy_block(mods[b], calls[b], {n: layers[n] for n in names}, rows,
                                target, step))
    return out
