"""Calling a model on a batch: the one home of the call helpers every layer uses."""

from __future__ import annotations

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


def hooked_forward(model: nn.Module, inputs: Any, handles: list) -> Any:
    """One ``torch.no_grad`` forward in eval mode; then remove ``handles`` (hooks the caller
    registered to observe this pass) and restore the training mode, even on error."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return call_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
