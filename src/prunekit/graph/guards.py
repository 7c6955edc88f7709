"""Guards for size-dependent data movement on channel dims.

After pruning, ops run with the *pruned* sizes. A reshape that splits a channel dim into
(outer, inner) factors, or an equal split/chunk, still picks the same logical channels only if
every piece loses the same relative positions; a slice/select/index with constant bounds on a
channel dim does not survive pruning at all. These guards add the couplings (or fix the dim).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from prunekit.graph.labels import align, expand_full, varying_dims
from prunekit.graph.rule_base import Ctx, _arg, aten, fix_all, flat_tensors


def _group_dims(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Pair consecutive runs of dims of ``a`` and ``b`` with equal products (reshape groups)."""
    groups, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        gi, gj, pa, pb = [], [], 1, 1
        while True:
            if pa <= pb and i < len(a):
                gi.append(i)
                pa *= a[i]
                i += 1
            elif j < len(b):
                gj.append(j)
                pb *= b[j]
                j += 1
            else:
                break
            if pa == pb and (i == len(a) or a[i] != 1) and (j == len(b) or b[j] != 1):
                break
        groups.append((gi, gj))
    return groups


def _split_union(ctx: Ctx, line: Tensor, factors: list[int], why: str) -> None:
    """``line``: (P, rest) labels of a dim of size P viewed as ``factors``; couple so only one
    factor (the largest one the labels vary along) shrinks."""
    real = [f for f in factors if f > 1]
    if len(real) <= 1:
        return
    grid = line.reshape(*real, -1)
    vary = [k for k in range(len(real)) if not torch.equal(grid, grid.narrow(k, 0, 1).expand_as(grid))]
    if len(vary) <= 1:
        return
    s = max(vary, key=lambda k: (real[k], k))
    rows = grid.movedim(s, 0).reshape(real[s], -1)
    ctx.uf.union_pairs(rows, rows[:, :1], why)


_SIZED = (aten.view, aten._unsafe_view, aten.reshape, aten._reshape_alias, aten.split,
          aten.split_with_sizes, aten.expand, aten.unflatten, aten.repeat)


def guard(ctx: Ctx, func, args, kwargs, out) -> bool:
    """Couple/fix what a size-dependent movement op needs; False if the labels were fixed."""
    x = args[0]
    if not isinstance(x, Tensor):
        return True
    lab = ctx.get(x)
    vd = varying_dims(None if lab is None else align(lab, x.dim()))
    if not vd:
        return True
    p = func.overloadpacket
    why = ctx.why(func, "size-dependent op on a channel dim")
    note = getattr(ctx, "note_sized", None)
    if note is not None and p in _SIZED:
        note(lab)
    if p in (aten.view, aten._unsafe_view, aten.reshape, aten._reshape_alias):
        o = flat_tensors(out)[0]
        full = expand_full(lab, x.shape)
        for gi, gj in _group_dims(tuple(x.shape), tuple(o.shape)):
            if not (set(gi) & vd) or len([d for d in gj if o.shape[d] > 1]) <= 1:
                continue
            line = full.permute(*gi, *[d for d in range(x.dim()) if d not in gi])
            line = line.reshape(math.prod(x.shape[d] for d in gi), -1)
            _split_union(ctx, line, [o.shape[d] for d in gj], why)
        return True
    dim = _arg(func, args, kwargs, "dim", 0)
    dim = int(dim) % max(x.dim(), 1) if isinstance(dim, int) else None
    if p in (aten.split, aten.split_with_sizes) and dim in vd:
        sizes = [t.shape[dim] for t in flat_tensors(out)]
        if len(set(sizes)) == 1 and len(sizes) > 1:
            line = expand_full(lab, x.shape).movedim(dim, 0).reshape(x.shape[dim], -1)
            rows = line.reshape(len(sizes), -1)
            ctx.uf.union_pairs(rows, rows[:1], why)
            return True
        if len(sizes) == 1:
            return True
    elif p is aten.slice and dim in vd:
        start = _arg(func, args, kwargs, "start", None) or 0
        end = _arg(func, args, kwargs, "end", None)
        step = _arg(func, args, kwargs, "step", 1) or 1
        if start == 0 and step == 1 and (end is None or end >= x.shape[dim]):
            return True
    elif p is aten.index:
        idx = args[1] if len(args) > 1 else []
        if not any(i is not None and d in vd for d, i in enumerate(idx)):
            return True
    elif p in (aten.select, aten.index_select, aten.gather, aten.roll, aten.narrow, aten.unbind,
               aten.unfold, aten.take_along_dim, aten.diagonal):
        if dim is not None and dim not in vd and p is not aten.roll:
            return True
    else:
        return True
    fix_all(ctx, func, args, kwargs, out, "indexes a channel dim with fixed positions")
    return False
