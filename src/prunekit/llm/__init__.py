"""One-shot pruning of Hugging Face transformers: calibration, Wanda/SparseGPT/magnitude, eval.

The layer kernels (one weight matrix + its calibration statistics -> pruned weights) live here;
:func:`prunekit.prune_llm` runs them over a whole model.
"""

from prunekit.llm.magnitude import magnitude_prune
from prunekit.llm.sparsegpt import sparsegpt_prune, sparsegpt_weights
from prunekit.llm.wanda import wanda_prune

__all__ = ["magnitude_prune", "sparsegpt_prune", "sparsegpt_weights", "wanda_prune"]
