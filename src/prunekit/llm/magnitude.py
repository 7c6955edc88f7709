"""Layer-wise magnitude pruning, the one-shot baseline of the Wanda and SparseGPT papers.

Unstructured: the ``sparsity`` fraction of smallest ``|W|`` over the whole layer is zeroed
(as in Sun et al., ICLR 2024, Table 2 "Magnitude"). N:M: the ``n`` largest of each group of ``m``
consecutive input weights of a row are kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunekit.llm.collect import InputStats
from prunekit.config import LayerTarget
from prunekit.llm.registry import register_llm_method
from prunekit.masks.select import nm_mask, unstructured_mask


def magnitude_keep_mask(w: Tensor, target: LayerTarget) -> Tensor:
    """Keep-mask of layer-wise magnitude pruning for an ``(out, in)`` weight."""
    score = w.abs()
    if target.nm is not None:
        return nm_mask(score, *target.nm)
    return unstructured_mask(score, target.sparsity)


@register_llm_method("magnitude", needs="none")
def magnitude_prune(w: Tensor, stats: InputStats, target: LayerTarget) -> Tensor:
    """Zero the smallest-magnitude weights of ``w`` (``(out, in)``); calibration is unused."""
    del stats
    return torch.where(magnitude_keep_mask(w, target), w, torch.zeros_like(w))
