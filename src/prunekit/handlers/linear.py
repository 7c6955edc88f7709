"""Handler for linear projections: ``nn.Linear`` (weight ``(out, in)``) and the Hugging Face
``Conv1D`` of GPT-2 (the same layer transposed: weight ``(in, out)``, sizes in ``nf``/``nx``).

One class, :class:`ProjectionHandler`, with the weight axis that indexes output features as a
parameter. HF ``Conv1D`` is recognised by structure (class name ``Conv1D`` with ``nf``) through
a handler-table resolver, so ``transformers`` is never imported.
"""

from __future__ import annotations

import warnings

from torch import Tensor, nn

from prunekit.handlers.base import HANDLERS, Handler, register_handler, resize_params, slice_param


def is_conv1d(m: nn.Module) -> bool:
    """True for HF ``Conv1D`` (transposed linear with ``nf``; older transformers have no ``nx``)."""
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "weight")


class ProjectionHandler(Handler):
    """``y = x @ W.T + b`` (``out_axis=0``, ``nn.Linear``) or ``y = x @ W + b`` (``out_axis=1``,
    HF ``Conv1D``); channels on the last axis of x and y (neurons: slices of the weight along
    ``out_axis``; inputs: along the other axis).

    Args:
        out_axis: axis of ``weight`` that indexes output features (0 or 1).
        out_attr: attribute holding the output feature count (``out_features`` / ``nf``).
        in_attr: attribute holding the input feature count (``in_features`` / ``nx``).
    """

    def __init__(self, out_axis: int = 0, out_attr: str = "out_features",
                 in_attr: str = "in_features") -> None:
        if out_axis not in (0, 1):
            raise ValueError(f"out_axis must be 0 or 1, got {out_axis!r}")
        self.out_axis, self.in_axis = out_axis, 1 - out_axis
        self.out_attr, self.in_attr = out_attr, in_attr

    def in_channels(self, m: nn.Module) -> int:
        return int(m.weight.shape[self.in_axis])

    def out_channels(self, m: nn.Module) -> int:
        return int(m.weight.shape[self.out_axis])

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", self.out_axis, keep)
        slice_param(m, "bias", 0, keep)
        setattr(m, self.out_attr, len(keep))

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", self.in_axis, keep)
        setattr(m, self.in_attr, len(keep))

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "out":
            return [(m.weight, self.out_axis)] + ([(m.bias, 0)] if m.bias is not None else [])
        return [(m.weight, self.in_axis)]

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        n_in = self.in_channels(m) if n_in is None else n_in
        n_out = self.out_channels(m) if n_out is None else n_out
        return n_in * n_out + (n_out if m.bias is not None else 0), n_in * n_out

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        w = shapes.get("weight")
        if w is not None:
            setattr(m, self.out_attr, int(w[self.out_axis]))
            setattr(m, self.in_attr, int(w[self.in_axis]))
        resize_params(m, shapes)


LINEAR = ProjectionHandler(out_axis=0, out_attr="out_features", in_attr="in_features")
HF_CONV1D = ProjectionHandler(out_axis=1, out_attr="nf", in_attr="nx")
register_handler(nn.Linear, LINEAR)


def projection(m: nn.Module) -> ProjectionHandler:
    """The handler of projection ``m`` (``nn.Linear`` or HF ``Conv1D``)."""
    return HF_CONV1D if is_conv1d(m) else LINEAR


def resolve_hf_conv1d(m: nn.Module) -> ProjectionHandler | None:
    """Resolver for the handler table: HF ``Conv1D`` by structure."""
    return HF_CONV1D if is_conv1d(m) else None


HANDLERS.add_resolver(resolve_hf_conv1d)


def __getattr__(name: str):
    if name == "LinearHandler":  # the old class name, kept for one release
        warnings.warn("prunekit.handlers.linear.LinearHandler is deprecated and will be removed in "
                      "the next release; use ProjectionHandler (out_axis=0 for nn.Linear)",
                      DeprecationWarning, stacklevel=2)
        return ProjectionHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
