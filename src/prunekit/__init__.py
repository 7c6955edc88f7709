"""prunekit: prune PyTorch models and measure what pruning really does to inference speed.

The public names follow the pipeline: describe the pruning (configs and targets), prune weights
(masks) or structure (plan -> apply -> verify), recover accuracy, one-shot LLM pruning, measure
and report, and save/load the pruned model. File-level I/O lives in :mod:`prunekit.io`, LLM
layer kernels in :mod:`prunekit.llm`.
"""

import importlib
import importlib.util

# name -> the module that defines it, grouped by pipeline stage; imported on first use, so
# `import prunekit` (and every CLI start) stays light
_NAMES = {
    # configs and targets
    "Scope": "prunekit.config", "TargetSpec": "prunekit.config",
    "WeightPruneConfig": "prunekit.config",
    # weight masks (unstructured, N:M)
    "WeightPruneReport": "prunekit.weights", "prune_weights": "prunekit.weights",
    "export_torch_prune": "prunekit.masks", "finalize": "prunekit.masks",
    "import_torch_prune": "prunekit.masks", "register_layout": "prunekit.masks",
    # structure: trace -> score -> plan -> apply -> verify
    "DependencyGraph": "prunekit.graph",
    "GROUP_CRITERIA": "prunekit.importance.structured",
    "Handler": "prunekit.handlers", "InternalGroup": "prunekit.handlers", "PruneError": "prunekit.handlers",
    "register_handler": "prunekit.handlers",
    "StructuredPlan": "prunekit.structural", "VerifyResult": "prunekit.structural",
    "plan_structured": "prunekit.structural", "verify": "prunekit.structural",
    "register_attribute_sync": "prunekit.structural.attrs",
    "HybridReport": "prunekit.structural.hybrid", "prune_hybrid": "prunekit.structural.hybrid",
    "LayerDropReport": "prunekit.structural.layers", "drop_layers": "prunekit.structural.layers",
    # recovery: recipes, schedules, fine-tuning, distillation
    "Cubic": "prunekit.recover.recipe", "DataSpec": "prunekit.recover.recipe",
    "Distill": "prunekit.recover.recipe", "Finetune": "prunekit.recover.recipe",
    "Iterative": "prunekit.recover.recipe", "OneShot": "prunekit.recover.recipe",
    "Recipe": "prunekit.recover.recipe",
    "RunResult": "prunekit.recover.run", "run_recipe": "prunekit.recover.run",
    "finetune": "prunekit.recover.loop",
    "distill_loss": "prunekit.recover.distill", "kd_loss": "prunekit.recover.distill",
    "SensitivityResult": "prunekit.recover.sensitivity",
    "sensitivity": "prunekit.recover.sensitivity",
    "load_recipe": "prunekit.recover.yaml_recipe",
    "ScheduledPruner": "prunekit.recover.callbacks",
    # one-shot LLM pruning
    "calibration_samples": "prunekit.llm.calib",
    "embedding_fidelity": "prunekit.llm.eval", "perplexity": "prunekit.llm.eval",
    "sentence_embeddings": "prunekit.llm.eval",
    "OneShotConfig": "prunekit.llm.oneshot", "OneShotReport": "prunekit.llm.oneshot",
    "prune_llm": "prunekit.llm.oneshot",
    # measure and report
    "ModelStats": "prunekit.stats", "stats": "prunekit.stats",
    "BenchConfig": "prunekit.bench", "analyze": "prunekit.bench",
    "choose_sparse_backends": "prunekit.bench", "compare": "prunekit.bench",
    "fold_batchnorm": "prunekit.bench", "prune_for_latency": "prunekit.bench",
    "LatencyStats": "prunekit.bench.timer", "compare_latency": "prunekit.bench.timer",
    "measure_latency": "prunekit.bench.timer",
    "write_report": "prunekit.report",
    # save and load pruned models
    "load": "prunekit.serialize", "save": "prunekit.serialize",
}

from prunekit._version import __version__  # noqa: E402  (after the lazy table it documents)

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


def _load_all() -> None:
    """Import every public name at once (the first use of any of them), as an eager import
    would: modules that register handlers, runtimes or saved-model formats are all loaded."""
    for name, module in _NAMES.items():
        globals()[name] = getattr(importlib.import_module(module), name)


def __getattr__(name: str):
    if name in _NAMES:
        _load_all()
        return globals()[name]
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
    if importlib.util.find_spec(f"prunekit.{name}") is not None:  # a subpackage: pk.masks
        _load_all()
        return importlib.import_module(f"prunekit.{name}")
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
