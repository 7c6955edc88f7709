"""Feature slicing of projection layers used inside attention modules (``nn.Linear`` or the
Hugging Face ``Conv1D`` of GPT-2): thin names over the one projection handler,
:class:`prunekit.handlers.linear.ProjectionHandler`, which holds both layouts.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers.linear import is_conv1d, projection

__all__ = ["is_conv1d", "out_axis", "out_rows", "proj_cost", "proj_in", "proj_out", "resize_proj",
           "slice_proj_in", "slice_proj_out"]


def proj_out(m: nn.Module) -> int:
    return projection(m).out_channels(m)


def proj_in(m: nn.Module) -> int:
    return projection(m).in_channels(m)


def out_axis(m: nn.Module) -> int:
    """Axis of ``m.weight`` that indexes output features."""
    return projection(m).out_axis


def slice_proj_out(m: nn.Module, idx: Tensor) -> None:
    """Keep output features ``idx`` (weight rows/cols and bias)."""
    projection(m).prune_out(m, idx)


def slice_proj_in(m: nn.Module, idx: Tensor) -> None:
    """Keep input features ``idx``."""
    projection(m).prune_in(m, idx)


def out_rows(m: nn.Module) -> Tensor:
    """Weight as ``(out, in)`` (a view; transposed for Conv1D)."""
    return m.weight.detach().t() if is_conv1d(m) else m.weight.detach()


def resize_proj(m: nn.Module, n_in: int, n_out: int) -> None:
    """Reallocate ``m`` for ``n_in -> n_out`` features (values are loaded afterwards)."""
    h = projection(m)
    shape = [0, 0]
    shape[h.out_axis], shape[h.in_axis] = n_out, n_in
    shapes = {"weight": tuple(shape)}
    if getattr(m, "bias", None) is not None:
        shapes["bias"] = (n_out,)
    h.resize(m, shapes)


def proj_cost(m: nn.Module, n_in: int, n_out: int) -> tuple[int, int]:
    """``(params, MACs per position)`` of projection ``m`` with ``n_in``/``n_out`` features."""
    return projection(m).cost(m, n_in, n_out)
