"""prunekit: prune PyTorch models and measure what pruning really does to inference speed."""

from prunekit.config import Scope, TargetSpec, WeightPruneConfig
from prunekit.masks import (
    export_torch_prune,
    finalize,
    import_torch_prune,
    register_layout,
)
from prunekit.weights import WeightPruneReport, prune_weights
from prunekit.graph import DependencyGraph
from prunekit.handlers import Handler, HandlerBase, InternalGroup, PruneError, register_handler
from prunekit.importance.structured import GROUP_CRITERIA
from prunekit.structural import StructuredPlan, VerifyResult, plan_structured, verify
from prunekit.serialize import load, save
from prunekit.structural.attrs import register_attribute_sync
from prunekit.structural.hybrid import HybridReport, prune_hybrid
from prunekit.structural.layers import LayerDropReport, drop_layers

__version__ = "0.1.0"

__all__ = [
    "Scope", "TargetSpec", "WeightPruneConfig",
    "export_torch_prune", "finalize", "import_torch_prune", "register_layout",
    "WeightPruneReport", "prune_weights",
    # --- io / stats (foundation) ---
    # --- structural (issue 3) ---
    "DependencyGraph", "GROUP_CRITERIA", "Handler", "HandlerBase", "InternalGroup", "PruneError",
    "StructuredPlan", "VerifyResult", "plan_structured", "register_handler", "verify",
    "HybridReport", "LayerDropReport", "drop_layers", "load", "prune_hybrid",
    "register_attribute_sync", "save",
    # --- bench / analysis (issue 5) ---
    # --- recovery (issue 4) ---
    # --- llm (issue 6) ---
]
