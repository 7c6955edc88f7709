"""Embedding tables: ``nn.Embedding`` / ``nn.EmbeddingBag``. The output channels are
``embedding_dim`` (columns of ``weight``); there is no input channel dim (indices).

Raw ``nn.Parameter`` tensors used in functional ops (class tokens, position embeddings,
layer-scale) need no handler: the tracer labels them like activations and slices them itself.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers._slicing import as_index, resize_param, slice_param
from prunekit.handlers.base import Handler, register_handler


class EmbeddingHandler(Handler):
    """Handler for ``nn.Embedding`` and ``nn.EmbeddingBag`` (prunes ``embedding_dim``)."""

    def in_channels(self, m: nn.Module) -> None:
        return None

    def out_channels(self, m: nn.Module) -> int:
        return m.embedding_dim

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        raise ValueError(f"{type(m).__name__}: consumes indices, it has no input channels")

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        idx = as_index(keep, m.embedding_dim, f"{type(m).__name__} embedding_dim")
        slice_param(m, "weight", 1, idx)
        m.embedding_dim = idx.numel()

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        return [] if dim == "in" else [(m.weight, 1)]

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        if "weight" in shapes:
            m.num_embeddings, m.embedding_dim = shapes["weight"]
            resize_param(m, "weight", tuple(shapes["weight"]))


EMBEDDING_HANDLER = EmbeddingHandler()
register_handler(nn.Embedding, EMBEDDING_HANDLER)
register_handler(nn.EmbeddingBag, EMBEDDING_HANDLER)
