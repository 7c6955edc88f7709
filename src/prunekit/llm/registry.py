"""Registry of layer-wise one-shot pruning methods (magnitude, Wanda, SparseGPT, …).

A method is a pure function ``(W (out, in) float, InputStats, LayerTarget) -> W'`` that returns
the pruned (and, for SparseGPT, updated) weight; the block-by-block driver in
:mod:`prunekit.llm.oneshot` does the rest. :class:`~prunekit.config.LayerTarget` (the per-layer
view of the target) lives with :class:`~prunekit.config.TargetSpec` in :mod:`prunekit.config`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from prunekit._registry import Registry
from prunekit.config import LayerTarget as _LayerTarget
from prunekit.llm.collect import NEEDS, InputStats


@dataclass(frozen=True)
class LayerMethod:
    """A registered one-shot method: what it needs from calibration and how it prunes."""

    name: str
    needs: str
    prune: Callable[[Tensor, InputStats, _LayerTarget], Tensor]

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"needs must be one of {NEEDS}, got {self.needs!r}")


LLM_METHODS: Registry[LayerMethod] = Registry("one-shot LLM method")


def register_llm_method(name: str, needs: str):
    """Decorator registering ``prune(W, stats, target) -> W'`` as a one-shot method."""

    def deco(fn: Callable[[Tensor, InputStats, _LayerTarget], Tensor]):
        LLM_METHODS.register(name, LayerMethod(name, needs, fn))
        return fn

    return deco


def __getattr__(name: str):
    if name == "LayerTarget":  # the old home, kept for one release
        warnings.warn("prunekit.llm.registry.LayerTarget is deprecated and will be removed in the "
                      "next release; use prunekit.config.LayerTarget", DeprecationWarning,
                      stacklevel=2)
        return _LayerTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
