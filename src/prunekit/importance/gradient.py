"""Gradient-based criteria from calibration batches.

- ``gradient``: mean ``|dL/dw|`` over batches.
- ``taylor``: mean ``|w * dL/dw|`` over batches, the first-order Taylor estimate of the loss change
  when a weight is removed (Molchanov et al., "Pruning Convolutional Neural Networks for Resource
  Efficient Inference", ICLR 2017; "Importance Estimation for Neural Network Pruning", CVPR 2019).
"""

from __future__ import annotations

from torch import Tensor

from prunekit.importance.base import CRITERIA, LayerStats, _need


class Gradient:
    requires = frozenset({"grad"})

    def __call__(self, weight: Tensor, stats: LayerStats | None) -> Tensor:
        g = _need(stats, "grad_abs", "gradient")
        return g / max(stats.batches, 1)


class Taylor:
    requires = frozenset({"grad"})

    def __call__(self, weight: Tensor, stats: LayerStats | None) -> Tensor:
        t = _need(stats, "taylor", "taylor")
        return t / max(stats.batches, 1)


CRITERIA.register("gradient", Gradient())
CRITERIA.register("taylor", Taylor())
