"""Which output dims have data-dependent sizes (number of detections, kept boxes, ...).

A pruned model must return outputs of the same shapes as the dense one — except along dims
whose size depends on the *values* computed: a detector keeps the boxes whose score passes a
threshold and survives non-maximum suppression, so pruning (which changes the scores) may
change how many there are. Those dims cannot be compared, the others must match.

While tracing, every op is watched (inside handled modules too):

* an op whose output shape depends on data (``torch.Tag.dynamic_output_shape``: ``nonzero``,
  ``masked_select``, ``unique``, boolean indexing, ...; plus ``torchvision::nms``) makes every
  dim of its outputs *ragged*;
* an op with a ragged input gives its outputs a ragged dim wherever the dim's size equals a
  ragged size of an input, or equals no size of any input at all (``keep[:100]`` of 1,500
  boxes; a reshape into new factors): over-marking only makes the shape check less strict,
  under-marking would reject a correct model;
* everything else stays untracked (all dims static).

Only the sizes flowing through tensors are followed: a size read into Python (``int(n)``) and
used to build a fresh tensor is not (such a dim would then be compared).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.weak import WeakIdKeyDictionary

from prunekit.graph.rule_base import flat_tensors
from prunekit.graph.guards import _group_dims

_CUSTOM_DYNAMIC = {"torchvision::nms"}
_RESHAPES = {torch.ops.aten.view, torch.ops.aten._unsafe_view, torch.ops.aten.reshape}
_dyn_cache: dict[Any, bool] = {}


def _dynamic(func) -> bool:
    hit = _dyn_cache.get(func)
    if hit is None:
        hit = (torch.Tag.dynamic_output_shape in getattr(func, "tags", ())
               or getattr(func, "name", lambda: "")().split(".")[0] in _CUSTOM_DYNAMIC)
        _dyn_cache[func] = hit
    return hit


def is_data_dependent(func, args: tuple) -> bool:
    """True when ``func``'s output shape depends on the values of its inputs."""
    if not _dynamic(func):
        return False
    if func.overloadpacket is torch.ops.aten.index:  # integer indices: shape = index shape
        idx = args[1] if len(args) > 1 else ()
        return any(t is not None and t.dtype in (torch.bool, torch.uint8) for t in idx)
    return True


class RaggedTracker:
    """Marks tensors with the dims whose size is data-dependent (see module docstring)."""

    def __init__(self) -> None:
        self.dims: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.active = False  # nothing to do until the first data-dependent op

    def observe(self, func, args: tuple, kwargs: dict, out: Any) -> None:
        dyn = is_data_dependent(func, args)
        if not dyn and not self.active:
            return
        ins = flat_tensors(args) + flat_tensors(kwargs)
        marked = [(t, self.dims[t]) for t in ins if t in self.dims]
        if not dyn and not marked:
            return
        self.active = True
        outs = [o for o in flat_tensors(out) if not any(o is t for t in ins)]
        if dyn:
            for o in outs:
                self.dims[o] = frozenset(range(o.dim()))
            return
        if func.overloadpacket in _RESHAPES and len(outs) == 1 and marked[0][0] is ins[0]:
            self.dims[outs[0]] = _reshaped(ins[0].shape, outs[0].shape, marked[0][1])
            return
        ragged = {t.shape[d] for t, dims in marked for d in dims}
        static = {s for t in ins for d, s in enumerate(t.shape)
                  if d not in self.dims.get(t, frozenset())}
        new_dim = -1  # stack's new dim counts the stacked tensors: static
        if func.overloadpacket is torch.ops.aten.stack and len(outs) == 1:
            new_dim = (args[1] if len(args) > 1 else kwargs.get("dim", 0)) % outs[0].dim()
        for o in outs:
            self.dims[o] = frozenset(d for d, s in enumerate(o.shape)
                                     if d != new_dim and (s in ragged or s not in static))

    def output_dims(self, out: Any) -> list[tuple[int, ...]]:
        """Sorted ragged dims of every output tensor (in ``flat_tensors`` order).

        An output dim whose size equals a ragged size of another output is ragged too: a
        per-detection result assembled in Python (a list of masks, then ``stack``) has as many
        rows as there are detections, though its size never flowed through a tensor.
        """
        if hasattr(out, "to_tuple") and callable(out.to_tuple):
            out = out.to_tuple()
        ts = flat_tensors(out)
        dims = [set(self.dims.get(t, ())) for t in ts]
        counts = {t.shape[d] for t, ds in zip(ts, dims, strict=True) for d in ds}
        for t, ds in zip(ts, dims, strict=True):
            ds.update(d for d, n in enumerate(t.shape) if n in counts)
        return [tuple(sorted(ds)) for ds in dims]


def _reshaped(src: tuple[int, ...], dst: tuple[int, ...], ragged: frozenset) -> frozenset:
    """Ragged dims after a reshape: those grouped with a ragged input dim."""

    out: set[int] = set()
    for gi, gj in _group_dims(tuple(src), tuple(dst)):
        if any(d in ragged for d in gi) or not gi:
            out.update(gj)
    return frozenset(out)


def same_shapes(got: list[tuple[int, ...]], want: list[tuple[int, ...]],
                ragged: list[tuple[int, ...]] | None) -> bool:
    """Same number of outputs and ranks, and equal sizes on every dim not marked ragged."""
    if len(got) != len(want):
        return False
    ragged = ragged if ragged is not None and len(ragged) == len(want) else [()] * len(want)
    for g, w, r in zip(got, want, ragged, strict=True):
        if len(g) != len(w) or any(a != b for d, (a, b) in enumerate(zip(g, w, strict=True))
                                   if d not in r):
            return False
    return True
