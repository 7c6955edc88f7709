"""Small real tasks and models that ship offline (for recipes, tests and benchmarks).

* ``digits``: scikit-learn's ``load_digits()`` — 1,797 real 8x8 handwritten digits, inputs
  ``(1, 8, 8)`` scaled to [0, 1], the seeded, stratified 80/20 split of
  :func:`prunekit.datasets.digits_split` (1,437 / 360), the same split as the demo's.
* ``mnist1d``: Greydanus' MNIST-1D generated offline with ``make_dataset(get_dataset_args())``
  (the standard 4,000 / 1,000 split), inputs ``(1, 40)`` standardised.

Models: :func:`~prunekit.datasets.small_cnn` (3 conv + BN, widths 64/128/128 by default, 1-D or
2-D) and :func:`~prunekit.datasets.mlp`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from prunekit.datasets import BUILTIN_MODELS, digits_split, mlp, small_cnn  # noqa: F401
from prunekit.io import load_model_spec

TASKS = ("digits", "mnist1d")


@lru_cache(maxsize=2)
def _mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())  # generated locally; never the download helper
    return (d["x"].astype(np.float32), d["y"].astype(np.int64),
            d["x_test"].astype(np.float32), d["y_test"].astype(np.int64))


def load_task(name: str, limit: int | None = None) -> tuple[TensorDataset, TensorDataset]:
    """``(train, val)`` TensorDatasets of a built-in task (``limit``: first N of each split)."""
    if name == "digits":
        (xt, yt), (xv, yv) = (d.tensors for d in digits_split(0))  # (N, 1, 8, 8)
    elif name == "mnist1d":
        xt, yt, xv, yv = _mnist1d()
        mu, sd = xt.mean(), xt.std()
        xt, xv = ((xt - mu) / sd)[:, None], ((xv - mu) / sd)[:, None]  # (N, 1, 40)
    else:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    if limit is not None:
        xt, yt, xv, yv = xt[:limit], yt[:limit], xv[:limit], yv[:limit]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return TensorDataset(t(xt), t(yt)), TensorDataset(t(xv), t(yv))


def build_model(spec: str) -> nn.Module:
    """``prunekit:cnn2d|cnn1d|mlp`` or any :func:`prunekit.io.load_model_spec` spec
    (``module:pkg.mod:factory``, ``torchvision:name``, ``timm:name``, ``hf:dir``; random weights)."""
    try:
        return load_model_spec(spec)
    except (ValueError, ImportError) as e:
        raise ValueError(f"model: {e}") from e


__all__ = ["BUILTIN_MODELS", "TASKS", "build_model", "load_task", "mlp", "small_cnn"]
