"""SparseGPT: one-shot pruning with approximate layer-wise OBS reconstruction.

Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
ICML 2023. For a linear layer with weight ``W`` ``(out, in)`` and calibration inputs ``X``, the
layer-wise Hessian of ``‖WX − ŴX‖²`` is ``H = 2XXᵀ`` (shared by all rows). Columns are visited
left to right; when column ``i`` is fixed (pruned weights set to zero) the error is spread over
the not-yet-fixed columns with the OBS update ``δ = −(w_i − q_i)/[H_F⁻¹]_ii · [H_F⁻¹]_{i,F}``,
where ``F`` are columns ``i..in-1``. All the ``[H_F⁻¹]`` rows needed are the rows of the upper
Cholesky factor of ``H⁻¹`` (Alg. 1), scaled by their diagonal. Updates are applied lazily in
blocks of ``blocksize`` columns; the mask is chosen adaptively per block from
``w² / [H_F⁻¹]_ii²`` (unstructured) or per group of ``m`` columns (N:M).
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunekit.llm.collect import InputStats
from prunekit.config import LayerTarget
from prunekit.llm.registry import register_llm_method
from prunekit.masks.select import nm_mask, unstructured_mask


def inverse_hessian_factor(h: Tensor, percdamp: float) -> Tensor:
    """Upper Cholesky factor ``U`` of ``(H + λI)⁻¹`` with ``λ = percdamp · mean(diag H)``.

    Raises:
        ValueError: when the dampened Hessian is not positive definite.
    """
    h = h.clone()
    damp = percdamp * torch.mean(torch.diag(h))
    h.diagonal().add_(damp)
    lower, info = torch.linalg.cholesky_ex(h)
    if int(info) != 0:
        raise ValueError(
            f"SparseGPT: dampened Hessian is not positive definite (percdamp={percdamp}); "
            "use more calibration samples or a larger percdamp"
        )
    hinv = torch.cholesky_inverse(lower)
    return torch.linalg.cholesky(hinv, upper=True)


def _block_prune_mask(w1: Tensor, d2: Tensor, target: LayerTarget) -> Tensor:
    """Adaptive prune-mask (True = prune) of one column block from ``w² / d²``."""
    return ~unstructured_mask(w1.pow(2) / d2.unsqueeze(0), target.sparsity)


def sparsegpt_weights(w: Tensor, hessian: Tensor, target: LayerTarget) -> Tensor:
    """Pruned and OBS-updated copy of ``w`` ``(out, in)`` given ``H = 2XXᵀ/n`` ``(in, in)``."""
    cols = w.shape[1]
    if target.nm is not None and target.blocksize % target.nm[1]:
        raise ValueError(f"blocksize {target.blocksize} must be a multiple of M={target.nm[1]}")
    dtype = torch.float64 if w.dtype == torch.float64 else torch.float32
    w = w.detach().clone().to(dtype)
    h = hessian.detach().to(device=w.device, dtype=dtype).clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    u = inverse_hessian_factor(h, target.percdamp)  # (in, in) upper
    for i1 in range(0, cols, target.blocksize):
        i2 = min(i1 + target.blocksize, cols)
        w1 = w[:, i1:i2].clone()  # (out, B)
        u1 = u[i1:i2, i1:i2]
        d = torch.diag(u1)
        err1 = torch.zeros_like(w1)
        prune = None if target.nm is not None else _block_prune_mask(w1, d.pow(2), target)
        if target.nm is not None:
            prune = torch.zeros_like(w1, dtype=torch.bool)
        for i in range(i2 - i1):
            if target.nm is not None and i % target.nm[1] == 0:
                n, m = target.nm
                g = w1[:, i : i + m].pow(2) / d[i : i + m].pow(2).unsqueeze(0)
                prune[:, i : i + m] = ~nm_mask(g, n, m)
            col = w1[:, i]
            q = torch.where(prune[:, i], torch.zeros_like(col), col)
            e = (col - q) / d[i]
            w1[:, i:] -= e.unsqueeze(1) * u1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = e
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return w


@register_llm_method("sparsegpt", needs="hessian")
def sparsegpt_prune(w: Tensor, stats: InputStats, target: LayerTarget) -> Tensor:
    """SparseGPT for one ``(out, in)`` weight; returns the new weight in ``w``'s dtype."""
    if stats.hessian is None:
        raise ValueError("sparsegpt needs the input Hessian (no calibration tokens reached the layer)")
    return sparsegpt_weights(w, stats.hessian, target).to(w.dtype)
