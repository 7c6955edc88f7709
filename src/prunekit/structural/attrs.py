"""Model-level size attributes that no single layer handler owns.

Some models keep a channel count as a plain Python attribute of a *container* module and use it
at forward time (torchvision's ``VisionTransformer._process_input`` reshapes to
``self.hidden_dim``). After the handlers have sliced the layers, :func:`sync_model_attributes`
recomputes such attributes from the (already pruned) layers. Entries are keyed by the class's
``module.qualname``; users register their own with :func:`register_attribute_sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from prunekit._registry import Registry
from prunekit.structural.hf_config import sync_hf_config

AttrFn = Callable[[nn.Module], dict[str, Any]]
ATTRIBUTE_SYNC: Registry[AttrFn] = Registry("attribute sync")


def _key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_attribute_sync(cls: type, fn: AttrFn) -> None:
    """Register ``fn(module) -> {attribute: new value}`` for modules of class ``cls``."""
    ATTRIBUTE_SYNC.register(_key(cls), fn)


def sync_model_attributes(model: nn.Module) -> list[tuple[Any, str, Any]]:
    """Apply every registered sync to ``model``'s modules (and a Hugging Face model's config
    when one config reproduces every layer); returns an undo list."""
    undo: list[tuple[nn.Module, str, Any]] = []
    for m in model.modules():
        key = _key(type(m))
        if key not in ATTRIBUTE_SYNC:
            continue
        for attr, value in ATTRIBUTE_SYNC.get(key)(m).items():
            if getattr(m, attr, None) != value:
                undo.append((m, attr, getattr(m, attr, None)))
                setattr(m, attr, value)
    if hasattr(model, "config") and hasattr(type(model), "_from_config"):
        sync_hf_config(model, undo)  # HF config follows when one config fits every layer
    return undo


def undo_attributes(undo: list[tuple[nn.Module, str, Any]]) -> None:
    for m, attr, old in reversed(undo):
        setattr(m, attr, old)


ATTRIBUTE_SYNC.register(
    "torchvision.models.vision_transformer.VisionTransformer",
    lambda m: {"hidden_dim": m.conv_proj.out_channels} if hasattr(m, "conv_proj") else {})
