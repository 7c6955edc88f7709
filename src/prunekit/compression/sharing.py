"""Trained weight sharing: per-layer k-means codebooks that fine-tuning keeps exact.

Deep Compression (Han, Mao & Dally, ICLR 2016, section 3) replaces the kept weights of every
layer by ``2^bits`` shared values found with k-means, then fine-tunes the shared values: the
gradient of each centroid is the sum of the gradients of the weights in its cluster.

Here a shared layer's ``weight`` is a :mod:`torch.nn.utils.parametrize` chain

    codebook (Parameter, k) --SharedWeight--> codebook[index] --WeightMask--> * mask

The parametrization's ``original`` tensor *is* the codebook, so ordinary training
(:func:`prunekit.finetune`, any optimizer over ``model.parameters()``) updates the centroids, and
autograd's backward of the gather is exactly the paper's per-cluster gradient sum. The layer
stays representable by its codebook: at any time it holds at most ``k`` distinct kept values.
An existing prunekit mask is kept as the last step of the chain (``prunekit.masks.get_mask``
still finds it), so pruned weights stay zero.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit.compression.kmeans import INITS, kmeans_1d
from prunekit.masks.apply import WeightMask, get_mask, remove_parametrization, set_mask
from prunekit.stats import module_type_name
from prunekit.weights import select_layers


class SharedWeight(nn.Module):
    """Parametrization ``codebook -> codebook[index]`` (``index`` has the weight's shape)."""

    def __init__(self, index: Tensor, codebook: Tensor, bits: int) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.int32))
        self.bits = int(bits)
        self._init = codebook.detach().clone()

    def forward(self, codebook: Tensor) -> Tensor:
        return codebook[self.index]

    def right_inverse(self, weight: Tensor) -> Tensor:
        """At registration: the codebook becomes the trained tensor (``weight`` is ignored)."""
        return self._init.to(device=weight.device, dtype=weight.dtype)


@dataclass(frozen=True)
class LayerShare:
    """One layer's sharing: ``clusters`` used of the ``2^bits`` asked for."""

    name: str
    type: str
    bits: int
    kept: int
    clusters: int
    note: str = ""


@dataclass
class ShareReport:
    """What :func:`share_weights` did, layer by layer (``skipped``: layers with no bits rule)."""

    init: str
    layers: list[LayerShare] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"init": self.init, "skipped": list(self.skipped),
                "layers": [vars(r) for r in self.layers]}


def _bits_rule(name: str, module: nn.Module, bits: Mapping[str, int]) -> int | None:
    """Bits for a layer: exact name, then name glob, then type name; ``None`` when none match."""
    if name in bits:
        return bits[name]
    for pat, b in bits.items():
        if fnmatch.fnmatchcase(name, pat):
            return b
    return bits.get(module_type_name(module))


def _check_bits(bits: int | Mapping[str, int]) -> Mapping[str, int] | int:
    values = [bits] if not isinstance(bits, Mapping) else list(bits.values())
    for b in values:
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 16:
            raise ValueError(f"bits must be integers in 1..16, got {bits!r}")
    return bits


