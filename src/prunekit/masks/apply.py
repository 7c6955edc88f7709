"""Apply masks as parametrizations while pruning; ``finalize`` bakes them into plain weights.

While pruning/fine-tuning a masked ``weight`` is ``original * mask`` through
:mod:`torch.nn.utils.parametrize`, so gradients flow and masked entries stay zero. After
:func:`finalize` the module is ordinary again: ``weight`` is a plain Parameter with zeros where
the mask was, and the state_dict has ordinary keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


class WeightMask(nn.Module):
    """Parametrization ``w -> w * mask`` with the mask kept as a (saved) buffer."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, w: Tensor) -> Tensor:
        return w * self.mask.to(w.dtype)


def _mask_param(module: nn.Module, tensor_name: str) -> WeightMask | None:
    if not parametrize.is_parametrized(module, tensor_name):
        return None
    for p in module.parametrizations[tensor_name]:
        if isinstance(p, WeightMask):
            return p
    return None


def set_mask(module: nn.Module, mask: Tensor, tensor_name: str = "weight") -> None:
    """Attach (or combine with an existing) keep-mask on ``module.<tensor_name>``."""
    current = getattr(module, tensor_name)
    if mask.shape != current.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match {type(module).__name__}."
            f"{tensor_name} shape {tuple(current.shape)}"
        )
    existing = _mask_param(module, tensor_name)
    mask = mask.to(device=current.device, dtype=torch.bool)
    if existing is not None:
        existing.mask = existing.mask & mask
        return
    parametrize.register_parametrization(module, tensor_name, WeightMask(mask))


def remove_parametrization(module: nn.Module, tensor_name: str = "weight") -> None:
    """``torch.nn.utils.parametrize.remove_parametrizations`` (values kept) that leaves other
    copies alone: a deep copy of a parametrized module shares its generated class, and torch
    deletes the tensor's property from that class, which would strip the tensor from every
    copy (the original model loses ``weight``). The module gets a class of its own first."""
    cls = type(module)
    module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
    parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)


def get_mask(module: nn.Module, tensor_name: str = "weight") -> Tensor | None:
    p = _mask_param(module, tensor_name)
    return None if p is None else p.mask


def masked_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules (by qualified name) that carry a prunekit mask on ``weight``."""
    return {n: m for n, m in model.named_modules() if _mask_param(m, "weight") is not None}


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Attach keep-masks by module name (validated first: all-or-nothing)."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in modules:
            raise ValueError(f"no module named {name!r} in the model")
        w = getattr(modules[name], "weight", None)
        if w is None or tuple(w.shape) != tuple(mask.shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, weight does not match")
    for name, mask in masks.items():
        set_mask(modules[name], mask)


def finalize(model: nn.Module) -> nn.Module:
    """Bake every prunekit mask into its weight and remove the parametrization (in place).

    Returns the same model, now with ordinary modules and state_dict keys.
    """
    for module in model.modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in list(module.parametrizations.keys()):
            plist = module.parametrizations[tensor_name]
            if all(isinstance(p, WeightMask) for p in plist):
                remove_parametrization(module, tensor_name)
    return model


# --- torch.nn.utils.prune interoperability -------------------------------------------------

def import_torch_prune(model: nn.Module) -> int:
    """Convert ``torch.nn.utils.prune`` reparametrizations (``weight_orig``/``weight_mask``)
    into prunekit masks. Returns the number of tensors converted."""
    from torch.nn.utils import prune as tprune

    count = 0
    for module in model.modules():
        hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, tprune.BasePruningMethod)]
        for hook in hooks:
            names = [hook._tensor_name] if hasattr(hook, "_tensor_name") else []
            if isinstance(hook, tprune.PruningContainer):
                names = [hook._tensor_name]
            for tname in names:
                mask = getattr(module, tname + "_mask").detach().clone().bool()
                tprune.remove(module, tname)  # weight <- orig * mask, plain parameter
                set_mask(module, mask, tname)
                count += 1
    return count


def export_torch_prune(model: nn.Module) -> int:
    """Convert prunekit masks into ``torch.nn.utils.prune`` custom masks (``weight_orig`` /
    ``weight_mask`` keys). Returns the number of tensors converted."""
    from torch.nn.utils import prune as tprune

    count = 0
    for module in model.modules():
        mask = get_mask(module, "weight")
        if mask is None:
            continue
        mask = mask.clone()
        remove_parametrization(module, "weight")
        tprune.custom_from_mask(module, "weight", mask)
        count += 1
    return count
