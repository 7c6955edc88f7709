"""Hybrid pruning: remove channels/heads first, then mask weights of the smaller model.

Structured removal buys real speed on dense hardware; weight masks (unstructured, or N:M for
sparse tensor cores) then shrink what is left. Running them in this order means the weight
criterion ranks only weights that survive (cf. Han et al., "Learning both Weights and
Connections", 2015, for magnitude masks; Li et al., "Pruning Filters for Efficient ConvNets",
2017, for filter removal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from prunekit.io import plain_state_dict
from prunekit.config import WeightPruneConfig
from prunekit.structural.plan import plan_structured
from prunekit.weights import prune_weights


@dataclass(frozen=True)
class HybridReport:
    """Both halves of :func:`prune_hybrid`, plus the parameter counts along the way."""

    structured: Any  # StructuredPlan (prunekit.structural.result)
    weights: Any  # WeightPruneReport (prunekit.weights)
    params_dense: int
    params_after_structured: int
    nonzero_after_weights: int

    def summary(self) -> str:
        d, s, w = self.params_dense, self.params_after_structured, self.nonzero_after_weights
        return (f"params: dense {d:,} -> structured {s:,} ({s / d:.1%}) -> "
                f"non-zero after weight masks {w:,} ({w / d:.1%}); "
                f"weight sparsity of masked layers {self.weights.sparsity:.1%}")

    def to_dict(self) -> dict[str, Any]:
        return {"params_dense": self.params_dense,
                "params_after_structured": self.params_after_structured,
                "nonzero_after_weights": self.nonzero_after_weights,
                "structured": self.structured.to_dict(), "weights": self.weights.to_dict()}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _nonzero(model: nn.Module) -> int:
    """Non-zero parameter entries as the finalized model will have them (masks applied)."""

    buffers = {n for n, _ in model.named_buffers()}
    return sum(int((v != 0).sum()) for k, v in plain_state_dict(model).items() if k not in buffers)


def prune_hybrid(model: nn.Module, example_inputs: Any, structured: dict[str, Any] | None = None,
                 weights: dict[str, Any] | None = None) -> tuple[nn.Module, HybridReport]:
    """``plan_structured(**structured).apply()`` then ``prune_weights(**weights)``.

    Args:
        model: the dense model; it is not modified (the result is a pruned copy).
        example_inputs: one batch; used for tracing and to check the masked model runs.
        structured: keyword arguments of :func:`prunekit.plan_structured` (e.g.
            ``dict(ratio=0.3, criterion="l1", round_to=8)``).
        weights: keyword arguments of :func:`prunekit.prune_weights` (e.g.
            ``dict(sparsity=0.5)`` or ``dict(pattern="2:4")``).

    Returns:
        ``(pruned_copy, HybridReport)``. The weight masks are parametrizations until
        :func:`prunekit.finalize` is called. With an N:M pattern, ``round_to`` is raised to a
        multiple of M so the slimmer layers stay N:M-compatible.

    Raises:
        ValueError: from either step. Both options are validated before anything changes,
            and the weight step runs on the structurally pruned copy, so ``model`` is never
            changed.
    """
    import math


    structured = dict(structured or {})
    weights = dict(weights or {"sparsity": 0.5})
    for bad in ("model", "example_inputs"):
        if bad in structured or bad in weights:
            raise ValueError(f"structured/weights: do not pass {bad!r} inside the dicts")
    cfg_keys = set(WeightPruneConfig.__dataclass_fields__)
    wcfg = WeightPruneConfig(**{k: v for k, v in weights.items() if k in cfg_keys})  # validate first
    if wcfg.pattern is not None:
        structured["round_to"] = math.lcm(int(structured.get("round_to") or 1), wcfg.pattern[1])
    dense = _count(model)
    plan = plan_structured(model, example_inputs, **structured)
    pruned = plan.apply(copy=True)
    mid = _count(pruned)
    wreport = prune_weights(pruned, example_inputs=example_inputs, **weights)
    return pruned, HybridReport(plan, wreport, dense, mid, _nonzero(pruned))
