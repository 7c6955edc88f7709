"""Rebuild a Keras model with fewer units, and its masked twin used as the reference."""

from __future__ import annotations

import keras
import numpy as np

from prunekit.keras.graph import Chan, KerasGraph

_WIDTH_KEYS = {"Dense": "units", "Conv1D": "filters", "Conv2D": "filters", "Embedding": "output_dim"}


def _rows(chan: Chan, keep: np.ndarray, width: int) -> np.ndarray:
    """Input rows of a consumer holding the kept channels (all spatial positions after Flatten)."""
    if chan.spatial is None:
        return keep
    return (np.arange(chan.spatial)[:, None] * width + keep[None, :]).reshape(-1)


def _sliced(graph: KerasGraph, keep: dict[int, np.ndarray], mask_only: bool) -> dict[str, list]:
    """New weights per layer name: producers/BN sliced on the output side (unless
    ``mask_only``), consumers sliced (or zeroed, ``mask_only``) on the input side."""
    out: dict[str, list] = {}

    def weights(layer):
        return out.setdefault(layer.name, [np.array(w) for w in layer.get_weights()])

    if not mask_only:
        for g, kept in keep.items():
            for layer in graph.producers[g]:
                ws = weights(layer)
                ws[0] = ws[0][..., kept]
                if len(ws) > 1:
                    ws[1] = ws[1][kept]
        for layer, chan in graph.per_channel:
            kept = keep.get(graph.find(chan.group))
            if kept is not None:
                out[layer.name] = [w[kept] for w in weights(layer)]
    for layer, chan in graph.consumers:
        g = graph.find(chan.group)
        if g not in keep:
            continue
        ws = weights(layer)
        axis = 0 if isinstance(layer, keras.layers.Dense) else ws[0].ndim - 2
        rows = _rows(chan, keep[g], graph.sizes[g])
        if mask_only:
            zero = np.ones(ws[0].shape[axis], dtype=bool)
            zero[rows] = False
            idx = [slice(None)] * ws[0].ndim
            idx[axis] = zero
            ws[0][tuple(idx)] = 0
        else:
            ws[0] = np.take(ws[0], rows, axis=axis)
    return out


def _clone(model: keras.Model, widths: dict[str, int]) -> keras.Model:
    def clone(layer):
        cfg = layer.get_config()
        if layer.name in widths:
            cfg[_WIDTH_KEYS[type(layer).__name__]] = widths[layer.name]
        return layer.__class__.from_config(cfg)

    return keras.models.clone_model(model, clone_function=clone)


def _load(model: keras.Model, new: keras.Model, weights: dict[str, list]) -> keras.Model:
    for layer in model.layers:
        if layer.weights:
            ws = weights.get(layer.name) or layer.get_weights()
            new.get_layer(layer.name).set_weights(ws)
    return new


def rebuild(model: keras.Model, graph: KerasGraph, keep: dict[int, np.ndarray]) -> keras.Model:
    """A new model with the kept channels only (stock layers, weights copied)."""
    widths = {layer.name: len(kept) for g, kept in keep.items() for layer in graph.producers[g]}
    return _load(model, _clone(model, widths), _sliced(graph, keep, mask_only=False))


def masked_copy(model: keras.Model, graph: KerasGraph, keep: dict[int, np.ndarray]) -> keras.Model:
    """A copy whose consumers read zeros from every removed channel (the reference)."""
    return _load(model, _clone(model, {}), _sliced(graph, keep, mask_only=True))
