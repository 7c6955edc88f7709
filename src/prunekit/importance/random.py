"""Random importance (a baseline): seeded, reproducible, independent of weight values."""

from __future__ import annotations

import zlib

import torch
from torch import Tensor

from prunekit.importance.base import CRITERIA, LayerStats


class RandomScore:
    """Uniform scores from a generator seeded by ``seed`` and the layer's shape/name salt."""

    requires = frozenset()

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, weight: Tensor, stats: LayerStats | None = None) -> Tensor:
        salt = stats.extra.get("name", "") if stats is not None else ""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(salt.encode()))
        return torch.rand(weight.shape, generator=gen).to(weight.device)


CRITERIA.register("random", RandomScore())
