"""Activation-aware criterion ``|w_ij| * ||x_j||_2``: a weight matters as much as its magnitude
times the typical size of the input it multiplies (Sun et al., "A Simple and Effective Pruning
Approach for Large Language Models" (Wanda), ICLR 2024). For convolutions ``x_j`` is input
channel ``j`` over batch and spatial positions."""

from __future__ import annotations

from torch import Tensor

from prunekit.importance.base import CRITERIA, LayerStats, _need, input_channel_scale


class Activation:
    requires = frozenset({"act"})

    def __call__(self, weight: Tensor, stats: LayerStats | None) -> Tensor:
        act_sq = _need(stats, "act_sq", "activation")
        in_dim = stats.extra.get("in_dim", 1)
        norm = act_sq.clamp_min(0).sqrt()
        return weight.detach().float().abs() * input_channel_scale(weight, norm, in_dim)


CRITERIA.register("activation", Activation())
