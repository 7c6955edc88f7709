"""The vocabulary every label rule is written in: the context protocol, tensor flattening and
the three ways a rule can end (clear the outputs, fix every label it touches, or combine the
inputs' labels by broadcasting). :mod:`prunekit.graph.rules`, ``guards`` and ``rules_roi`` build
on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from prunekit.graph.labels import Coupling, align, canon, varying_dims

aten = torch.ops.aten


class Ctx(Protocol):
    uf: Coupling

    def get(self, t: Tensor) -> Tensor | None: ...

    def set(self, t: Tensor, label: Tensor | None) -> None: ...

    def why(self, func: Any, what: str) -> str: ...


Rule = Callable[[Ctx, Any, tuple, dict, Any], None]


def flat_tensors(x: Any) -> list[Tensor]:
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in flat_tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in flat_tensors(v)]
    return []


def clear(ctx: Ctx, out: Any) -> None:
    for t in flat_tensors(out):
        ctx.set(t, None)


def fix_all(ctx: Ctx, func: Any, args: tuple, kwargs: dict, out: Any, what: str) -> None:
    why = ctx.why(func, what)
    for t in flat_tensors(args) + flat_tensors(kwargs):
        ctx.uf.fix(ctx.get(t), why)
    clear(ctx, out)


# ---------------------------------------------------------------- pointwise / broadcast
def combine(ctx: Ctx, items: list[tuple[tuple[int, ...], Tensor | None]],
            out_shape: tuple[int, ...], why: str) -> Tensor | None:
    """Couple the labels of broadcast operands; return the output label (or ``None``).

    ``items`` are ``(shape, label)`` of each operand. An unlabeled operand that really extends
    along a channel dim cannot shrink with it: the channels are fixed.
    """
    nd = len(out_shape)

    def ext(shape: tuple[int, ...], d: int) -> int:
        k = d - (nd - len(shape))
        return shape[k] if k >= 0 else 1

    labeled = [(s, align(lab, nd)) for s, lab in items if lab is not None]
    if not labeled:
        return None
    vdims: set[int] = set().union(*(varying_dims(lab) for _, lab in labeled))
    part = []
    for s, lab in labeled:
        if not varying_dims(lab) and all(ext(s, d) == 1 for d in vdims):
            continue  # a broadcast constant (e.g. a scalar parameter): no constraint
        if any(ext(s, d) == 1 for d in vdims):
            for _, lab2 in labeled:
                ctx.uf.fix(lab2, why + " (broadcast across channels)")
            return None
        part.append(lab)
    for s, lab in items:
        if lab is None and any(ext(s, d) > 1 for d in vdims):
            for _, lab2 in labeled:
                ctx.uf.fix(lab2, why + " (meets a tensor that cannot be pruned)")
            return None
    if not part:
        return None
    part.sort(key=lambda t: t.numel())
    shape = torch.broadcast_shapes(*(p.shape for p in part))
    base = part[0].expand(shape)
    for other in part[1:]:
        o = other.expand(shape)
        ctx.uf.union_pairs(base, o, why)
        base = torch.where(base == 0, o, base)
    return canon(base)


def _items(ctx: Ctx, tensors: list[Tensor]) -> list[tuple[tuple[int, ...], Tensor | None]]:
    return [(tuple(t.shape), ctx.get(t)) for t in tensors]


def _is_view(t: Tensor) -> bool:
    return t._base is not None


def _arg(func, args, kwargs, name: str, default: Any = None) -> Any:
    names = [a.name for a in func._schema.arguments]
    if name in kwargs:
        return kwargs[name]
    if name in names and names.index(name) < len(args):
        return args[names.index(name)]
    return default
