"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter, ICLR 2024).

Score of weight ``W_ij`` is ``|W_ij| · ‖X_j‖₂`` where ``‖X_j‖₂`` is the L2 norm of input feature
``j`` over all calibration tokens (eq. 1). Weights are compared *per output row* (§3: "per output"
comparison group): each row loses the same fraction. For N:M, the ``n`` highest-scoring of every
``m`` consecutive inputs of a row are kept. No weight update.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunekit.llm.collect import InputStats
from prunekit.config import LayerTarget
from prunekit.llm.registry import register_llm_method
from prunekit.masks.select import n_to_prune, nm_mask


def row_keep_mask(scores: Tensor, sparsity: float) -> Tensor:
    """Prune the ``round(sparsity * in)`` lowest scores of every row (ties: lower index first)."""
    k = n_to_prune(scores.shape[1], sparsity)
    mask = torch.ones_like(scores, dtype=torch.bool)
    if k:
        order = torch.sort(scores, dim=1, stable=True).indices[:, :k]
        mask.scatter_(1, order, False)
    return mask


def wanda_scores(w: Tensor, act_norm_sq: Tensor) -> Tensor:
    """``|W| · ‖X_j‖₂`` for an ``(out, in)`` weight and per-input squared norms ``(in,)``."""
    dtype = torch.float64 if w.dtype == torch.float64 else torch.float32
    return w.abs().to(dtype) * act_norm_sq.to(device=w.device, dtype=dtype).sqrt().unsqueeze(0)


def wanda_keep_mask(w: Tensor, act_norm_sq: Tensor, target: LayerTarget) -> Tensor:
    scores = wanda_scores(w, act_norm_sq)
    if target.nm is not None:
        return nm_mask(scores, *target.nm)
    return row_keep_mask(scores, target.sparsity)


@register_llm_method("wanda", needs="act_norm")
def wanda_prune(w: Tensor, stats: InputStats, target: LayerTarget) -> Tensor:
    """Zero the lowest ``|W|·‖X‖`` weights of each output row of ``w`` (``(out, in)``)."""
    if stats.act_norm_sq is None:
        raise ValueError("wanda needs input activation norms (no calibration tokens reached the layer)")
    return torch.where(wanda_keep_mask(w, stats.act_norm_sq, target), w, torch.zeros_like(w))
