"""OWL: outlier-weighted layer-wise sparsity (Yin et al., "Outlier Weighed Layerwise Sparsity
(OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity", ICML 2024).

Blocks holding more *outlier* weights (Wanda score ``|W|·‖X‖`` above ``M ×`` the layer mean) get a
lower sparsity. Per-block sparsities span at most ``2λ`` and average to the target ``S``
(so the total pruned fraction stays ``S`` when blocks have equal size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from prunekit.llm.wanda import wanda_scores


def outlier_count(w: Tensor, act_norm_sq: Tensor, m: float) -> tuple[int, int]:
    """(number of weights with Wanda score > ``m`` × layer mean, number of weights)."""
    s = wanda_scores(w, act_norm_sq)
    return int((s > m * s.mean()).sum()), s.numel()


def owl_sparsities(outlier_ratios: Sequence[float], sparsity: float, lam: float) -> list[float]:
    """Per-block sparsities from per-block outlier ratios (OWL eq. in §4.2 of the paper).

    Ratios are min-max scaled to ``[0, 2λ]`` and shifted so the *kept* fractions average to
    ``1 − sparsity``; a block with more outliers keeps more weights.

    Raises:
        ValueError: when a resulting sparsity leaves [0, 1).
    """
    d = torch.tensor(list(outlier_ratios), dtype=torch.float64)
    span = float(d.max() - d.min()) if d.numel() else 0.0
    scaled = (d - d.min()) / span * (2 * lam) if span > 0 else torch.zeros_like(d)
    keep = scaled - scaled.mean() + (1.0 - sparsity)
    out = [float(1.0 - k) for k in keep]
    if any(not 0.0 <= s < 1.0 for s in out):
        raise ValueError(f"OWL lambda={lam} pushes a block sparsity outside [0, 1): {out}")
    return out
