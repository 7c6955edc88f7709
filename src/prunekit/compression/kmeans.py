"""One-dimensional k-means for weight sharing (pure: values in, codebook + assignment out).

Deep Compression (Han, Mao & Dally, "Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding", ICLR 2016, section 3) clusters the weights of
each layer with k-means and compares three centroid initialisations:

* ``linear``: ``k`` points evenly spaced between the smallest and the largest weight (the
  paper's best: it keeps centroids at the rare large weights);
* ``density``: evenly spaced on the y axis of the weights' CDF (quantiles);
* ``random``: ``k`` weights drawn at random (seeded).

In one dimension Lloyd's algorithm needs no distance matrix: on sorted values every cluster is a
contiguous run whose ends are the midpoints between neighbouring centroids, so one iteration is
``k`` binary searches plus a prefix-sum difference. A layer of millions of weights converges in
milliseconds and memory stays at a few copies of the layer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

INITS = ("linear", "density", "random")


def _initial(v: np.ndarray, k: int, init: str, seed: int) -> np.ndarray:
    """Initial centroids (float64, ascending) for sorted values ``v``."""
    if init == "linear":
        return np.linspace(v[0], v[-1], k)
    if init == "density":
        return np.quantile(v, (np.arange(k) + 0.5) / k)
    rng = np.random.default_rng(seed)
    return np.sort(v[rng.choice(v.size, size=k, replace=False)])


def _bounds(v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Start offsets of each centroid's run in sorted ``v`` (length k + 1)."""
    mids = (c[:-1] + c[1:]) / 2.0
    return np.concatenate(([0], np.searchsorted(v, mids, side="right"), [v.size]))


def kmeans_1d(values: Tensor, k: int, init: str = "linear", seed: int = 0,
              max_iter: int = 300) -> tuple[Tensor, Tensor]:
    """Cluster 1-D ``values`` into at most ``k`` centroids.

    Args:
        values: the kept weights of one layer (any shape; flattened).
        k: number of clusters (``>= 1``). With fewer values than ``k`` every value is its own
            centroid (the caller reports it).
        init: ``linear``, ``density`` or ``random`` (see the module docstring).
        seed: seed of the ``random`` initialisation.
        max_iter: Lloyd iterations at most (stops earlier once no assignment changes).

    Returns:
        ``(centroids, assignment)``: float32 centroids, ascending, of length ``min(k, n)``
        (``[0.0]`` when ``values`` is empty), and the int64 centroid index of every value in
        its original order.

    Raises:
        ValueError: ``k < 1`` or unknown ``init``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    flat = values.detach().reshape(-1).to("cpu", torch.float64).numpy()
    if flat.size == 0:
        return torch.zeros(1), torch.zeros(0, dtype=torch.int64)
    order = np.argsort(flat, kind="stable")
    v = flat[order]
    k = min(int(k), v.size)
    c = _initial(v, k, init, seed)
    csum = np.concatenate(([0.0], np.cumsum(v)))
    bounds = _bounds(v, c)
    for _ in range(max_iter):
        counts = np.diff(bounds)
        sums = csum[bounds[1:]] - csum[bounds[:-1]]
        filled = counts > 0
        c = np.sort(np.where(filled, sums / np.maximum(counts, 1), c))  # empty ones stay put
        new = _bounds(v, c)
        if np.array_equal(new, bounds):
            break
        bounds = new
    cents = c.astype(np.float32)
    # final assignment from the float32 centroids actually stored
    sorted_idx = np.repeat(np.arange(k), np.diff(_bounds(v, cents.astype(np.float64))))
    assign = np.empty(v.size, dtype=np.int64)
    assign[order] = sorted_idx
    return torch.from_numpy(cents), torch.from_numpy(assign)


__all__ = ["INITS", "kmeans_1d"]
