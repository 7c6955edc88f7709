"""Importance criteria (registered on import)."""

from prunekit.importance import activation, gradient, magnitude, random  # noqa: F401
from prunekit.importance.base import CRITERIA, LayerStats, WeightCriterion, get_criterion

__all__ = ["CRITERIA", "LayerStats", "WeightCriterion", "get_criterion"]
