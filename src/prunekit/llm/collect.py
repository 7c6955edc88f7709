"""Small forward-hook collectors of layer-input statistics for one-shot pruning.

Two statistics cover the reference methods:

* ``act_norm``: the squared L2 norm of every input feature over all calibration tokens,
  ``‖X_j‖₂²`` (Wanda, Sun et al., ICLR 2024, eq. 1).
* ``hessian``: the layer-wise reconstruction Hessian ``H = 2 X Xᵀ / n`` over all calibration
  tokens (SparseGPT, Frantar & Alistarh, ICML 2023, §3), accumulated as a running mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

NEEDS = ("none", "act_norm", "hessian")


@dataclass
class InputStats:
    """Accumulated statistics of one layer's inputs.

    Attributes:
        tokens: number of token rows seen.
        act_norm_sq: ``(in,)`` sum over tokens of ``x_j²`` (or None).
        hessian: ``(in, in)`` running ``2 X Xᵀ / tokens`` in float32 (or None).
    """

    tokens: int = 0
    act_norm_sq: Tensor | None = None
    hessian: Tensor | None = None


def _hook(stats: InputStats, need: str) -> Callable:
    def hook(_mod: nn.Module, args: tuple) -> None:
        x = args[0].detach()
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.reshape(-1, x.shape[-1]).to(dtype)  # (tokens, in)
        n = x.shape[0]
        if need == "act_norm":
            sq = x.pow(2).sum(0)
            stats.act_norm_sq = sq if stats.act_norm_sq is None else stats.act_norm_sq + sq
        elif need == "hessian":
            if stats.hessian is None:
                stats.hessian = torch.zeros(x.shape[1], x.shape[1], device=x.device, dtype=dtype)
            total = stats.tokens + n
            stats.hessian.mul_(stats.tokens / total)
            xs = x * (2.0 / total) ** 0.5
            stats.hessian.addmm_(xs.t(), xs)
        stats.tokens += n

    return hook


class InputCollector:
    """Context manager attaching one collector per layer; ``stats[name]`` after the forward."""

    def __init__(self, layers: dict[str, nn.Module], need: str) -> None:
        if need not in NEEDS:
            raise ValueError(f"need must be one of {NEEDS}, got {need!r}")
        self.layers = layers
        self.need = need
        self.stats: dict[str, InputStats] = {n: InputStats() for n in layers}
        self._handles: list = []

    def __enter__(self) -> InputCollector:
        if self.need != "none":
            self._handles = [
                m.register_forward_pre_hook(_hook(self.stats[n], self.need))
                for n, m in self.layers.items()
            ]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
