"""Block-by-block one-shot pruning driver for Hugging Face transformers (LLMs and encoders).

The driver follows the procedure shared by SparseGPT (Frantar & Alistarh, ICML 2023, §4 and
App. A) and Wanda (Sun et al., ICLR 2024, §3): capture what enters the first block for every
calibration sample, then for each block in order

1. move the block to the target device (the rest of the model stays where it is, e.g. CPU),
2. run the samples through it with hook collectors on its linear layers,
3. prune every linear layer from those statistics (the kernels in :mod:`prunekit.llm.wanda`, :mod:`~prunekit.llm.sparsegpt`, :mod:`~prunekit.llm.magnitude`),
4. run the samples through the *pruned* block: these outputs are the next block's inputs,
5. move the block back.

Weights end as ordinary dense tensors holding zeros (nothing to finalize).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import prunekit.llm.magnitude  # noqa: F401  (registers "magnitude")
import prunekit.llm.sparsegpt  # noqa: F401  (registers "sparsegpt")
import prunekit.llm.wanda  # noqa: F401  (registers "wanda")
from prunekit.config import LayerTarget
from prunekit.llm.blocks import (
    BlockInputs,
    capture_block_inputs,
    find_blocks,
    prunable_linears,
    run_block,
    set_weight_rows,
    weight_rows,
)
from prunekit.llm.collect import InputCollector
from prunekit.llm.owl import outlier_count, owl_sparsities
from prunekit.llm.registry import LLM_METHODS, LayerMethod


@dataclass(frozen=True)
class OneShotConfig:
    """What :func:`prune_llm` does.

    Attributes:
        method: registered method (``magnitude``, ``wanda``, ``sparsegpt``).
        sparsity: fraction of each linear layer's weights zeroed (unstructured).
        pattern: ``None``/``"unstructured"`` or N:M such as ``"2:4"``/``(2, 4)``.
        blocksize: SparseGPT lazy-update block (columns).
        percdamp: SparseGPT dampening (fraction of mean Hessian diagonal).
        owl: non-uniform per-block sparsity by outlier ratio (unstructured only).
        owl_lambda: OWL spread ``λ`` (block sparsities span at most ``2λ`` around ``S``).
        owl_m: OWL outlier threshold ``M`` (score > M × layer mean).
        device: where each block is processed (``None``: CUDA when available, else CPU).
        backup: keep a CPU copy of the original weights and restore it if pruning fails midway.
    """

    method: str = "wanda"
    sparsity: float = 0.5
    pattern: tuple[int, int] | str | None = None
    blocksize: int = 128
    percdamp: float = 0.01
    owl: bool = False
    owl_lambda: float = 0.08
    owl_m: float = 5.0
    device: str | None = None
    backup: bool = True

    def __post_init__(self) -> None:
        LLM_METHODS.get(self.method)  # ValueError names the known methods
        layer = LayerTarget(self.sparsity, self.pattern, self.blocksize, self.percdamp)  # validates
        object.__setattr__(self, "pattern", layer.nm)
        if self.owl and self.pattern is not None:
            raise ValueError("owl (non-uniform sparsity) applies to unstructured sparsity, not N:M")
        if not 0.0 <= float(self.owl_lambda) < 0.5:
            raise ValueError(f"owl_lambda must be in [0, 0.5), got {self.owl_lambda!r}")


@dataclass
class OneShotReport:
    """What :func:`prune_llm` did: per-layer achieved sparsity, per-block time."""

    method: str
    blocks_path: str
    block_sparsity: list[float] = field(default_factory=list)
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    block_seconds: list[float] = field(default_factory=list)
    block_outlier_ratio: list[float] = field(default_factory=list)  # OWL only
    layer_reasons: dict[str, str] = field(default_factory=dict)  # why each layer's sparsity

    @property
    def overall_sparsity(self) -> float:
        return sum(self.layer_sparsity.values()) / max(len(self.layer_sparsity), 1)

    def to_dict(self) -> dict:
        return {"method": self.method, "blocks": self.blocks_path,
                "overall_sparsity": self.overall_sparsity,
                "block_sparsity": self.block_sparsity,
                "block_outlier_ratio": self.block_outlier_ratio or None,
                "layers": [{"name": n, "sparsity": s, "reason": self.layer_reasons.get(n, "")}
                           for n, s in self.layer_sparsity.items()]}


def block_reason(cfg: OneShotConfig, sparsity: float, outlier_ratio: float | None) -> str:
    """Why every layer of a block got its sparsity (the report's ``reason``)."""
    if cfg.pattern is not None:
        n, m = cfg.pattern
        return f"{cfg.method}: {n}:{m} pattern in every layer ({m - n} of every {m} removed)"
    if outlier_ratio is None:
        return f"{cfg.method}: uniform {sparsity:.2%} of each layer's weights, lowest scores first"
    return (f"{cfg.method}: OWL block sparsity {sparsity:.2%} (mean {cfg.sparsity:.2%}) from the "
            f"block's outlier ratio {outlier_ratio:.4f} (scores > {cfg.owl_m:g}x the layer mean), "
            f"spread +-{cfg.owl_lambda:g}: more outliers keep more weights")


def _device(cfg: OneShotConfig) -> torch.device:
    if cfg.device is not None:
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_plan(path: str, blocks: nn.ModuleList, cfg: OneShotConfig) -> list[dict[str, nn.Module]]:
    """Prunable layers per block; every N:M incompatibility is reported before any change."""
    plan = [prunable_linears(b) for b in blocks]
    if not any(plan):
        raise ValueError(f"no linear layers found inside the blocks at {path}")
    if cfg.pattern is not None:
        n, m = cfg.pattern
        bad = [
            f"{path}.{i}.{name} (in_features={weight_rows(mod).shape[1]})"
            for i, layers in enumerate(plan)
            for name, mod in layers.items()
            if weight_rows(mod).shape[1] % m
        ]
        if bad:
            raise ValueError(f"pattern {n}:{m} does not divide the input size of: {', '.join(bad)}")
    return plan


def _collect(block: nn.Module, layers: dict[str, nn.Module], inputs: BlockInputs, need: str):
    with InputCollector(layers, need) as col:
        if need != "none":
            run_block(block, inputs)
    return col.stats


def _prune_block(layers, stats, method: LayerMethod, target: LayerTarget) -> dict[str, float]:
    """Compute every new weight of the block first, then write them all."""
    new = {n: method.prune(weight_rows(m), stats[n], target) for n, m in layers.items()}
    for n, m in layers.items():
        set_weight_rows(m, new[n])
    return {n: float((w == 0).float().mean()) for n, w in new.items()}


@torch.no_grad()
def _owl_block_sparsities(model, blocks, plan, samples, cfg, device):
    """One dense pass over the blocks measuring each block's outlier ratio (OWL); returns
    ``(outlier ratios, block sparsities)``."""
    inputs = capture_block_inputs(model, blocks, samples, device)
    ratios = []
    for block, layers in zip(blocks, plan, strict=True):
        home = next(block.parameters()).device
        block.to(device)
        stats = _collect(block, layers, inputs, "act_norm")
        counts = [outlier_count(weight_rows(m), stats[n].act_norm_sq, cfg.owl_m) for n, m in layers.items()]
        ratios.append(sum(c for c, _ in counts) / max(sum(t for _, t in counts), 1))
        inputs.hidden = run_block(block, inputs)
        block.to(home)
    return ratios, owl_sparsities(ratios, cfg.sparsity, cfg.owl_lambda)


def _backup(plan: list[dict[str, nn.Module]]) -> list[dict[str, Tensor]]:
    return [{n: m.weight.detach().to("cpu", copy=True) for n, m in layers.items()} for layers in plan]


def _restore(plan, saved) -> None:
    for layers, weights in zip(plan, saved, strict=True):
        for n, m in layers.items():
            m.weight.data.copy_(weights[n].to(m.weight.device))


@torch.no_grad()
def prune_llm(
    model: nn.Module, samples: Tensor | None, config: OneShotConfig | None = None, **kwargs
) -> OneShotReport:
    """One-shot prune the linear layers of every transformer block of ``model``, in order.

    Args:
        model: a Hugging Face model (``model.layers``, ``encoder.layer``, ``transformer.h``, …);
            it may live on CPU: only one block at a time is moved to ``config.device``.
        samples: ``(nsamples, seqlen)`` calibration token ids (see
            :func:`prunekit.llm.calib.calibration_samples`); unused by ``magnitude``.
        config: an :class:`OneShotConfig`, or its fields as keyword arguments.

    Returns:
        An :class:`OneShotReport`. The model is pruned in place (dense tensors with zeros).

    Raises:
        ValueError: no block list, pattern not dividing a layer, missing samples — raised
            before any weight changes. If pruning fails midway the original weights are restored
            (``config.backup``) and the error re-raised.
    """
    cfg = config if config is not None else OneShotConfig(**kwargs)
    method = LLM_METHODS.get(cfg.method)
    path, blocks = find_blocks(model)
    plan = _check_plan(path, blocks, cfg)
    needs_data = method.needs != "none" or cfg.owl
    if needs_data and (samples is None or samples.dim() != 2 or samples.numel() == 0):
        raise ValueError(f"method {cfg.method!r} needs calibration samples shaped (nsamples, seqlen)")
    device = _device(cfg)
    was_training = model.training
    model.eval()
    saved = _backup(plan) if cfg.backup else None
    try:
        return _run(model, blocks, path, plan, samples, cfg, method, device)
    except BaseException:
        if saved is not None:
            _restore(plan, saved)
        raise
    finally:
        model.train(was_training)


def _run(model, blocks, path, plan, samples, cfg, method, device) -> OneShotReport:
    sparsities, outliers = [cfg.sparsity] * len(blocks), []
    if cfg.owl:
        outliers, sparsities = _owl_block_sparsities(model, blocks, plan, samples, cfg, device)
    report = OneShotReport(cfg.method, path, block_sparsity=sparsities,
                           block_outlier_ratio=outliers)
    inputs = capture_block_inputs(model, blocks, samples, device) if method.needs != "none" else None
    for i, (block, layers) in enumerate(zip(blocks, plan, strict=True)):
        t0 = time.perf_counter()
        home = next(block.parameters()).device
        block.to(device)
        target = LayerTarget(sparsities[i], cfg.pattern, cfg.blocksize, cfg.percdamp)
        stats = _collect(block, layers, inputs, method.needs) if inputs is not None else {n: None for n in layers}
        done = _prune_block(layers, stats, method, target)
        report.layer_sparsity.update({f"{path}.{i}.{n}": s for n, s in done.items()})
        why = block_reason(cfg, sparsities[i], outliers[i] if outliers else None)
        report.layer_reasons.update({f"{path}.{i}.{n}": why for n in done})
        del stats
        if inputs is not None and i + 1 < len(blocks):
            inputs.hidden = run_block(block, inputs)
        block.to(home)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        report.block_seconds.append(time.perf_counter() - t0)
    return report
