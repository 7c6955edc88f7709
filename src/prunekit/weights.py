"""Weight (mask) pruning: score -> select -> apply, for any model.

>>> report = prune_weights(model, sparsity=0.7, criterion="l1", scope="global")
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.importance.calibration import collect_stats
from prunekit.config import Scope, WeightPruneConfig
from prunekit.importance import get_criterion
from prunekit.masks.apply import get_mask, set_mask
from prunekit.masks.layout import layout_for
from prunekit.masks.save_guard import guard_save_pretrained
from prunekit.masks.select import global_masks, nm_mask, unstructured_mask
from prunekit.stats import module_type_name
from prunekit.importance.random import RandomScore
from prunekit.stats import check_inputs


@dataclass
class LayerResult:
    name: str
    type: str
    numel: int
    zeros: int
    reason: str = ""  # why this layer got its sparsity (criterion, scope, threshold, override)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclass
class WeightPruneReport:
    """What :func:`prune_weights` did, layer by layer."""

    config: WeightPruneConfig
    layers: list[LayerResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # left dense, and why

    @property
    def numel(self) -> int:
        return sum(r.numel for r in self.layers)

    @property
    def zeros(self) -> int:
        return sum(r.zeros for r in self.layers)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.config.criterion,
            "scope": self.config.scope.value,
            "pattern": None if self.config.pattern is None else "%d:%d" % self.config.pattern,
            "sparsity": self.sparsity,
            "layers": [
                {"name": r.name, "type": r.type, "numel": r.numel, "zeros": r.zeros,
                 "sparsity": r.sparsity, "reason": r.reason}
                for r in self.layers
            ],
            "skipped": [{"name": n, "reason": why} for n, why in self.skipped],
            "excluded": [{"name": n, "reason": why} for n, why in self.excluded],
        }


def _matches(name: str, module: nn.Module, patterns: Iterable[str]) -> str | None:
    for pat in patterns:
        if fnmatch.fnmatchcase(name, pat) or type(module).__name__ == pat:
            return pat
    return None


def select_layers(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, nn.Module]:
    """Prunable layers (a registered weight layout) by qualified name, minus ``exclude``.

    Raises:
        ValueError: an ``exclude`` entry matches no module name or type, or nothing is prunable.
    """
    named = [(n, m) for n, m in model.named_modules() if n]
    for pat in exclude:
        if not any(_matches(n, m, [pat]) for n, m in named):
            raise ValueError(f"exclude entry {pat!r} matches no module name or type in the model")
    layers = {
        n: m for n, m in named
        if layout_for(m) is not None and isinstance(getattr(m, "weight", None), Tensor)
        and not _matches(n, m, exclude)
    }
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no prunable layers (Linear/Conv or a registered layout)"
            + (f" after exclude={list(exclude)}" if exclude else "")
        )
    return layers


def _check_overrides(layers: dict[str, nn.Module], overrides) -> dict[str, float]:
    per_layer: dict[str, float] = {}
    for pat, value in overrides:
        hits = [n for n, m in layers.items() if _matches(n, m, [pat])]
        if not hits:
            raise ValueError(f"overrides entry {pat!r} matches no prunable layer")
        for n in hits:
            per_layer[n] = float(value)
    return per_layer


def _nm_for_layer(name: str, module: nn.Module, scores: Tensor, n: int, m: int) -> Tensor:
    layout = layout_for(module)
    w = module.weight
    size = layout.reduction_size(w)
    if size % m:
        raise ValueError(
            f"layer {name!r} ({type(module).__name__}, weight {tuple(w.shape)}): reduction "
            f"dimension {size} is not divisible by M={m} for pattern {n}:{m}; exclude it "
            "or pass skip_incompatible=True"
        )
    rows = layout.to_rows(scores)
    return layout.from_rows(nm_mask(rows, n, m), w.shape)


def compute_masks(
    layers: dict[str, nn.Module], scores: dict[str, Tensor], cfg: WeightPruneConfig
) -> tuple[dict[str, Tensor], list[tuple[str, str]]]:
    """Pure: scores -> keep-masks for every layer under ``cfg`` (nothing is mutated)."""
    skipped: list[tuple[str, str]] = []
    if cfg.pattern is not None:
        n, m = cfg.pattern
        masks = {}
        for name, mod in layers.items():
            size = layout_for(mod).reduction_size(mod.weight)
            if size % m and cfg.skip_incompatible:
                skipped.append((name, f"reduction dim {size} not divisible by {m}"))
                continue
            masks[name] = _nm_for_layer(name, mod, scores[name], n, m)
        return masks, skipped
    per_layer = _check_overrides(layers, cfg.overrides)
    masks = {n: unstructured_mask(scores[n], s) for n, s in per_layer.items()}
    rest = {n: scores[n] for n in layers if n not in per_layer}
    if cfg.scope is Scope.GLOBAL:
        masks.update(global_masks(rest, cfg.sparsity))
    else:
        masks.update({n: unstructured_mask(s, cfg.sparsity) for n, s in rest.items()})
    return masks, skipped


def explain_masks(layers: dict[str, nn.Module], scores: dict[str, Tensor],
                  masks: dict[str, Tensor], cfg: WeightPruneConfig) -> dict[str, str]:
    """Pure: why each layer got its sparsity (the report's ``reason`` per layer)."""
    crit = cfg.criterion
    if cfg.pattern is not None:
        n, m = cfg.pattern
        return {name: f"{n}:{m} pattern: the {m - n} lowest-{crit} of every {m} weights along "
                      "the reduction dimension removed" for name in masks}
    fixed = _check_overrides(layers, cfg.overrides)
    why = {}
    for name, value in fixed.items():
        pat = next(p for p, _ in reversed(cfg.overrides) if _matches(name, layers[name], [p]))
        why[name] = f"override {pat!r}: the lowest-{crit} {value:.2%} of this layer's weights"
    rest = [name for name in masks if name not in fixed]
    if cfg.scope is Scope.GLOBAL and rest:
        cut = [scores[n][~masks[n]].float() for n in rest if (~masks[n]).any()]
        threshold = max(float(c.max()) for c in cut) if cut else float("-inf")
        for name in rest:
            why[name] = (f"global {crit} ranking over {len(rest)} layer(s): one threshold "
                         f"{threshold:.4g} removes the lowest {cfg.sparsity:.2%} of their weights; "
                         "this layer's share follows from its scores")
    else:
        for name in rest:
            why[name] = f"local: the lowest-{crit} {cfg.sparsity:.2%} of this layer's weights"
    return why


def excluded_layers(model: nn.Module, exclude: tuple[str, ...]) -> list[tuple[str, str]]:
    """Prunable layers that ``exclude`` leaves dense, with the entry that matched."""
    out = []
    for name, mod in model.named_modules():
        pat = _matches(name, mod, exclude) if name else None
        if pat and layout_for(mod) is not None and isinstance(getattr(mod, "weight", None),
                                                               Tensor):
            out.append((name, f"excluded by {pat!r}"))
    return out


def score_layers(
    model: nn.Module,
    layers: dict[str, nn.Module],
    cfg: WeightPruneConfig,
    calib_data: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Importance of every weight of ``layers``. Already-masked weights score -inf (stay pruned)."""
    crit = get_criterion(cfg.criterion)
    if cfg.criterion == "random":
        crit = RandomScore(cfg.seed)
    needs = set(crit.requires)
    if needs and calib_data is None:
        raise ValueError(f"criterion {cfg.criterion!r} needs calib_data= (batches of the task)")
    stats = collect_stats(model, layers, calib_data if needs else [], needs, loss_fn) if needs \
        else collect_stats(model, layers, [], set())
    scores = {}
    for name, mod in layers.items():
        s = crit(mod.weight, stats[name]).to(mod.weight.device)
        old = get_mask(mod)
        if old is not None:
            s = torch.where(old, s, torch.full_like(s, float("-inf")))
        scores[name] = s
    return scores


@torch.no_grad()
def _apply(layers: dict[str, nn.Module], masks: dict[str, Tensor]) -> None:
    for name, mask in masks.items():
        set_mask(layers[name], mask)


def prune_weights(
    model: nn.Module,
    sparsity: float = 0.5,
    criterion: str = "l1",
    scope: str | Scope = "local",
    pattern: str | tuple[int, int] | None = None,
    *,
    example_inputs: Any = None,
    calib_data: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    overrides: dict[str, float] | None = None,
    exclude: Iterable[str] = (),
    skip_incompatible: bool = False,
    seed: int = 0,
) -> WeightPruneReport:
    """Mask the least important weights of every Linear/Conv layer (in place, reversible until
    :func:`prunekit.finalize`).

    Args:
        model: any ``nn.Module``.
        sparsity: fraction of weights zeroed, in [0, 1) (unstructured patterns).
        criterion: ``l1``/``magnitude``, ``l2``, ``random``, ``gradient``, ``taylor``, ``activation``.
        scope: ``local`` (alias ``layer``: every layer to ``sparsity``) or ``global`` (one ranking
            across layers).
        pattern: ``None``/``"unstructured"`` or ``"N:M"`` such as ``"2:4"`` (along the reduction dim).
        example_inputs: optional input(s); when given, the model is run once to check them.
        calib_data: batches ``(inputs, target)`` for gradient/Taylor; inputs for activation.
        loss_fn: ``loss_fn(output, target)`` for gradient/Taylor.
        overrides: module-name glob -> sparsity (pruned layer-wise to that value).
        exclude: module-name globs or type names to leave dense.
        skip_incompatible: with N:M, skip (and report) layers not divisible by M instead of raising.
        seed: seed of the random criterion.

    Returns:
        A :class:`WeightPruneReport` with the exact per-layer sparsity achieved.

    Raises:
        ValueError: invalid argument, unknown layer in ``exclude``/``overrides``, no prunable
            layer, N:M not dividing a layer, bad example inputs. The model is left unchanged.
    """
    cfg = WeightPruneConfig(
        sparsity=sparsity, criterion=criterion, scope=scope, pattern=pattern,
        overrides=tuple((overrides or {}).items()), exclude=tuple(exclude),
        skip_incompatible=skip_incompatible, seed=seed,
    )
    layers = select_layers(model, cfg.exclude)
    if example_inputs is not None:
        check_inputs(model, example_inputs)
    scores = score_layers(model, layers, cfg, calib_data, loss_fn)
    masks, skipped = compute_masks(layers, scores, cfg)
    _apply(layers, masks)  # all validation passed: mutate last
    guard_save_pretrained(model)  # HF save_pretrained writes the masked weights, not *.original
    report = WeightPruneReport(config=cfg, skipped=skipped,
                               excluded=excluded_layers(model, cfg.exclude))
    why = {**dict(skipped), **explain_masks(layers, scores, masks, cfg)}
    for name, mod in layers.items():
        w = mod.weight
        report.layers.append(LayerResult(name, module_type_name(mod), w.numel(),
                                         int((w == 0).sum()), why.get(name, "")))
    return report
