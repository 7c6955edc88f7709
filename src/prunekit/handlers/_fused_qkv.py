"""Base handler for attention modules with a fused ``qkv`` input Linear and an output Linear.

torchvision's Swin (``qkv`` / ``proj``) and MaxViT (``to_qkv`` / ``merge``) attention: the
module's input channels are the fused projection's input features, its output channels the
output projection's output features; heads live inside (subclasses expose them as internal
groups). Their stock forwards take head widths from constants, so the first surgery switches
the module to a subclass whose forward reads them from the weights (:meth:`swap`).
"""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers._slicing import as_index, block_rows, slice_param, strided_rows
from prunekit.handlers.base import Handler, resize_params


class FusedQKVHandler(Handler):
    """in: ``<QKV>`` input features; out: ``<OUT>`` output features."""

    QKV = "qkv"
    OUT = "proj"

    def swap(self, m: nn.Module) -> None:
        """Switch ``m`` to its width-agnostic subclass (no-op if already switched)."""

    def in_channels(self, m: nn.Module) -> int:
        return getattr(m, self.QKV).in_features

    def out_channels(self, m: nn.Module) -> int:
        return getattr(m, self.OUT).out_features

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        lin = getattr(m, self.QKV)
        idx = as_index(keep, lin.in_features, f"{type(m).__name__} input")
        self.swap(m)
        slice_param(lin, "weight", 1, idx)
        lin.in_features = idx.numel()

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        lin = getattr(m, self.OUT)
        idx = as_index(keep, lin.out_features, f"{type(m).__name__} output")
        self.swap(m)
        slice_param(lin, "weight", 0, idx)
        slice_param(lin, "bias", 0, idx)
        lin.out_features = idx.numel()

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "in":
            return [(getattr(m, self.QKV).weight, 1)]
        out = getattr(m, self.OUT)
        return [(out.weight, 0)] + ([(out.bias, 0)] if out.bias is not None else [])

    def resize_linears(self, m: nn.Module, shapes: dict[str, tuple[int, ...]],
                       children: list[str]) -> None:
        """Match saved shapes (``pk.load``) of the Linear children ``children`` and of ``m``."""
        for child in children:
            sub = {k[len(child) + 1:]: v for k, v in shapes.items() if k.startswith(child + ".")}
            if sub:
                lin = m.get_submodule(child)
                resize_params(lin, sub)
                lin.out_features, lin.in_features = lin.weight.shape
        resize_params(m, shapes)
        self.swap(m)


def slice_fused_heads(qkv: nn.Linear, out: nn.Linear, heads: Tensor, head_dim: int) -> None:
    """Keep ``heads``: their rows in each of the q, k and v blocks of the fused ``qkv``
    projection (weight and bias) and their input columns of the output projection ``out``."""
    elems = block_rows(heads, head_dim)
    rows = strided_rows(elems, qkv.out_features // 3, 3)
    slice_param(qkv, "weight", 0, rows)
    slice_param(qkv, "bias", 0, rows)
    qkv.out_features = rows.numel()
    slice_param(out, "weight", 1, elems)
    out.in_features = elems.numel()
