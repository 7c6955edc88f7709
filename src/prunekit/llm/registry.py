"""Registry of layer-wise one-shot pruning methods (magnitude, Wanda, SparseGPT, …).

A method is a pure function ``(W (out, in) float, InputStats, LayerTarget) -> W'`` that returns
the pruned (and, for SparseGPT, updated) weight; the block-by-block driver in
:mod:`prunekit.llm.oneshot` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from prunekit._registry import Registry
from prunekit.llm.collect import NEEDS, InputStats


@dataclass(frozen=True)
class LayerTarget:
    """What to prune in one layer.

    Attributes:
        sparsity: fraction of weights zeroed (unstructured); unused when ``nm`` is set.
        nm: ``(n, m)``: keep ``n`` of every ``m`` consecutive input weights of each row.
        blocksize: SparseGPT lazy-update block width (columns).
        percdamp: SparseGPT dampening as a fraction of the mean Hessian diagonal.
    """

    sparsity: float = 0.5
    nm: tuple[int, int] | None = None
    blocksize: int = 128
    percdamp: float = 0.01


@dataclass(frozen=True)
class LayerMethod:
    """A registered one-shot method: what it needs from calibration and how it prunes."""

    name: str
    needs: str
    prune: Callable[[Tensor, InputStats, LayerTarget], Tensor]

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"needs must be one of {NEEDS}, got {self.needs!r}")


LLM_METHODS: Registry[LayerMethod] = Registry("one-shot LLM method")


def register_llm_method(name: str, needs: str):
    """Decorator registering ``prune(W, stats, target) -> W'`` as a one-shot method."""

    def deco(fn: Callable[[Tensor, InputStats, LayerTarget], Tensor]):
        LLM_METHODS.register(name, LayerMethod(name, needs, fn))
        return fn

    return deco
