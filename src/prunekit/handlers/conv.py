"""Handlers for ``nn.Conv1d/2d/3d`` and ``nn.ConvTranspose1d/2d/3d`` (incl. grouped, depthwise).

Filter pruning (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017) removes output
channels (rows of the weight) and the matching input channels of every consumer. Grouped convs
lose whole groups (``groups`` shrinks); a depthwise conv (``groups == in == out``) couples its
input and output channel one to one.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from prunekit.handlers.base import (
    Handler,
    PruneError,
    register_handler,
    resize_params,
    slice_param,
)


class ConvHandler(Handler):
    """``weight``: conv ``(out, in/groups, *k)``; transposed ``(in, out/groups, *k)``."""

    def in_channels(self, m: nn.Module) -> int:
        return m.in_channels

    def out_channels(self, m: nn.Module) -> int:
        return m.out_channels

    def groups(self, m: nn.Module) -> int:
        return m.groups

    def in_out_coupled(self, m: nn.Module) -> bool:
        return m.groups > 1 and m.groups == m.in_channels == m.out_channels

    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        return x.dim() - 1 - len(m.kernel_size)

    def out_dim(self, m: nn.Module, y: Tensor) -> int:
        return y.dim() - 1 - len(m.kernel_size)

    def _check_groups(self, m: nn.Module, keep: Tensor, per: int, side: str) -> int:
        if len(keep) == 0 or len(keep) % per:
            raise PruneError(f"{type(m).__name__}: {side} keep of {len(keep)} channels is not a "
                             f"whole number of groups of {per}")
        blocks = keep.reshape(-1, per)
        if not bool(((blocks - blocks[:, :1]) == blocks.new_tensor(range(per))).all()) or bool(
                (blocks[:, 0] % per).any()):
            raise PruneError(f"{type(m).__name__}: {side} channels must be removed in whole groups")
        return len(keep) // per

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        t = m.transposed
        if self.in_out_coupled(m):
            slice_param(m, "weight", 0, keep)
            slice_param(m, "bias", 0, keep)
            m.in_channels = m.out_channels = m.groups = len(keep)
            return
        if m.groups > 1:
            opg = m.out_channels // m.groups
            self._check_groups(m, keep, opg, "output")
            if not t:
                slice_param(m, "weight", 0, keep)
        else:
            slice_param(m, "weight", 1 if t else 0, keep)
        slice_param(m, "bias", 0, keep)
        m.out_channels = len(keep)

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        t = m.transposed
        if m.groups > 1:  # (a coupled depthwise conv is handled entirely by prune_out)
            ipg = m.in_channels // m.groups
            m.groups = self._check_groups(m, keep, ipg, "input")
            if t:
                slice_param(m, "weight", 0, keep)
        else:
            slice_param(m, "weight", 0 if t else 1, keep)
        m.in_channels = len(keep)

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        t, g = m.transposed, m.groups
        bias = [(m.bias, 0)] if m.bias is not None and dim == "out" else []
        if g == 1:
            return [(m.weight, int(t) if dim == "out" else 1 - int(t))] + bias
        if self.in_out_coupled(m):
            return [(m.weight, 0)] + ([(m.bias, 0)] if m.bias is not None else [])
        if (dim == "out") != t:  # conv out rows / transposed in rows
            return [(m.weight, 0)] + bias
        return bias

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        n_in = m.in_channels if n_in is None else n_in
        n_out = m.out_channels if n_out is None else n_out
        k = math.prod(m.kernel_size)
        if self.in_out_coupled(m):
            g = n_out
        elif m.groups > 1:
            g = max(n_in // (m.in_channels // m.groups), 1)
        else:
            g = 1
        per = n_out * (n_in // g) * k
        return per + (n_out if m.bias is not None else 0), per

    def mac_positions(self, m: nn.Module, y: Tensor, dim: int) -> int:
        """A transposed conv does its MACs once per *input* position (as FlopCounterMode counts);
        the input size follows from the output's (any ``output_padding`` is below the stride)."""
        spatial = y.shape[dim + 1:]
        if not m.transposed:
            return y.numel() // max(y.shape[dim], 1)
        ins = [(o - 1 + 2 * p - d * (k - 1)) // s + 1 for o, p, d, k, s in
               zip(spatial, m.padding, m.dilation, m.kernel_size, m.stride, strict=True)]
        return math.prod(y.shape[:dim]) * math.prod(ins)

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        w = shapes.get("weight")
        if w is not None:
            if m.transposed:
                ipg = m.in_channels // m.groups
                g = max(w[0] // ipg, 1) if m.groups > 1 else 1
                m.in_channels, m.out_channels, m.groups = w[0], w[1] * g, g
            else:
                opg = m.out_channels // m.groups
                g = max(w[0] // opg, 1) if m.groups > 1 else 1
                m.out_channels, m.in_channels, m.groups = w[0], w[1] * g, g
        resize_params(m, shapes)


CONV = ConvHandler()
for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d):
    register_handler(_cls, CONV)
