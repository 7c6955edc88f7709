"""Reshape a freshly built (unpruned) model so that a pruned state_dict fits it.

Used by :func:`prunekit.load`. The model is walked top-down; a module with a registered handler
receives every mismatched tensor below it (``handler.resize(module, {relative_name: shape})``) and
fixes its own attributes (attention modules own their projections). Modules without a handler
get fresh tensors of the saved shapes and their size attributes are derived from the weights
(Linear, ConvNd, norms, PReLU, HF Conv1D, ...). Values are filled in by ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from prunekit.handlers._slicing import resize_param
from prunekit.handlers import get_handler  # registers the built-in handlers
from prunekit.structural.attrs import sync_model_attributes

_GENERIC = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase, nn.GroupNorm,
            nn.LayerNorm, nn.PReLU)


def handler_for(m: nn.Module) -> Any | None:
    """The handler whose ``resize`` owns ``m``; ``None`` for layers resized generically here."""

    if isinstance(m, _GENERIC) or (type(m).__name__ == "Conv1D" and hasattr(m, "nf")):
        return None
    return get_handler(m)


def _conv_attrs(m: nn.modules.conv._ConvNd) -> None:
    w = m.weight.shape
    old_in, old_out, g = m.in_channels, m.out_channels, m.groups
    if m.transposed:  # (in, out/groups, *k)
        m.in_channels = w[0]
        if g > 1 and g == old_in:
            m.groups = w[0]
        m.out_channels = w[1] * m.groups
        return
    m.out_channels = w[0]  # (out, in/groups, *k)
    if g > 1 and g == old_in:  # depthwise (channel multiplier old_out // old_in)
        m.groups = m.in_channels = w[0] * old_in // old_out
    else:
        m.in_channels = w[1] * g


def fix_attributes(m: nn.Module) -> None:
    """Derive size attributes of common layers from their (resized) tensors."""
    if isinstance(m, nn.modules.conv._ConvNd):
        _conv_attrs(m)
    elif isinstance(m, nn.Linear):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        ref = m.weight if m.weight is not None else m.running_mean
        if ref is not None:
            m.num_features = ref.shape[0]
    elif isinstance(m, nn.GroupNorm) and m.weight is not None:  # whole groups were removed
        per = m.num_channels // m.num_groups
        m.num_channels = m.weight.shape[0]
        m.num_groups = max(m.num_channels // per, 1)
    elif isinstance(m, (nn.LayerNorm, getattr(nn, "RMSNorm", nn.LayerNorm))) \
            and getattr(m, "weight", None) is not None:
        m.normalized_shape = tuple(m.weight.shape)
    elif isinstance(m, nn.PReLU):
        m.num_parameters = m.weight.shape[0]
    elif type(m).__name__ == "Conv1D" and hasattr(m, "nf"):
        m.nx, m.nf = m.weight.shape


def _walk(m: nn.Module, prefix: str, diff: dict[str, tuple[int, ...]]) -> None:
    below = {k[len(prefix):]: s for k, s in diff.items() if k.startswith(prefix)}
    if not below:
        return
    h = handler_for(m)
    if h is not None and hasattr(h, "resize"):
        h.resize(m, below)
        return
    direct = {k: s for k, s in below.items() if "." not in k}
    for name, shape in direct.items():
        resize_param(m, name, shape)
    if direct:
        fix_attributes(m)
    for name, child in m.named_children():
        _walk(child, f"{prefix}{name}.", diff)


def resize_to_state_dict(model: nn.Module, sd: dict[str, Tensor]) -> list[str]:
    """Resize ``model`` in place so every tensor of ``sd`` has a slot of the same shape.

    Returns:
        The names of the tensors whose shape changed.
    """
    own = model.state_dict()
    diff = {k: tuple(v.shape) for k, v in sd.items()
            if k in own and tuple(own[k].shape) != tuple(v.shape)}
    if diff:
        _walk(model, "", diff)
        sync_model_attributes(model)
    return sorted(diff)
