"""Weight-importance criteria: pure functions ``(weight, stats) -> scores`` (same shape).

Each criterion is one small registered unit declaring which calibration statistics it needs.
Higher score = more important. Structured (group) criteria live beside the structural engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from prunekit._registry import Registry


@dataclass
class LayerStats:
    """Calibration statistics of one layer, accumulated over the user's batches.

    Attributes:
        grad_abs: sum over batches of ``|dL/dw|`` (shape of the weight).
        taylor: sum over batches of ``|w * dL/dw|`` (shape of the weight).
        act_sq: sum over samples/positions of ``x_j**2`` per input feature/channel ``j``.
        batches: number of batches accumulated for gradient statistics.
        samples: number of rows (tokens / pixels x batch) accumulated for ``act_sq``.
    """

    grad_abs: Tensor | None = None
    taylor: Tensor | None = None
    act_sq: Tensor | None = None
    batches: int = 0
    samples: int = 0
    extra: dict = field(default_factory=dict)


class WeightCriterion(Protocol):
    """``requires`` names the statistics needed: subset of {"grad", "act"}."""

    requires: frozenset[str]

    def __call__(self, weight: Tensor, stats: LayerStats | None) -> Tensor: ...


CRITERIA: Registry[WeightCriterion] = Registry("criterion")


def get_criterion(name: str) -> WeightCriterion:
    return CRITERIA.get(name)


def _need(stats: LayerStats | None, attr: str, crit: str) -> Tensor:
    value = None if stats is None else getattr(stats, attr)
    if value is None:
        raise ValueError(
            f"criterion {crit!r} needs calibration data: pass calib_data= (and loss_fn= for "
            "gradient-based criteria)"
        )
    return value


def input_channel_scale(weight: Tensor, per_input: Tensor, in_dim: int) -> Tensor:
    """Broadcast a per-input-feature vector along ``in_dim`` of ``weight``."""
    shape = [1] * weight.dim()
    shape[in_dim] = -1
    return per_input.to(weight.device, torch.float32).reshape(shape)
