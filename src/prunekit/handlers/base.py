"""Layer handlers: the only code that physically slices a module's tensors.

A handler knows one module family (``nn.Conv2d``, ``nn.LayerNorm``, ...). The structural engine
(:mod:`prunekit.graph`) treats every module that has a handler as a *leaf*: it does not look
inside it, it asks the handler which tensor dimension carries the channels the module consumes
("in") and produces ("out"), how those are coupled, and finally asks it to slice the module.

The contract is one abstract class, :class:`Handler`: ``in_channels`` and ``out_channels`` are
required; every other part is a real method with a default (no channels pruned on a side, no
internal groups, channels on the last axis, masking exact, a proportional cost), overridden
where a family differs. Channel index arguments (``keep``) are always sorted ``LongTensor`` s of
the indices that are **kept**. Handlers are registered per module type with
:func:`register_handler`, beside a tiny example model that the contract tests (and
:func:`prunekit.testing.check_handler`) run.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


class PruneError(RuntimeError):
    """A structural pruning step failed; the message names the module and the operation.

    Attributes:
        module: dotted name of the module where the pruned model failed, when known.
    """

    def __init__(self, message: str, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


@dataclass
class InternalGroup:
    """A prunable dimension living entirely inside one module (e.g. attention heads).

    Attributes:
        name: human-readable name, e.g. ``"heads"``.
        size: number of prunable units (e.g. ``num_heads``).
        granularity: channels per unit in the underlying tensors (e.g. ``head_dim``).
        weight_slices: ``(param, axis)`` pairs; along ``axis`` the param has ``size *
            granularity`` entries (unit ``u`` owns ``[u*g, (u+1)*g)``); used for importance.
        prune: ``prune(keep)`` with ``keep`` the sorted kept *unit* indices; slices every tensor
            and updates attributes (``num_heads`` ...).
    """

    name: str
    size: int
    granularity: int
    weight_slices: list[tuple[Tensor, int]]
    prune: Callable[[Tensor], None]
    extra: dict = field(default_factory=dict)


class Handler(ABC):
    """The handler contract: physically slices one module family.

    Subclass it, implement :meth:`in_channels` and :meth:`out_channels`, and override the
    methods whose defaults do not fit the family (at least :meth:`prune_in` / :meth:`prune_out`
    and :meth:`weight_slices` for a side that can be pruned).
    """

    # ---- channels: sizes, coupling, surgery ------------------------------------------------
    @abstractmethod
    def in_channels(self, m: nn.Module) -> int | None:
        """Size of the channel dim ``m`` consumes, or ``None`` when that side cannot be pruned
        (the engine then treats it as fixed)."""

    @abstractmethod
    def out_channels(self, m: nn.Module) -> int | None:
        """Size of the channel dim ``m`` produces, or ``None`` when that side cannot be pruned."""

    def in_out_coupled(self, m: nn.Module) -> bool:
        """Channel ``i`` in is channel ``i`` out (BatchNorm, LayerNorm, PReLU, depthwise conv with
        multiplier 1); the engine then calls only :meth:`prune_out`, which updates both sides."""
        return False

    def groups(self, m: nn.Module) -> int:
        """In and out split into this many equal contiguous blocks, block ``g`` in feeding only
        block ``g`` out (grouped conv). The engine removes whole groups when a block has more
        than one input channel and calls :meth:`prune_out` then :meth:`prune_in`."""
        return 1

    def out_repeats(self, m: nn.Module) -> int:
        """The output holds this many copies of the units side by side (a bidirectional RNN's
        ``[forward | backward]``); the same units are kept in every copy."""
        return 1

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        """Keep input channels ``keep`` (default: this side cannot be pruned)."""
        raise PruneError(f"{type(m).__name__}: input channels cannot be pruned")

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        """Keep output channels ``keep`` (default: this side cannot be pruned)."""
        raise PruneError(f"{type(m).__name__}: output channels cannot be pruned")

    def out_granularity(self, m: nn.Module) -> int:
        """Output channels are removed in aligned blocks of this size (``head_dim``, groups)."""
        return 1

    def in_granularity(self, m: nn.Module) -> int:
        """Input channels are removed in aligned blocks of this size."""
        return 1

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        """``(param, axis)`` pairs whose slices along ``axis`` go with a channel of side ``dim``
        (``"in"`` or ``"out"``); importance criteria score these slices."""
        return []

    def internal_groups(self, m: nn.Module) -> list[InternalGroup]:
        """Prunable dims invisible outside the module (attention heads, ...)."""
        return []

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        """Reallocate parameters to saved ``shapes`` and update attributes (used by ``pk.load``)."""
        resize_params(m, shapes)

    # ---- how the tracer and verify see the module's calls --------------------------------
    def is_leaf(self, m: nn.Module) -> bool:
        """False: trace through this instance's forward instead (e.g. PReLU with one slope)."""
        return True

    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        """Axis of the input tensor ``x`` holding the consumed channels (default: last)."""
        return x.dim() - 1

    def out_dim(self, m: nn.Module, y: Tensor) -> int:
        """Axis of the output tensor ``y`` holding the produced channels (default: last)."""
        return y.dim() - 1

    def in_tensors(self, m: nn.Module, args: tuple, kwargs: dict) -> list[tuple[Tensor, int]]:
        """``(tensor, axis)`` for every call input carrying the 'in' channels (default: first)."""
        x = args[0] if args else next((v for v in kwargs.values() if isinstance(v, Tensor)), None)
        if not isinstance(x, Tensor):
            return []
        return [(x, self.in_dim(m, x))]

    def state_tensors(self, m: nn.Module, args: tuple, kwargs: dict) -> list[tuple[Tensor, int]]:
        """``(tensor, axis)`` for every call input indexed by the module's output units
        (an RNN's initial state): coupled to the units, sliced with them (default: none)."""
        return []

    def out_tensors(self, m: nn.Module, output: Any) -> list[tuple[Tensor, int]]:
        """``(tensor, axis)`` for every output carrying the 'out' channels (default: the output)."""
        if isinstance(output, Tensor):
            return [(output, self.out_dim(m, output))]
        return []

    def masking_is_exact(self, m: nn.Module) -> bool:
        """True when zeroing input channel ``i`` gives the same result as removing it (False for
        normalisations whose statistics run over the channels, e.g. LayerNorm)."""
        return True

    # ---- cost: the planner's fast predictor (tested against prunekit.macs.count_macs) ------
    def mac_positions(self, m: nn.Module, y: Tensor, dim: int) -> int:
        """Positions that ``cost()``'s per-position MACs are multiplied by for output ``y``
        (channels on ``dim``): its elements per channel."""
        return y.numel() // max(y.shape[dim], 1)

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        """``(params, macs_per_output_position)`` of ``m`` with ``n_in``/``n_out`` channels kept.

        The default scales every parameter of ``weight_slices`` proportionally (once for a
        coupled module, whose one channel set is both sides) and counts no MACs.
        """
        total = 0
        cin, cout = self.in_channels(m), self.out_channels(m)
        sides = [("out", cout, n_out)] + ([] if self.in_out_coupled(m) else [("in", cin, n_in)])
        for p in m.parameters(recurse=True):
            n = float(p.numel())
            for dim, full, kept in sides:
                if full and kept is not None and any(p is q for q, _ in self.weight_slices(m, dim)):
                    n *= kept / full
            total += int(round(n))
        return total, 0

    def internal_cost(self, m: nn.Module, n_in: int | None, n_out: int | None,
                      kept: dict[str, int]) -> tuple[int, int] | None:
        """``cost()``'s figures with internal groups pruned too (``kept``: ``{internal group
        name: kept units}``), or ``None`` (the default) when there is no exact formula: the
        planner then removes each internal group's weight share proportionally."""
        return None


