"""Thresholds and kernels beside the weights: ``dynamic.json`` in a :func:`prunekit.save` dir.

:func:`prunekit.save` calls :func:`save_extension` for a model carrying activation sparsity,
and :func:`prunekit.load` calls :func:`load_extension` to install it again on the rebuilt model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from prunekit.dynamic.activation import EXTENSION, attach, layer_states
from prunekit.dynamic.kernels import LayerState
from prunekit.io import atomic_path

FILE = "dynamic.json"
FORMAT = 1


def to_dict(model: nn.Module) -> dict[str, Any]:
    layers = {n: {"threshold": s.threshold, "sparsity": s.sparsity, "kernel": s.kernel,
                  "blocks": s.blocks, "enabled": s.enabled,
                  "mask_multi": s.mask_multi}
              for n, s in layer_states(model).items()}
    return {"format": FORMAT, "layers": layers,
            "config": dict(model.__dict__.get("_prunekit_dynamic_config", {}))}


def from_dict(model: nn.Module, doc: dict[str, Any]) -> None:
    if doc.get("format") != FORMAT:
        raise ValueError(f"{FILE}: unsupported format {doc.get('format')!r}")
    mods = dict(model.named_modules())
    missing = [n for n in doc["layers"] if n not in mods]
    if missing:
        raise ValueError(f"{FILE}: model has no module {missing[0]!r}")
    for n, d in doc["layers"].items():
        attach(mods[n], LayerState(threshold=float(d["threshold"]), sparsity=float(d["sparsity"]),
                                   kernel=str(d["kernel"]), blocks=int(d["blocks"]),
                                   enabled=bool(d.get("enabled", True)),
                                   mask_multi=bool(d.get("mask_multi", False))))
    model.__dict__.setdefault("_prunekit_extensions", {}).update(EXTENSION)
    model.__dict__["_prunekit_dynamic_config"] = dict(doc.get("config", {}))


def save_extension(model: nn.Module, path: str | Path) -> None:
    with atomic_path(Path(path) / FILE) as tmp:
        tmp.write_text(json.dumps(to_dict(model), indent=1, sort_keys=True))


def load_extension(model: nn.Module, path: str | Path) -> None:
    from_dict(model, json.loads((Path(path) / FILE).read_text()))
