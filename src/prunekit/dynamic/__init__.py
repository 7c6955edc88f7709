"""Dynamic (input-dependent) pruning: activation sparsity, token merging, early exit.

* :func:`sparsify_activations` — TEAL-style per-layer input thresholds with a batch-1 kernel
  chosen by measurement (:mod:`prunekit.dynamic.activation`, :mod:`prunekit.dynamic.kernels`).
* :func:`merge_tokens` — ToMe token merging in ViT and BERT-style encoder blocks
  (:mod:`prunekit.dynamic.tome`).
* :func:`early_exit` — exit heads at named modules; a certain input stops there
  (:mod:`prunekit.dynamic.early_exit`, :mod:`prunekit.dynamic.exit_train`).
"""

from prunekit.dynamic import analyze_methods  # noqa: F401 - registers the analyze methods
from prunekit.dynamic.activation import (
    detach as remove_activation_sparsity,
    disabled,
    layer_states,
    sparsify_activations,
)
from prunekit.dynamic.early_exit import EarlyExitConfig, EarlyExitModel
from prunekit.dynamic.exit_train import ExitPoint, early_exit, exit_curve
from prunekit.dynamic.tome import (
    mean_pool, merge_tokens, token_sizes, tokens_kept, unmerge_tokens,
)
from prunekit.dynamic.config import KERNELS, ActivationSparsityConfig
from prunekit.dynamic.report import ActivationSparsityReport, LayerRow

__all__ = [
    "KERNELS", "ActivationSparsityConfig", "ActivationSparsityReport", "LayerRow",
    "EarlyExitConfig", "EarlyExitModel", "ExitPoint", "early_exit", "exit_curve",
    "mean_pool", "merge_tokens", "token_sizes", "tokens_kept", "unmerge_tokens",
    "disabled", "layer_states", "remove_activation_sparsity", "sparsify_activations",
]
