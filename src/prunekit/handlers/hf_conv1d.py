"""Handler for the Hugging Face ``Conv1D`` (GPT-2's transposed linear: weight ``(in, out)``).

Recognised by structure (class name ``Conv1D`` with ``nf``) through a handler-table
resolver, so ``transformers`` is never imported.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers._proj import conv1d_in, is_conv1d
from prunekit.handlers.base import HANDLERS, Handler, resize_params, slice_param


class HFConv1DHandler(Handler):
    """``y = x @ W + b`` with ``W`` ``(nx, nf)``; channels on the last axis of x and y."""

    def in_channels(self, m: nn.Module) -> int:
        return conv1d_in(m)

    def out_channels(self, m: nn.Module) -> int:
        return m.nf

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 1, keep)
        slice_param(m, "bias", 0, keep)
        m.nf = len(keep)

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 0, keep)
        m.nx = len(keep)

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "out":
            return [(m.weight, 1)] + ([(m.bias, 0)] if m.bias is not None else [])
        return [(m.weight, 0)]

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        n_in = conv1d_in(m) if n_in is None else n_in
        n_out = m.nf if n_out is None else n_out
        return n_in * n_out + (n_out if m.bias is not None else 0), n_in * n_out

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        w = shapes.get("weight")
        if w is not None:
            m.nx, m.nf = int(w[0]), int(w[1])
        resize_params(m, shapes)


HF_CONV1D_HANDLER = HFConv1DHandler()


def resolve_hf_conv1d(m: nn.Module) -> HFConv1DHandler | None:
    """Resolver for the handler table: HF ``Conv1D`` by structure."""
    return HF_CONV1D_HANDLER if is_conv1d(m) else None


HANDLERS.add_resolver(resolve_hf_conv1d)
