"""Calling a model on a batch: the one home of the call helpers every layer uses."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def call_model(model: nn.Module, batch: Any) -> Any:
    """Run ``model`` on a batch: tuple/list -> positional args, dict -> kwargs, else one arg."""
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


@contextmanager
def no_kv_cache(model: nn.Module) -> Iterator[None]:
    """Run forwards of ``model`` without a key/value cache, then restore its configuration.

    Hugging Face models read ``use_cache`` from their config when the call does not name it
    (``config.use_cache`` is True by default for decoders), and then build a cache during every
    forward. prunekit's forwards (calibration, equivalence checks, perplexity windows) never
    generate: a cache there only costs memory and, where one call's cache reaches another
    module or call, mixes tensors of different widths. Every distinct ``config`` of the model
    and its submodules that has a ``use_cache`` attribute is set to False for the duration;
    models without one (plain modules) are left alone.
    """
    configs = {id(c): c for m in model.modules()
               if hasattr(c := getattr(m, "config", None), "use_cache")}
    saved = [(c, c.use_cache) for c in configs.values()]
    try:
        for c, _ in saved:
            c.use_cache = False
        yield
    finally:
        for c, value in saved:
            c.use_cache = value


# The names transformers has given the KV cache argument of models and attention modules:
# 4.x ``past_key_value``/``layer_past``, 5.x ``past_key_values`` and ``cache``.
KV_CACHE_ARGS = ("past_key_values", "past_key_value", "layer_past", "cache")


def is_kv_cache(name: str, value: Any) -> bool:
    """A KV cache argument, by its name or by its type (any ``*Cache`` object)."""
    return name in KV_CACHE_ARGS or type(value).__name__.endswith("Cache")


def cache_off_kwargs(model: nn.Module) -> dict[str, Any]:
    """``{"use_cache": False}`` when ``model.forward`` names a ``use_cache`` parameter, else ``{}``."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"use_cache": False} if "use_cache" in params else {}


def hooked_forward(model: nn.Module, inputs: Any, handles: list) -> Any:
    """One ``torch.no_grad`` forward in eval mode; then remove ``handles`` (hooks the caller
    registered to observe this pass) and restore the training mode, even on error."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), no_kv_cache(model):
            return call_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
