"""Feature slicing of projection layers used inside attention modules.

Two layouts: ``nn.Linear`` (weight ``(out, in)``) and the Hugging Face ``Conv1D`` of GPT-2
(weight ``(in, out)``, attributes ``nf``/``nx``). Recognised by duck typing so that
``transformers`` is never imported here.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers._slicing import resize_param, slice_param


def is_conv1d(m: nn.Module) -> bool:
    """True for HF ``Conv1D`` (transposed linear with ``nf``; older transformers have no ``nx``)."""
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "weight")


def proj_out(m: nn.Module) -> int:
    return m.nf if is_conv1d(m) else m.out_features


def proj_in(m: nn.Module) -> int:
    return conv1d_in(m) if is_conv1d(m) else m.in_features


def conv1d_in(m: nn.Module) -> int:
    """Input features of a HF ``Conv1D``, read from its ``(in, out)`` weight."""
    return int(m.weight.shape[0])


def out_axis(m: nn.Module) -> int:
    """Axis of ``m.weight`` that indexes output features."""
    return 1 if is_conv1d(m) else 0


def slice_proj_out(m: nn.Module, idx: Tensor) -> None:
    """Keep output features ``idx`` (weight rows/cols and bias)."""
    slice_param(m, "weight", out_axis(m), idx)
    slice_param(m, "bias", 0, idx)
    if is_conv1d(m):
        m.nf = idx.numel()
    else:
        m.out_features = idx.numel()


def slice_proj_in(m: nn.Module, idx: Tensor) -> None:
    """Keep input features ``idx``."""
    slice_param(m, "weight", 1 - out_axis(m), idx)
    if is_conv1d(m):
        m.nx = idx.numel()
    else:
        m.in_features = idx.numel()


def out_rows(m: nn.Module) -> Tensor:
    """Weight as ``(out, in)`` (a view; transposed for Conv1D)."""
    return m.weight.detach().t() if is_conv1d(m) else m.weight.detach()


def resize_proj(m: nn.Module, n_in: int, n_out: int) -> None:
    """Reallocate ``m`` for ``n_in -> n_out`` features (values are loaded afterwards)."""
    if is_conv1d(m):
        resize_param(m, "weight", (n_in, n_out))
        m.nx, m.nf = n_in, n_out
    else:
        resize_param(m, "weight", (n_out, n_in))
        m.in_features, m.out_features = n_in, n_out
    if getattr(m, "bias", None) is not None:
        resize_param(m, "bias", (n_out,))


def proj_cost(m: nn.Module, n_in: int, n_out: int) -> tuple[int, int]:
    """``(params, MACs per position)`` of projection ``m`` with ``n_in``/``n_out`` features."""
    macs = n_in * n_out
    return macs + (n_out if getattr(m, "bias", None) is not None else 0), macs
