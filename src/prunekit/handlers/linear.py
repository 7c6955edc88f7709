"""Handler for ``nn.Linear`` (neurons: rows of the weight; inputs: its columns)."""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers.base import Handler, register_handler, resize_params, slice_param


class LinearHandler(Handler):
    """``weight`` ``(out_features, in_features)``; channels on the last axis of x and y."""

    def in_channels(self, m: nn.Module) -> int:
        return m.in_features

    def out_channels(self, m: nn.Module) -> int:
        return m.out_features

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 0, keep)
        slice_param(m, "bias", 0, keep)
        m.out_features = len(keep)

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 1, keep)
        m.in_features = len(keep)

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "out":
            return [(m.weight, 0)] + ([(m.bias, 0)] if m.bias is not None else [])
        return [(m.weight, 1)]

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        n_in = m.in_features if n_in is None else n_in
        n_out = m.out_features if n_out is None else n_out
        return n_in * n_out + (n_out if m.bias is not None else 0), n_in * n_out

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        w = shapes.get("weight")
        if w is not None:
            m.out_features, m.in_features = int(w[0]), int(w[1])
        resize_params(m, shapes)


LINEAR = LinearHandler()
register_handler(nn.Linear, LINEAR)
