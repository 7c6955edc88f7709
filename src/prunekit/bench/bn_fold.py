"""Fold inference-mode BatchNorm into the preceding convolution or linear layer.

At inference ``BN(conv(x)) = conv'(x)`` with ``W' = W * g / sqrt(var + eps)`` (per output
channel) and ``b' = (b - mean) * g / sqrt(var + eps) + beta`` (Ioffe & Szegedy, 2015; the
folding of Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018). A pruned network keeps its BatchNorm/ReLU
traffic, which shrinks with the channel count, not with MACs; folding removes the BN pass. The
benchmark harness applies it to the dense baseline *and* the pruned models alike.

Pairs are found with ``torch.fx`` (a BN whose only input is a conv whose only user is that BN);
models fx cannot trace fall back to adjacent ``(conv, bn)`` children of ``nn.Sequential``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class FoldReport:
    """What :func:`fold_batchnorm` did: ``folded`` (producer, bn) names; ``skipped`` with why."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    method: str = "fx"


def _pairs_fx(model: nn.Module) -> list[tuple[str, str]]:
    import torch.fx as fx

    class _Tracer(fx.Tracer):  # childless custom modules (e.g. CSRLinear) are leaves too
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return super().is_leaf_module(m, qualname) or not any(True for _ in m.children())

    gm = fx.GraphModule(model, _Tracer().trace(model))
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    mods = dict(model.named_modules())
    pairs = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), _BN):
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, fx.Node) or src.op != "call_module":
            continue
        if not isinstance(mods.get(src.target), _PRODUCERS) or len(src.users) != 1:
            continue
        if calls[src.target] == 1 and calls[node.target] == 1:  # modules not shared
            pairs.append((src.target, node.target))
    return pairs


def _pairs_sequential(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        kids = list(mod.named_children())
        for (a, ma), (b, mb) in zip(kids, kids[1:], strict=False):
            if isinstance(ma, _PRODUCERS) and isinstance(mb, _BN):
                pre = f"{name}." if name else ""
                pairs.append((pre + a, pre + b))
    return pairs


def _why_not(prod: nn.Module, bn: nn.Module) -> str | None:
    if bn.running_mean is None or bn.running_var is None:
        return "BatchNorm has no running statistics (track_running_stats=False)"
    if parametrize.is_parametrized(prod):
        return "producer weight is parametrized (call prunekit.finalize first)"
    out = prod.out_features if isinstance(prod, nn.Linear) else prod.out_channels
    if out != bn.num_features:
        return f"channel mismatch: producer has {out} outputs, BatchNorm {bn.num_features}"
    return None


@torch.no_grad()
def _fused(prod: nn.Module, bn: nn.Module) -> tuple[Tensor, Tensor]:
    w = prod.weight
    scale = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_var)
    inv = (scale.float() / torch.sqrt(bn.running_var.float() + bn.eps))
    b = prod.bias.float() if prod.bias is not None else torch.zeros_like(inv)
    new_w = w.float() * inv.reshape(-1, *([1] * (w.dim() - 1)))
    new_b = (b - bn.running_mean.float()) * inv + shift.float()
    return new_w.to(w.dtype), new_b.to(w.dtype)


def fold_batchnorm(model: nn.Module) -> FoldReport:
    """Fold every foldable BatchNorm into its producer, in place; the BN becomes ``Identity``.

    For inference only: running statistics are used, so call ``model.eval()`` and do not train
    the folded model. Planned first, mutated last: on error nothing is changed.

    Returns:
        A :class:`FoldReport` listing folded and skipped pairs.
    """
    report = FoldReport()
    try:
        pairs = _pairs_fx(model)
    except Exception:  # noqa: BLE001 - fx cannot trace every model; fall back, say so
        pairs, report.method = _pairs_sequential(model), "sequential"
    mods = dict(model.named_modules())
    plan = []
    for p, b in pairs:
        why = _why_not(mods[p], mods[b])
        if why:
            report.skipped.append((b, why))
            continue
        plan.append((p, b, *_fused(mods[p], mods[b])))
    with torch.no_grad():
        for p, b, w, bias in plan:
            prod = mods[p]
            prod.weight = nn.Parameter(w, requires_grad=prod.weight.requires_grad)
            prod.bias = nn.Parameter(bias, requires_grad=prod.weight.requires_grad)
            model.set_submodule(b, nn.Identity())
            report.folded.append((p, b))
    return report
