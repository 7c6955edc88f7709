"""prunekit: prune PyTorch models and measure what pruning really does to inference speed."""

from prunekit.config import Scope, TargetSpec, WeightPruneConfig
from prunekit.masks import (
    export_torch_prune,
    finalize,
    import_torch_prune,
    register_layout,
)
from prunekit.weights import WeightPruneReport, prune_weights
from prunekit.io import load_model, load_model_spec, load_weights, save_weights
from prunekit.stats import ModelStats, stats
from prunekit.bench.timer import LatencyStats, compare_latency, measure_latency
from prunekit.graph import DependencyGraph
from prunekit.handlers import Handler, HandlerBase, InternalGroup, PruneError, register_handler
from prunekit.importance.structured import GROUP_CRITERIA
from prunekit.structural import StructuredPlan, VerifyResult, plan_structured, verify
from prunekit.serialize import load, save
from prunekit.structural.attrs import register_attribute_sync
from prunekit.structural.hybrid import HybridReport, prune_hybrid
from prunekit.structural.layers import LayerDropReport, drop_layers

# bench / analysis (issue 5); `benchmark` because `prunekit.bench` is the subpackage
from prunekit.bench import (
    BenchConfig, analyze, choose_sparse_backends, compare, fold_batchnorm, prune_for_latency,
)
from prunekit.bench import bench as benchmark
from prunekit.report import write_report
from prunekit.recover.recipe import (
    Cubic, DataSpec, Distill, Finetune, Iterative, OneShot, Recipe, Target,
)
from prunekit.recover.run import RunResult, run
from prunekit.recover.finetune import finetune
from prunekit.recover.distill import distill_loss, kd_loss
from prunekit.recover.sensitivity import SensitivityResult, sensitivity
from prunekit.recover.yaml_recipe import load_recipe
from prunekit.recover.callbacks import ScheduledPruner
# llm (issue 6)
from prunekit.llm.calib import calibration_samples
from prunekit.llm.eval import embedding_fidelity, perplexity, sentence_embeddings
from prunekit.llm.oneshot import OneShotConfig, OneShotReport, prune_llm
from prunekit.methods.magnitude_llm import magnitude_prune
from prunekit.methods.sparsegpt import sparsegpt_prune, sparsegpt_weights
from prunekit.methods.wanda import wanda_prune

__version__ = "0.1.0"

# Areas beyond the core pipeline load on first use, so `import prunekit` stays light and an
# area's optional third-party extras are needed only by those who use it.
_LAZY_AREAS = ("dynamic", "compression", "recsys", "classic", "keras", "onnx")
_LAZY_NAMES = {
    # name -> module that defines it
    "share_weights": "prunekit.compression",
    "compress": "prunekit.compression",
    "decompress": "prunekit.compression",
    "quantize": "prunekit.compression",
    "deploy": "prunekit.bench",
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY_AREAS:
        return importlib.import_module(f"prunekit.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")

__all__ = [
    "Scope", "TargetSpec", "WeightPruneConfig",
    "export_torch_prune", "finalize", "import_torch_prune", "register_layout",
    "WeightPruneReport", "prune_weights",
    # --- io / stats (foundation) ---
    "load_model", "load_model_spec", "load_weights", "save_weights", "ModelStats", "stats",
    "LatencyStats", "compare_latency", "measure_latency",
    # --- structural (issue 3) ---
    "DependencyGraph", "GROUP_CRITERIA", "Handler", "HandlerBase", "InternalGroup", "PruneError",
    "StructuredPlan", "VerifyResult", "plan_structured", "register_handler", "verify",
    "HybridReport", "LayerDropReport", "drop_layers", "load", "prune_hybrid",
    "register_attribute_sync", "save",
    # --- bench / analysis (issue 5) ---
    "BenchConfig", "benchmark", "compare", "analyze", "fold_batchnorm", "write_report",
    "choose_sparse_backends", "prune_for_latency",
    # --- recovery (issue 4) ---
    "Cubic", "DataSpec", "Distill", "Finetune", "Iterative", "OneShot", "Recipe", "Target",
    "RunResult", "run", "finetune", "distill_loss", "kd_loss", "SensitivityResult", "sensitivity",
    "load_recipe", "ScheduledPruner",
    # --- llm (issue 6) ---
    "calibration_samples", "embedding_fidelity", "perplexity", "sentence_embeddings",
    "OneShotConfig", "OneShotReport", "prune_llm",
    "magnitude_prune", "sparsegpt_prune", "sparsegpt_weights", "wanda_prune",
]
