"""Channel groups of a Keras model: which layers produce, carry and consume each channel.

Walks the layers in topological order with one rule per layer family and a union-find over
groups (residual merges couple their inputs). A channel flows on the last axis
(channels_last); after ``Flatten`` it occupies ``spatial`` rows of the next Dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

L = keras.layers
PRODUCERS = (L.Dense, L.Conv1D, L.Conv2D, L.Embedding)
PER_CHANNEL = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Dropout, L.SpatialDropout1D,
               L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
               L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D,
               L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalMaxPooling1D,
               L.GlobalMaxPooling2D, L.ZeroPadding1D, L.ZeroPadding2D, L.Cropping1D,
               L.Cropping2D, L.UpSampling1D, L.UpSampling2D, L.Identity)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)


@dataclass(frozen=True)
class Chan:
    """Channels of group ``group`` on the last axis; after Flatten, ``spatial`` positions each."""

    group: int
    spatial: int | None = None


@dataclass
class KerasGraph:
    """Groups found by :func:`trace_channels`."""

    sizes: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    producers: dict[int, list] = field(default_factory=dict)
    frozen: dict[int, str] = field(default_factory=dict)
    consumers: list[tuple[object, Chan]] = field(default_factory=list)  # (layer, input channels)
    per_channel: list[tuple[object, Chan]] = field(default_factory=list)  # BN: sliced weights
    outputs: dict[str, Chan] = field(default_factory=dict)

    def new(self, size: int, layer) -> int:
        self.sizes.append(size)
        self.parent.append(len(self.parent))
        g = len(self.parent) - 1
        self.producers[g] = [layer]
        return g

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        self.parent[b] = a
        self.producers[a] += self.producers.pop(b)
        if b in self.frozen:
            self.frozen.setdefault(a, self.frozen.pop(b))
        return a

    def freeze(self, chan: Chan | None, why: str) -> None:
        if chan is not None:
            self.frozen.setdefault(self.find(chan.group), why)

    def prunable_groups(self) -> list[int]:
        roots = sorted({self.find(g) for g in range(len(self.parent))})
        return [g for g in roots if g not in self.frozen]

    def frozen_report(self) -> list[tuple[str, str]]:
        return [(", ".join(layer.name for layer in self.producers[g]), why)
                for g, why in sorted(self.frozen.items()) if g == self.find(g)]


def _edges(model) -> list[tuple[object, list[str]]]:
    """``(layer, input layer names)`` in topological order (Sequential: a chain)."""
    if isinstance(model, keras.Sequential):
        out, prev = [], []
        for layer in model.layers:
            out.append((layer, prev))
            prev = [layer.name]
        return out
    out = []
    for op in model.operations:
        nodes = op._inbound_nodes
        if len(nodes) != 1:
            raise ValueError(f"layer {op.name!r} is called {len(nodes)} times (shared layers "
                             f"are not supported by prune_structured)")
        out.append((op, [t._keras_history.operation.name for t in nodes[0].input_tensors]))
    return out


def _output_names(model) -> list[str]:
    if isinstance(model, keras.Sequential):
        return [model.layers[-1].name]
    return [t._keras_history.operation.name for t in model.outputs]


def _channels_last(layer) -> bool:
    fmt = getattr(layer, "data_format", "channels_last")
    return fmt in (None, "channels_last")


def _producer_width(layer) -> int | None:
    if isinstance(layer, L.Embedding):
        return layer.output_dim
    if isinstance(layer, L.Dense):
        return layer.units
    if _channels_last(layer) and getattr(layer, "groups", 1) == 1:
        return layer.filters
    return None


def _step(graph: KerasGraph, layer, ins: list[Chan | None], excluded: bool) -> Chan | None:
    """The channels ``layer`` outputs, registering what it consumes and couples."""
    name = f"{layer.name} ({type(layer).__name__})"
    src = ins[0] if len(ins) == 1 else None
    if isinstance(layer, PRODUCERS) and (width := _producer_width(layer)) is not None:
        if src is not None and not isinstance(layer, L.Embedding):
            if isinstance(layer, L.Dense) or src.spatial is None:
                graph.consumers.append((layer, src))
            else:
                graph.freeze(src, f"consumed by {name} after Flatten")
        g = graph.new(width, layer)
        if excluded:
            graph.freeze(Chan(g), "excluded")
        return Chan(g)
    if isinstance(layer, L.BatchNormalization) and src is not None and src.spatial is None:
        if layer.axis in (-1, [-1], len(layer.input.shape) - 1, [len(layer.input.shape) - 1]):
            graph.per_channel.append((layer, src))
            return src
    if isinstance(layer, PER_CHANNEL) and src is not None and _channels_last(layer):
        return src
    if isinstance(layer, L.Flatten) and src is not None and src.spatial is None:
        shape = layer.input.shape
        return Chan(src.group, int(np.prod(shape[1:-1])) if len(shape) > 2 else 1)
    if isinstance(layer, MERGES) and len(ins) > 1 and all(c is not None for c in ins) \
            and len({c.spatial for c in ins}) == 1:
        g = ins[0].group
        for c in ins[1:]:
            g = graph.union(g, c.group)
        return Chan(g, ins[0].spatial)
    for c in ins:
        graph.freeze(c, f"read by {name}, which prune_structured does not follow")
    return None


def trace_channels(model, exclude: tuple[str, ...] = ()) -> KerasGraph:
    """Group the model's prunable channels (frozen groups carry the reason)."""
    graph = KerasGraph()
    out: dict[str, Chan | None] = {}
    for layer, inputs in _edges(model):
        if isinstance(layer, L.InputLayer):
            out[layer.name] = None
            continue
        ins = [out.get(n) for n in inputs] or [None]
        out[layer.name] = _step(graph, layer, ins, layer.name in exclude)
    for name in _output_names(model):
        graph.freeze(out.get(name), "reaches the model output")
        if out.get(name) is not None:
            graph.outputs[name] = out[name]
    return graph