class _HandlerBase(Handler):
    """The old ``HandlerBase`` (deprecated): :class:`Handler` with no channels on either side."""

    def in_channels(self, m: nn.Module) -> int | None:
        return None

    def out_channels(self, m: nn.Module) -> int | None:
        return None


def __getattr__(name: str):
    if name == "HandlerBase":  # the old base class, kept for one release
        warnings.warn("prunekit.handlers.HandlerBase is deprecated and will be removed in the next "
                      "release; subclass prunekit.Handler (implement in_channels and "
                      "out_channels)", DeprecationWarning, stacklevel=2)
        return _HandlerBase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resize_params(m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Reallocate ``m``'s direct parameters/buffers whose shapes differ from ``shapes``."""
    for name, shape in shapes.items():
        if "." in name:
            continue
        cur = getattr(m, name, None)
        if not isinstance(cur, Tensor) or tuple(cur.shape) == tuple(shape):
            continue
        new = torch.zeros(shape, dtype=cur.dtype, device=cur.device)
        if isinstance(cur, nn.Parameter):
            setattr(m, name, nn.Parameter(new, requires_grad=cur.requires_grad))
        else:
            setattr(m, name, new)


def slice_param(m: nn.Module, name: str, axis: int, keep: Tensor) -> None:
    """Replace ``m.<name>`` by its slice ``index_select(axis, keep)`` (new tensor, same kind).

    A new ``Parameter`` is created (never in-place), so a snapshot of the module's ``__dict__``
    restores the original exactly.
    """
    cur = getattr(m, name, None)
    if cur is None:
        return
    idx = keep.to(cur.device)
    new = cur.detach().index_select(axis, idx)  # a new tensor already
    if isinstance(cur, nn.Parameter):
        setattr(m, name, nn.Parameter(new, requires_grad=cur.requires_grad))
    elif name in m._buffers:
        m._buffers[name] = new
    else:
        setattr(m, name, new)


@dataclass(frozen=True)
class HandlerExample:
    """A tiny model exercising one handler: ``model()`` builds it (random weights; a top-level
    function, so ``module:pkg.mod:name`` can rebuild it after saving) and ``inputs()`` returns one
    example input for it."""

    model: Callable[[], nn.Module]
    inputs: Callable[[], Any]

    def __post_init__(self) -> None:
        if not callable(self.model) or not callable(self.inputs):
            raise ValueError("example must be (model_factory, inputs_factory), both callables")


class HandlerTable:
    """Handlers keyed by module type; lookup by exact type, then by MRO.

    A subclass that overrides ``forward`` is *not* matched by its base class's handler (its
    channel semantics may differ, e.g. a channels-first LayerNorm): register it explicitly.
    """

    def __init__(self) -> None:
        self._table: dict[type, Handler] = {}
        self._examples: dict[type, HandlerExample] = {}
        self._resolvers: list[Callable[[nn.Module], Handler | None]] = []

    def add_resolver(self, fn: Callable[[nn.Module], Handler | None]) -> None:
        """Add a fallback ``fn(module) -> handler | None`` consulted when no type matches.

        Used for module families recognised by structure rather than type (HF attention
        classes), so their libraries never need importing.
        """
        if fn not in self._resolvers:
            self._resolvers.append(fn)

    def register(self, cls: type, handler: Handler, *, replace: bool = False) -> Handler:
        if not isinstance(cls, type) or not issubclass(cls, nn.Module):
            raise ValueError(f"register_handler needs an nn.Module subclass, got {cls!r}")
        if not isinstance(handler, Handler):
            raise ValueError(f"the handler for {cls.__qualname__} must be an instance of a "
                             f"prunekit.Handler subclass, got {type(handler).__qualname__}")
        if cls in self._table and not replace:
            raise ValueError(f"a handler for {cls.__qualname__} is already registered")
        self._table[cls] = handler
        return handler

    def set_example(self, cls: type, example: HandlerExample | tuple, *, replace: bool = False) -> None:
        """Keep a tiny model that exercises the handler of ``cls`` (see :class:`HandlerExample`)."""
        if cls not in self._table:
            raise ValueError(f"no handler for {getattr(cls, '__qualname__', cls)!r} is registered")
        if cls in self._examples and not replace:
            raise ValueError(f"an example for {cls.__qualname__} is already registered")
        self._examples[cls] = example if isinstance(example, HandlerExample) else HandlerExample(*example)

    def example(self, cls: type) -> HandlerExample | None:
        """The example registered beside the handler of ``cls``, or ``None``."""
        return self._examples.get(cls)

    def get(self, m: nn.Module | type) -> Handler | None:
        cls = m if isinstance(m, type) else type(m)
        h = self._table.get(cls)
        if h is not None:
            return h
        for base in cls.__mro__[1:]:
            if base in self._table:
                return self._table[base] if base.forward is cls.forward else None
        if not isinstance(m, type):
            for fn in self._resolvers:
                h = fn(m)
                if h is not None:
                    return h
        return None

    def __contains__(self, cls: object) -> bool:
        return cls in self._table

    def types(self) -> list[type]:
        return list(self._table)


HANDLERS = HandlerTable()


def register_handler(cls: type, handler: Handler | None = None, *, replace: bool = False,
                     example: HandlerExample | tuple | None = None):
    """Register ``handler`` for module type ``cls`` (usable as a class decorator on the handler).

    ``example``: a :class:`HandlerExample` (or ``(model_factory, inputs_factory)``) — a tiny
    model that uses ``cls``, kept beside the handler so :func:`prunekit.testing.check_handler`
    (and the contract tests) can prove masked == pruned, predicted == counted parameters and the
    save/load round trip for it.

    Example:
        >>> register_handler(MyConv, MyConvHandler(), example=(my_conv_net, lambda: torch.randn(2, 3, 8, 8)))
    """
    if handler is None:

        def deco(hcls):
            HANDLERS.register(cls, hcls(), replace=replace)
            if example is not None:
                HANDLERS.set_example(cls, example, replace=replace)
            return hcls

        return deco
    out = HANDLERS.register(cls, handler, replace=replace)
    if example is not None:
        HANDLERS.set_example(cls, example, replace=replace)
    return out


def get_handler(m: nn.Module | type) -> Handler | None:
    """The handler for ``m`` (exact type, then a base class that does not override forward)."""
    return HANDLERS.get(m)
