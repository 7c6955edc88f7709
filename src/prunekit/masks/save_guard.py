"""``save_pretrained`` on a masked model writes the masked weights under their ordinary names.

A masked ``weight`` lives in ``<module>.parametrizations.weight.original`` (plus a ``mask``
buffer) until :func:`prunekit.masks.apply.finalize`. Hugging Face's ``from_pretrained`` does not
know those keys: it would report them as unexpected, initialise every ``<module>.weight`` afresh
and return a silently different model. :func:`guard_save_pretrained` gives a masked model's
``save_pretrained`` a state dict with ``weight = original * mask`` under the ordinary key (the
model in memory stays masked and reversible), and refuses in one line when a masked weight is
tied to another parameter, which a checkpoint stores once for both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.masks.apply import masked_modules

_KEY = ".parametrizations.weight."


def finalized_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model.state_dict()`` with every prunekit mask baked into an ordinary ``weight`` key.

    Raises:
        ValueError: a masked weight is tied to another parameter (the mask cannot be saved).
    """
    _refuse_tied_masks(model)
    mods = masked_modules(model)
    state = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if _KEY not in key:
            out[key] = value
            continue
        name = key.split(_KEY)[0]
        if name in mods and key.endswith(_KEY + "original"):
            with torch.no_grad():
                out[f"{name}.weight"] = mods[name].weight.detach().clone()
        elif name not in mods:
            out[key] = value
    return out


def _refuse_tied_masks(model: nn.Module) -> None:
    owners: dict[int, list[str]] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(pname.replace(".parametrizations.weight.original",
                                                          ".weight"))
    for name, mod in masked_modules(model).items():
        names = owners.get(id(mod.parametrizations.weight.original), [])
        others = [n for n in names if n != f"{name}.weight"]
        if others:
            raise ValueError(
                f"save_pretrained: {name}.weight is masked but tied to {others[0]}, and a "
                f"checkpoint stores one tensor for both; prune with exclude=['{name}'] or "
                f"untie the weights first")


class FinalizingSave:
    """Stands in for ``model.save_pretrained`` while the model carries prunekit masks."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        bound = type(self.model).save_pretrained.__get__(self.model)
        if masked_modules(self.model) and kwargs.get("state_dict") is None:
            kwargs["state_dict"] = finalized_state_dict(self.model)
        return bound(save_directory, *args, **kwargs)


def guard_save_pretrained(model: nn.Module) -> None:
    """Make ``model.save_pretrained`` (Hugging Face) write masked weights correctly.

    A no-op for models without a ``save_pretrained`` method. Once the model is finalised the
    stand-in simply calls the model's own method.
    """
    if callable(getattr(type(model), "save_pretrained", None)) and masked_modules(model):
        model.__dict__["save_pretrained"] = FinalizingSave(model)


__all__ = ["FinalizingSave", "finalized_state_dict", "guard_save_pretrained"]
