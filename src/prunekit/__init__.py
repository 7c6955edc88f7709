"""prunekit: prune PyTorch models and measure what pruning really does to inference speed.

The public names follow the pipeline: describe the pruning (configs and targets), prune weights
(masks) or structure (plan -> apply -> verify), recover accuracy, one-shot LLM pruning, measure
and report, and save/load the pruned model. File-level I/O lives in :mod:`prunekit.io`, LLM
layer kernels in :mod:`prunekit.llm`.
"""

# configs and targets
from prunekit.config import Scope, TargetSpec, WeightPruneConfig
# weight masks (unstructured, N:M)
from prunekit.weights import WeightPruneReport, prune_weights
from prunekit.masks import export_torch_prune, finalize, import_torch_prune, register_layout
# structure: trace -> score -> plan -> apply -> verify
from prunekit.graph import DependencyGraph
from prunekit.importance.structured import GROUP_CRITERIA
from prunekit.handlers import Handler, InternalGroup, PruneError, register_handler
from prunekit.structural import StructuredPlan, VerifyResult, plan_structured, verify
from prunekit.structural.attrs import register_attribute_sync
from prunekit.structural.hybrid import HybridReport, prune_hybrid
from prunekit.structural.layers import LayerDropReport, drop_layers
# recovery: recipes, schedules, fine-tuning, distillation
from prunekit.recover.recipe import Cubic, DataSpec, Distill, Finetune, Iterative, OneShot, Recipe
from prunekit.recover.run import RunResult, run_recipe
from prunekit.recover.loop import finetune
from prunekit.recover.distill import distill_loss, kd_loss
from prunekit.recover.sensitivity import SensitivityResult, sensitivity
from prunekit.recover.yaml_recipe import load_recipe
from prunekit.recover.callbacks import ScheduledPruner
# one-shot LLM pruning
from prunekit.llm.calib import calibration_samples
from prunekit.llm.eval import embedding_fidelity, perplexity, sentence_embeddings
from prunekit.llm.oneshot import OneShotConfig, OneShotReport, prune_llm
# measure and report
from prunekit.stats import ModelStats, stats
from prunekit.bench import (
    BenchConfig, analyze, choose_sparse_backends, compare, fold_batchnorm, prune_for_latency,
)
from prunekit.bench.timer import LatencyStats, compare_latency, measure_latency
from prunekit.report import write_report
# save and load pruned models
from prunekit.serialize import load, save
from prunekit._version import __version__

__all__ = [
    # configs and targets
    "Scope", "TargetSpec", "WeightPruneConfig",
    # weight masks
    "WeightPruneReport", "prune_weights", "export_torch_prune", "finalize", "import_torch_prune",
    "register_layout",
    # structure
    "DependencyGraph", "GROUP_CRITERIA", "Handler", "InternalGroup", "PruneError",
    "register_handler", "StructuredPlan", "VerifyResult", "plan_structured", "verify",
    "register_attribute_sync", "HybridReport", "prune_hybrid", "LayerDropReport", "drop_layers",
    # recovery
    "Cubic", "DataSpec", "Distill", "Finetune", "Iterative", "OneShot", "Recipe", "RunResult",
    "run_recipe", "finetune", "distill_loss", "kd_loss", "SensitivityResult", "sensitivity",
    "load_recipe", "ScheduledPruner",
    # one-shot LLM pruning
    "calibration_samples", "embedding_fidelity", "perplexity", "sentence_embeddings",
    "OneShotConfig", "OneShotReport", "prune_llm",
    # measure and report
    "ModelStats", "stats", "BenchConfig", "analyze", "choose_sparse_backends", "compare",
    "fold_batchnorm", "prune_for_latency", "LatencyStats", "compare_latency", "measure_latency",
    "write_report",
    # save and load
    "load", "save",
    "__version__",
]

# Old spellings, kept for one release: name -> (module, attribute, what to use instead).
_DEPRECATED = {
    "Target": ("prunekit.config", "TargetSpec", "prunekit.TargetSpec"),
    "run": ("prunekit.recover.run", "run_recipe", "prunekit.run_recipe"),
    "benchmark": ("prunekit.bench.harness", "bench", "prunekit.bench.bench (one model) or prunekit.compare"),
    "wanda_prune": ("prunekit.llm.wanda", "wanda_prune", "prunekit.llm.wanda_prune"),
    "sparsegpt_prune": ("prunekit.llm.sparsegpt", "sparsegpt_prune", "prunekit.llm.sparsegpt_prune"),
    "sparsegpt_weights": ("prunekit.llm.sparsegpt", "sparsegpt_weights",
                          "prunekit.llm.sparsegpt_weights"),
    "magnitude_prune": ("prunekit.llm.magnitude", "magnitude_prune", "prunekit.llm.magnitude_prune"),
    "load_model": ("prunekit.io", "load_model", "prunekit.io.load_model"),
    "load_model_spec": ("prunekit.io", "load_model_spec", "prunekit.io.load_model_spec"),
    "load_weights": ("prunekit.io", "load_weights", "prunekit.io.load_weights"),
    "save_weights": ("prunekit.io", "save_weights", "prunekit.io.save_weights"),
    "HandlerBase": ("prunekit.handlers.base", "_HandlerBase", "prunekit.Handler"),
}

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
    if name in _DEPRECATED:
        import warnings

        module, attr, instead = _DEPRECATED[name]
        warnings.warn(f"prunekit.{name} is deprecated and will be removed in the next release; "
                      f"use {instead}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")
