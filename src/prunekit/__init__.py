"""prunekit: prune PyTorch models and measure what pruning really does to inference speed."""

from prunekit.config import Scope, TargetSpec, WeightPruneConfig
from prunekit.masks import (
    export_torch_prune,
    finalize,
    import_torch_prune,
    register_layout,
)
from prunekit.weights import WeightPruneReport, prune_weights

# bench / analysis (issue 5)
from prunekit.bench import BenchConfig, bench, compare, fold_batchnorm, measure_latency

__version__ = "0.1.0"

__all__ = [
    "Scope", "TargetSpec", "WeightPruneConfig",
    "export_torch_prune", "finalize", "import_torch_prune", "register_layout",
    "WeightPruneReport", "prune_weights",
    # --- io / stats (foundation) ---
    # --- structural (issue 3) ---
    # --- bench / analysis (issue 5) ---
    "BenchConfig", "bench", "compare", "fold_batchnorm", "measure_latency",
    # --- recovery (issue 4) ---
    # --- llm (issue 6) ---
]
