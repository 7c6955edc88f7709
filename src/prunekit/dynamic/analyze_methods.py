"""``analyze`` methods of the dynamic area: activation sparsity and token merging.

Registered in :data:`prunekit.bench.methods.EXTRA_METHODS` when :mod:`prunekit.dynamic` is
imported (the CLI always imports it). Each one changes the sweep's copy of the model and
returns what it measured, which the report prints beside the measured latency:

* ``dynamic``: :func:`~prunekit.dynamic.sparsify_activations` at ``ratio``; realised input
  sparsity on held-out calibration inputs and the kernels chosen.
* ``tome``: :func:`~prunekit.dynamic.merge_tokens` merging the fraction ``ratio`` of each
  block's tokens; tokens kept after the last block and per block, on the example input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.methods import EXTRA_METHODS
from prunekit.call import call_model
from prunekit.dynamic.activation import sparsify_activations
from prunekit.dynamic.config import ActivationSparsityConfig
from prunekit.dynamic.tome import merge_tokens, tokens_kept


def _inputs(example: Any, calib_data: Iterable[Any] | None) -> list[Any]:
    """Calibration inputs: ``calib_data`` (the input of ``(x, y)`` pairs), else the example
    twice (thresholds then fit and measured on the same input)."""
    if calib_data is None:
        return [example, example]
    items = [i[0] if isinstance(i, (tuple, list)) and len(i) == 2
             and isinstance(i[0], Tensor) else i for i in calib_data]
    return items if len(items) >= 2 else items * 2


def activation_method(model: nn.Module, example: Any, ratio: float, *,
                      calib_data: Iterable[Any] | None = None) -> dict[str, Any]:
    rep = sparsify_activations(model, _inputs(example, calib_data), ratio,
                               config=ActivationSparsityConfig(min_tokens=1, repeats=3))
    kernels = sorted({r.kernel for r in rep.layers})
    return {"realised sparsity": rep.mean_heldout, "layers": len(rep.layers),
            "batch-1 kernels": ", ".join(kernels)}


def tome_method(model: nn.Module, example: Any, ratio: float, *,
                calib_data: Iterable[Any] | None = None) -> dict[str, Any]:
    del calib_data  # training-free, data-free
    with torch.no_grad():
        merge_tokens(model, 0)
        call_model(model, example)
        n_in = tokens_kept(model)[0]
        merge_tokens(model, float(ratio))
        call_model(model, example)
    kept = tokens_kept(model)
    return {"tokens kept": kept[-1] / n_in, "mean tokens per block": sum(kept) / len(kept) / n_in}


EXTRA_METHODS.register("dynamic", activation_method)
EXTRA_METHODS.register("tome", tome_method)
