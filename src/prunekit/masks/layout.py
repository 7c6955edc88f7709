"""How a layer's weight is viewed as a ``(out, K)`` matrix for N:M grouping.

Sparse tensor cores group along the GEMM reduction dimension. For a convolution in channels-last
implicit GEMM that is the input-channel axis innermost, so a conv weight ``(O, I, *k)`` is viewed
as ``(O, *k, I)`` and groups of M run along ``I``. Users register layouts for their own layer
types with :func:`register_layout`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunekit._registry import Registry


@dataclass(frozen=True)
class WeightLayout:
    """Maps a weight tensor to a 2-D ``(rows, K)`` view whose last dim is the reduction dim.

    Attributes:
        to_rows: weight -> (rows, K) tensor (a copy or view).
        from_rows: (rows, K) tensor + original shape -> tensor shaped like the weight.
        reduction_size: weight -> size of the axis along which N:M groups run.
    """

    to_rows: Callable[[Tensor], Tensor]
    from_rows: Callable[[Tensor, torch.Size], Tensor]
    reduction_size: Callable[[Tensor], int]


def _linear_to_rows(w: Tensor) -> Tensor:  # (O, I)
    return w


def _linear_from_rows(r: Tensor, shape: torch.Size) -> Tensor:
    return r.reshape(shape)


def _conv_to_rows(w: Tensor) -> Tensor:  # (O, I, *k) -> (O * prod(k), I)
    perm = (0, *range(2, w.dim()), 1)
    return w.permute(perm).reshape(-1, w.shape[1])


def _conv_from_rows(r: Tensor, shape: torch.Size) -> Tensor:
    o, i, *k = shape
    inv = (0, len(shape) - 1, *range(1, len(shape) - 1))
    return r.reshape(o, *k, i).permute(inv).contiguous()


def _transposed_to_rows(w: Tensor) -> Tensor:  # stored (I, O) e.g. HF Conv1D
    return w.t()


def _transposed_from_rows(r: Tensor, shape: torch.Size) -> Tensor:
    return r.t().reshape(shape).contiguous()


LINEAR = WeightLayout(_linear_to_rows, _linear_from_rows, lambda w: w.shape[1])
CONV = WeightLayout(_conv_to_rows, _conv_from_rows, lambda w: w.shape[1])
TRANSPOSED = WeightLayout(_transposed_to_rows, _transposed_from_rows, lambda w: w.shape[0])

LAYOUTS: Registry[WeightLayout] = Registry("weight layout")
_TYPES: dict[type, str] = {}


def register_layout(module_type: type, layout: WeightLayout, name: str | None = None) -> None:
    """Declare ``module_type.weight`` prunable with the given layout (duplicates rejected)."""
    key = name or f"{module_type.__module__}.{module_type.__qualname__}"
    LAYOUTS.register(key, layout)
    _TYPES[module_type] = key


for _t in (nn.Linear,):
    register_layout(_t, LINEAR)
for _t in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_layout(_t, CONV)
# ConvTranspose weights are (I, O/g, *k): the reduction (GEMM K) axis is the output-channel axis
# of the stored tensor; we group along dim 1 like a conv, which keeps N:M on the stored layout.
for _t in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_layout(_t, CONV)


def _maybe_register_hf_conv1d() -> None:
    try:  # GPT-2 style Conv1D stores (in, out)
        from transformers.pytorch_utils import Conv1D  # type: ignore
    except Exception:  # pragma: no cover - transformers optional
        return
    if Conv1D not in _TYPES:
        register_layout(Conv1D, TRANSPOSED, name="transformers.Conv1D")


def layout_for(module: nn.Module) -> WeightLayout | None:
    """The layout registered for ``type(module)`` (exact type, then MRO), or None."""
    _maybe_register_hf_conv1d()
    for t in type(module).__mro__:
        if t in _TYPES:
            return LAYOUTS.get(_TYPES[t])
    return None


def prunable_types() -> tuple[type, ...]:
    _maybe_register_hf_conv1d()
    return tuple(_TYPES)
