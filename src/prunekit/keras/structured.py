"""Structural pruning of Keras 3 Sequential/functional models: rebuild with fewer units.

Filters/units are scored with the L1 norm of their weights (Li et al., "Pruning Filters for
Efficient ConvNets", ICLR 2017), coupled across residual ``Add``s, followed through
per-channel layers (BatchNormalization, activations, pooling) and into ``Flatten`` -> ``Dense``
(one row per spatial position and channel). Channels that reach the model's outputs, a layer
that mixes channels in an unknown way, or an excluded layer are frozen. The model is then
rebuilt from its config with the smaller ``units``/``filters``/``output_dim`` and the kept
weight slices, and checked against the original with the removed channels masked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import keras
import numpy as np

from prunekit.config import check_ratio
from prunekit.keras.api import _check_model
from prunekit.keras.graph import Chan, KerasGraph, trace_channels
from prunekit.keras.rebuild import masked_copy, rebuild


@dataclass(frozen=True)
class KerasStructuredConfig:
    """Validated options of :func:`prune_structured`."""

    ratio: float = 0.5
    criterion: str = "l1"
    exclude: tuple[str, ...] = ()
    atol: float = 1e-4

    def __post_init__(self) -> None:
        check_ratio(self.ratio, "ratio")
        if self.criterion not in ("l1", "l2"):
            raise ValueError(f"criterion must be 'l1' or 'l2', got {self.criterion!r}")
        object.__setattr__(self, "exclude", tuple(
            (self.exclude,) if isinstance(self.exclude, str) else self.exclude))
        if not (isinstance(self.atol, (int, float)) and self.atol > 0):
            raise ValueError(f"atol must be a positive number, got {self.atol!r}")


@dataclass
class KerasStructuredPlan:
    """Kept channels per prunable group; ``apply()`` builds the smaller model."""

    model: keras.Model
    example: np.ndarray
    config: KerasStructuredConfig
    graph: KerasGraph
    keep: dict[int, np.ndarray]  # group id -> sorted kept channel indices
    frozen: list[tuple[str, str]] = field(default_factory=list)  # (layers, reason)

    def summary(self) -> str:
        lines = [f"Keras structural plan: {self.config.criterion}, ratio {self.config.ratio}"]
        for g, kept in self.keep.items():
            names = ", ".join(layer.name for layer in self.graph.producers[g])
            lines.append(f"  {names}: {self.graph.sizes[g]} -> {len(kept)}")
        if self.frozen:
            lines.append("  frozen (not pruned, why):")
            lines += [f"    {names}: {why}" for names, why in self.frozen]
        return "\n".join(lines)

    def apply(self) -> keras.Model:
        """The rebuilt smaller model (the original is not modified), checked against the
        masked original on the example inputs.

        Raises:
            RuntimeError: the rebuilt model does not reproduce the masked original.
        """
        small = rebuild(self.model, self.graph, self.keep)
        masked = masked_copy(self.model, self.graph, self.keep)
        ref = keras.ops.convert_to_numpy(masked(self.example, training=False))
        got = keras.ops.convert_to_numpy(small(self.example, training=False))
        diff = float(np.abs(ref - got).max()) if ref.shape == got.shape else float("inf")
        tol = self.config.atol * max(1.0, float(np.abs(ref).max()))
        if diff > tol:
            raise RuntimeError(f"the rebuilt model differs from the masked original by {diff:.3g}"
                               f" (tolerance {tol:.3g}); the original model is unchanged")
        return small


def _scores(graph: KerasGraph, g: int, criterion: str) -> np.ndarray:
    total = np.zeros(graph.sizes[g])
    for layer in graph.producers[g]:
        w = np.asarray(layer.get_weights()[0])  # kernel / embeddings: channels on the last axis
        flat = np.abs(w.reshape(-1, w.shape[-1]))
        s = flat.sum(0) if criterion == "l1" else np.sqrt((flat ** 2).sum(0))
        total += s / max(float(s.mean()), 1e-12)  # producers on a common scale
    return total


def plan_structured(model: keras.Model, x, ratio: float = 0.5, criterion: str = "l1",
                    exclude: Iterable[str] = (), atol: float = 1e-4) -> KerasStructuredPlan:
    """Plan which units/filters to remove (nothing is modified); see :func:`prune_structured`."""
    cfg = KerasStructuredConfig(ratio, criterion, tuple(exclude), atol)
    _check_model(model, "model")
    names = {layer.name for layer in model.layers}
    missing = [n for n in cfg.exclude if n not in names]
    if missing:
        raise ValueError(f"exclude: no layer named {', '.join(map(repr, missing))}")
    example = x if isinstance(x, (list, tuple, dict)) else np.asarray(x)
    graph = trace_channels(model, cfg.exclude)
    keep = {}
    for g in graph.prunable_groups():
        n = graph.sizes[g]
        k = max(1, n - int(round(cfg.ratio * n)))
        order = np.argsort(-_scores(graph, g, cfg.criterion), kind="stable")
        keep[g] = np.sort(order[:k])
    return KerasStructuredPlan(model, example, cfg, graph, keep, graph.frozen_report())


def prune_structured(model: keras.Model, x, ratio: float = 0.5, criterion: str = "l1",
                     exclude: Iterable[str] = (), atol: float = 1e-4) -> keras.Model:
    """Remove units/filters physically from a Sequential or functional Keras model.

    Supports Dense, Conv1D/Conv2D (channels_last, groups=1), Embedding as pruned layers;
    BatchNormalization, activations, dropout, pooling, global pooling, padding, ``Flatten``
    and element-wise merges (``Add``...) are followed. The output layer is never pruned.

    Args:
        model: a built Sequential or functional ``keras.Model`` (not modified).
        x: example inputs (a batch): used to check the rebuilt model.
        ratio: fraction of each group's units/filters removed (at least one is kept).
        criterion: ``l1`` (default) or ``l2`` norm of each unit's weights.
        exclude: layer names whose outputs are never pruned.
        atol: tolerance of the check (scaled by the output magnitude above 1).

    Returns:
        A new ``keras.Model`` of stock layers: ``model.save`` / ``keras.models.load_model``.

    Raises:
        ValueError: bad options, subclassed models.
        RuntimeError: the rebuilt model disagrees with the masked original.
    """
    return plan_structured(model, x, ratio, criterion, exclude, atol).apply()


__all__ = ["Chan", "KerasStructuredConfig", "KerasStructuredPlan", "plan_structured",
           "prune_structured"]
