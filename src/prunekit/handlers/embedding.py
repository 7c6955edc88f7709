"""Embedding tables and raw ``nn.Parameter`` tensors coupled to a channel dim.

* :class:`EmbeddingHandler` — ``nn.Embedding`` / ``nn.EmbeddingBag``: the output channels are
  ``embedding_dim`` (columns of ``weight``); there is no input channel dim (indices).
* :class:`ParameterHandler` — parameters used directly in functional ops (class tokens
  ``(1, 1, C)``, position embeddings ``(1, N, C)``, layer-scale ``(C,)`` or ``(C, 1, 1)``,
  per-head bias tables). The tracer finds the op that consumes the parameter, works out which
  axis of the parameter lines up with the channel dim of that op's output
  (:func:`param_channel_axis`, NumPy broadcasting rules) and calls
  ``PARAMETERS.prune(model, "encoder.pos_embedding", axis, keep)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from prunekit.handlers._slicing import as_index, resize_param, slice_param
from prunekit.handlers.base import HandlerBase, register_handler


class EmbeddingHandler(HandlerBase):
    """Handler for ``nn.Embedding`` and ``nn.EmbeddingBag`` (prunes ``embedding_dim``)."""

    def in_channels(self, m: nn.Module) -> None:
        return None

    def out_channels(self, m: nn.Module) -> int:
        return m.embedding_dim

    def in_out_coupled(self, m: nn.Module) -> bool:
        return False

    def in_granularity(self, m: nn.Module) -> int:
        return 1

    def out_granularity(self, m: nn.Module) -> int:
        return 1

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        raise ValueError(f"{type(m).__name__}: consumes indices, it has no input channels")

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        idx = as_index(keep, m.embedding_dim, f"{type(m).__name__} embedding_dim")
        slice_param(m, "weight", 1, idx)
        m.embedding_dim = idx.numel()

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        return [] if dim == "in" else [(m.weight, 1)]

    def internal_groups(self, m: nn.Module) -> list:
        return []

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        if "weight" in shapes:
            m.num_embeddings, m.embedding_dim = shapes["weight"]
            resize_param(m, "weight", tuple(shapes["weight"]))


def param_channel_axis(param_shape: tuple[int, ...], out_ndim: int, channel_dim: int) -> int | None:
    """Axis of a parameter that broadcasts onto ``channel_dim`` of an ``out_ndim``-D result.

    Returns ``None`` when the parameter does not span that dim (size-1 or missing axis), i.e. it
    needs no slicing. Example: layer-scale ``(C, 1, 1)`` times ``(B, C, H, W)`` with channel
    dim 1 -> axis 0; a class token ``(1, 1, C)`` concatenated to ``(B, N, C)`` on dim 2 -> axis 2.
    """
    cd = channel_dim % out_ndim
    axis = cd - (out_ndim - len(param_shape))
    if axis < 0 or param_shape[axis] == 1:
        return None
    return axis


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    owner_name, _, leaf = name.rpartition(".")
    try:
        owner = model.get_submodule(owner_name) if owner_name else model
    except AttributeError as err:
        raise ValueError(f"parameter {name!r} not found in {type(model).__name__}") from err
    if not isinstance(getattr(owner, leaf, None), nn.Parameter):
        raise ValueError(f"{name!r} is not an nn.Parameter of {type(owner).__name__}")  # noqa: TRY004
    return owner, leaf


class ParameterHandler:
    """Slices raw ``nn.Parameter`` tensors (addressed by qualified name) along one axis."""

    def channels(self, model: nn.Module, name: str, axis: int) -> int:
        owner, leaf = _owner(model, name)
        return getattr(owner, leaf).shape[axis]

    def weight_slices(self, model: nn.Module, name: str, axis: int) -> list[tuple[Tensor, int]]:
        owner, leaf = _owner(model, name)
        return [(getattr(owner, leaf), axis)]

    def prune(self, model: nn.Module, name: str, axis: int, keep: Tensor) -> None:
        """Keep ``keep`` along ``axis`` of parameter ``name``."""
        owner, leaf = _owner(model, name)
        p = getattr(owner, leaf)
        idx = as_index(keep, p.shape[axis], f"parameter {name} axis {axis}")
        slice_param(owner, leaf, axis, idx)

    def resize(self, model: nn.Module, name: str, shape: tuple[int, ...]) -> None:
        owner, leaf = _owner(model, name)
        resize_param(owner, leaf, tuple(shape))


PARAMETERS = ParameterHandler()
EMBEDDING_HANDLER = EmbeddingHandler()
register_handler(nn.Embedding, EMBEDDING_HANDLER)
register_handler(nn.EmbeddingBag, EMBEDDING_HANDLER)
