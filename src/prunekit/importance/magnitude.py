"""Magnitude criteria: |w| (L1) and w^2 (L2). Han et al., "Learning both Weights and
Connections for Efficient Neural Networks", NeurIPS 2015."""

from __future__ import annotations

from torch import Tensor

from prunekit.importance.base import CRITERIA, LayerStats


class L1:
    requires = frozenset()

    def __call__(self, weight: Tensor, stats: LayerStats | None = None) -> Tensor:
        return weight.detach().float().abs()


class L2:
    requires = frozenset()

    def __call__(self, weight: Tensor, stats: LayerStats | None = None) -> Tensor:
        return weight.detach().float().pow(2)


CRITERIA.register("l1", L1())
CRITERIA.register("magnitude", L1())
CRITERIA.register("l2", L2())