def shared_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules (by qualified name) whose ``weight`` is shared through a codebook."""
    return {n: m for n, m in model.named_modules() if _shared_param(m) is not None}


def _shared_param(module: nn.Module) -> SharedWeight | None:
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations["weight"] if isinstance(p, SharedWeight)),
                None)


def codebook_of(module: nn.Module) -> tuple[Tensor, Tensor, Tensor | None, int]:
    """``(codebook, index, mask, bits)`` of a shared module (mask ``None`` when unpruned)."""
    p = _shared_param(module)
    if p is None:
        raise ValueError(f"{type(module).__name__} has no shared weight (call share_weights)")
    return module.parametrizations["weight"].original.detach(), p.index, get_mask(module), p.bits


def _plan(model: nn.Module, bits: int | Mapping[str, int], init: str, seed: int,
          exclude: tuple[str, ...]) -> tuple[dict[str, tuple], ShareReport]:
    """Pure: k-means of every selected layer; nothing is mutated."""
    report = ShareReport(init=init)
    plans: dict[str, tuple] = {}
    for name, mod in select_layers(model, exclude).items():
        if _shared_param(mod) is not None:
            raise ValueError(f"layer {name!r} is already shared; call unshare(model) first")
        if parametrize.is_parametrized(mod, "weight") and not all(
                isinstance(p, WeightMask) for p in mod.parametrizations["weight"]):
            raise ValueError(f"layer {name!r} carries a foreign parametrization on weight")
        b = bits if isinstance(bits, int) else _bits_rule(name, mod, bits)
        if b is None:
            report.skipped.append(name)
            continue
        w = mod.weight.detach()
        mask = get_mask(mod)
        keep = torch.ones_like(w, dtype=torch.bool) if mask is None else mask
        cents, assign = kmeans_1d(w[keep], 2 ** b, init=init, seed=seed)
        index = torch.zeros(w.shape, dtype=torch.int32, device=w.device)
        index[keep] = assign.to(device=w.device, dtype=torch.int32)
        kept = int(keep.sum())
        note = "" if kept >= 2 ** b else f"{kept} kept weights < {2 ** b} clusters"
        report.layers.append(LayerShare(name, module_type_name(mod), b, kept, cents.numel(), note))
        plans[name] = (mod, index, cents, mask, b)
    if isinstance(bits, Mapping):
        named = {n: m for n, m in model.named_modules() if n}
        for pat in bits:  # a torch.nn type the model lacks is fine; a stray name is not
            if not hasattr(nn, pat) and not any(_bits_rule(n, m, {pat: 1}) for n, m in named.items()):
                raise ValueError(f"bits entry {pat!r} matches no layer name or type in the model")
    if not plans:
        raise ValueError(f"share_weights: no layer of {type(model).__name__} matches bits={bits!r}")
    return plans, report


def share_weights(model: nn.Module, bits: int | Mapping[str, int] | None = None,
                  init: str = "linear", *, seed: int = 0,
                  exclude: Iterable[str] = ()) -> ShareReport:
    """Share the kept weights of every selected layer through a ``2^bits``-entry codebook.

    Args:
        model: any ``nn.Module``; pruned layers (prunekit masks) keep their masks.
        bits: one width for every Linear/Conv layer, or a mapping from module name, name glob
            or type name (``"Conv2d"``, ``"Linear"``) to bits; layers matched by none are left
            alone (listed in ``report.skipped``). Default: the paper's 8 for conv, 5 for FC.
        init: centroid initialisation, ``linear`` (paper's best), ``density`` or ``random``.
        seed: seed of the ``random`` initialisation.
        exclude: module-name globs or type names never shared.

    Returns:
        A :class:`ShareReport`; a layer with fewer kept weights than clusters uses fewer
        clusters and says so in its ``note`` (a warning is issued too).

    Raises:
        ValueError: bits outside 1..16, unknown ``init``, a bits entry matching nothing, a layer
            already shared. The model is left unchanged.
    """
    if bits is None:
        bits = {"Conv1d": 8, "Conv2d": 8, "Conv3d": 8, "Linear": 5}
    bits = _check_bits(bits)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    plans, report = _plan(model, bits, init, seed, tuple(exclude))
    with torch.no_grad():  # every check passed: mutate last
        for mod, index, cents, mask, b in plans.values():
            if parametrize.is_parametrized(mod, "weight"):
                remove_parametrization(mod, "weight")
            parametrize.register_parametrization(mod, "weight", SharedWeight(index, cents, b))
            if mask is not None:
                set_mask(mod, mask)
    for r in report.layers:
        if r.note:
            warnings.warn(f"share_weights: layer {r.name!r}: {r.note}; {r.clusters} used",
                          stacklevel=2)
    return report


def unshare(model: nn.Module) -> nn.Module:
    """Bake every codebook into a plain weight (masks are kept as masks). In place."""
    for mod in shared_modules(model).values():
        mask = get_mask(mod)
        remove_parametrization(mod, "weight")
        if mask is not None:
            set_mask(mod, mask)
    return model


__all__ = ["LayerShare", "ShareReport", "SharedWeight", "codebook_of", "share_weights",
           "shared_modules", "unshare"]
