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

    def heads(self, m: nn.Module) -> tuple[int, int]:
        """``(number of heads, head width)`` (subclasses)."""
        raise NotImplementedError

    def head_params(self, m: nn.Module) -> int:
        """Parameters per head outside the two projections (bias-table columns, ...)."""
        return 0

    def internal_cost(self, m: nn.Module, n_in: int | None, n_out: int | None,
                      kept: dict[str, int]) -> tuple[int, int]:
        """``(params, MACs per token)`` with ``kept["heads"]`` heads: exact parameters (the
        projections, the per-head tensors, the rest unchanged); MACs of the projections only
        (the score and weighting MACs depend on the window or sequence length)."""
        heads, hd = self.heads(m)
        qkv, out = getattr(m, self.QKV), getattr(m, self.OUT)
        n_in = qkv.in_features if n_in is None else n_in
        n_out = out.out_features if n_out is None else n_out
        inner = kept.get("heads", heads) * hd
        per_head = self.head_params(m)
        rest = (sum(p.numel() for p in m.parameters()) - sum(p.numel() for p in qkv.parameters())
                - sum(p.numel() for p in out.parameters()) - heads * per_head)
        macs = 3 * inner * n_in + n_out * inner
        params = macs + (3 * inner if qkv.bias is not None else 0)
        params += (n_out if out.bias is not None else 0) + kept.get("heads", heads) * per_head
        return params + rest, macs

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        return self.internal_cost(m, n_in, n_out, {})

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
