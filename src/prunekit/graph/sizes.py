"""Sizes of channel dims read as Python numbers and used in arithmetic.

``x * x.shape[1] ** -0.5`` reads a channel count as a number: pruning changes that number, so
the pruned model computes something the masked reference (channels zeroed, sizes unchanged)
does not. A dispatch-level tracer never sees the read — ``x.shape`` is Python — so the trace
also runs under a ``TorchFunctionMode`` that does:

* ``x.shape`` / ``x.size()`` / ``x.size(d)`` / ``len(x)`` / ``x.numel()`` on a traced tensor
  return sizes whose channel dims are :class:`SizeRead` ints (an ``int`` subclass that
  remembers the channel labels of its dim). Every other size is returned unchanged.
* Integer arithmetic on a :class:`SizeRead` (``c // g``, ``c * 2``) gives another one, so
  computed sizes stay legal in ``view``/``reshape``/``split``/``zeros`` (shape arguments:
  ``x.view(x.size(0), -1)``, attention head reshapes and channel-shuffle idioms stay
  prunable).
* A :class:`SizeRead` becomes a *value* — its channels are fixed, with the reason — when it
  is turned into a float (``c ** -0.5``, ``1 / c``, ``float(c)``, ``math.sqrt(c)``) or passed
  to an op that computes with it (``x * c``, ``x.sum(1) / c``, ``torch.tensor(c)``,
  ``torch.arange(c)``, ...).

Sizes read inside handled modules are not tracked: a handler owns its module's semantics.
Limits: a size that leaves Python integer arithmetic without becoming a float (``int(c)``,
``str(c)``, a size stored on ``self`` in one call and used in a later one, numpy) is not
followed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from prunekit.graph.labels import align

# ops whose numeric arguments are values (not shapes, dims or indices)
VALUE_OPS = frozenset("""
mul div true_divide add sub rsub pow float_power floor_divide remainder fmod clamp clip
clamp_min clamp_max addcmul addcdiv lerp where masked_fill fill full full_like new_full
tensor as_tensor new_tensor scalar_tensor arange linspace logspace scaled_dot_product_attention
maximum minimum fmax fmin atan2 hypot xlogy copysign threshold hardtanh leaky_relu rrelu
""".split())


_DUNDER = {"truediv": "div", "floordiv": "floor_divide", "mod": "remainder", "mul": "mul",
           "add": "add", "sub": "sub", "pow": "pow", "div": "div"}
# every spelling of those ops as a function name: mul, mul_, __mul__, __rmul__, __imul__, ...
_VALUE_NAMES = frozenset(VALUE_OPS | {n + "_" for n in VALUE_OPS} | {
    f"__{p}{d}__" for d, op in _DUNDER.items() if op in VALUE_OPS for p in ("", "r", "i")})
_SIZE_NAMES = frozenset({"__get__", "size", "__len__", "numel"})


class SizeRead(int):
    """A channel count read from a traced tensor; ``fix`` makes its channels unprunable."""

    fix: Callable[[str], None]

    def __new__(cls, value: int, fix: Callable[[str], None]) -> SizeRead:
        obj = super().__new__(cls, value)
        obj.fix = fix
        return obj

    def _int(self, value: Any, other: Any) -> Any:
        if isinstance(value, float):
            self._value(other)
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            fixes = [self.fix] + ([other.fix] if isinstance(other, SizeRead) else [])
            return SizeRead(value, _joined(fixes))
        return value

    def _value(self, other: Any = None) -> None:
        why = "its size is read as a number and computed with (e.g. x * x.shape[1] ** -0.5)"
        self.fix(why)
        if isinstance(other, SizeRead):
            other.fix(why)

    def __float__(self) -> float:
        self._value()
        return float(int(self))

    def __truediv__(self, o):
        return self._int(int.__truediv__(int(self), _plain(o)), o)

    def __rtruediv__(self, o):
        return self._int(int.__rtruediv__(int(self), _plain(o)), o)

    def __pow__(self, o, mod=None):
        return self._int(pow(int(self), _plain(o), mod), o)

    def __rpow__(self, o, mod=None):
        return self._int(pow(_plain(o), int(self), mod), o)


def _joined(fixes: list[Callable[[str], None]]) -> Callable[[str], None]:
    def fix(why: str) -> None:
        for f in fixes:
            f(why)
    return fix


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, SizeRead) else v


def _binary(name: str):
    base = getattr(int, name)

    def op(self, o):
        res = base(int(self), _plain(o))
        return NotImplemented if res is NotImplemented else self._int(res, o)
    op.__name__ = name
    return op


def _unary(name: str):
    base = getattr(int, name)

    def op(self):
        return self._int(base(int(self)), None)
    op.__name__ = name
    return op


for _n in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__",
           "__rfloordiv__", "__mod__", "__rmod__"):
    setattr(SizeRead, _n, _binary(_n))
for _n in ("__neg__", "__pos__", "__abs__"):
    setattr(SizeRead, _n, _unary(_n))


def _found(v: Any, out: list[SizeRead]) -> list[SizeRead]:
    if isinstance(v, SizeRead):
        out.append(v)
    elif isinstance(v, (tuple, list)):
        for a in v:
            _found(a, out)
    elif isinstance(v, dict):
        for a in v.values():
            _found(a, out)
    return out


class SizeReads(TorchFunctionMode):
    """Track channel-dim size reads of traced tensors (see the module docstring).

    ``tracer`` needs ``labels`` (tensor -> label), ``depth`` (> 0 inside a handled module),
    ``uf`` (the :class:`~prunekit.graph.labels.Coupling`) and ``where()``.
    """

    def __init__(self, tracer: Any) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.tracer.depth:  # inside a handled module: nothing to do (and fast)
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _VALUE_NAMES:
            for r in _found(args, []) + _found(kwargs, []):
                r._value()
        out = func(*args, **kwargs)
        if name in _SIZE_NAMES and args and isinstance(args[0], Tensor):
            return self._wrap(func, args, out)
        return out

    def _wrap(self, func, args, out):
        name = getattr(func, "__name__", "")
        owner = getattr(getattr(func, "__self__", None), "__name__", "")
        t = args[0]
        if name == "__get__" and owner == "shape" or name == "size" and len(args) == 1:
            return torch.Size([self._read(t, d, v) for d, v in enumerate(out)])
        if name == "size" and isinstance(out, int):
            return self._read(t, args[1] % max(t.dim(), 1), out)
        if name == "__len__" and isinstance(out, int):
            return self._read(t, 0, out)
        if name == "numel" and isinstance(out, int):
            fixes = [r.fix for r in (self._read(t, d, v) for d, v in enumerate(t.shape))
                     if isinstance(r, SizeRead)]
            return SizeRead(out, _joined(fixes)) if fixes else out
        return out

    def _read(self, t: Tensor, dim: int, value: int) -> int:
        lab = self.tracer.labels.get(t)
        if lab is None or value <= 1:
            return value
        lab = align(lab, t.dim())
        if lab.shape[dim] <= 1:
            return value
        where = self.tracer.where()
        uf = self.tracer.uf

        def fix(why: str, lab=lab) -> None:
            uf.fix(lab, f"{why} at {where}")
        return SizeRead(value, fix)
