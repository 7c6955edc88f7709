"""YAML recipes: a thin layer over the frozen dataclasses of :mod:`prunekit.recover.recipe`.

Unknown keys and bad values are rejected with the key path named, e.g.
``finetune.epochs: must be > 0`` or ``distill.temprature: unknown key (known: alpha, ...)``.

Example::

    model: prunekit:cnn2d
    data: {name: digits, limit: 512}
    method: unstructured
    criterion: l1
    target: {ratio: 0.8}
    schedule: {kind: cubic, steps: 10}
    pretrain: {epochs: 5, lr: 0.05}
    finetune: {epochs: 3, lr: 0.01, checkpoint_every: 20}
    distill: {temperature: 4.0, alpha: 0.7}
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from prunekit.config import TargetSpec
from prunekit.recover.recipe import SCHEDULES, DataSpec, Distill, Finetune, Recipe

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NESTED = {"finetune": Finetune, "pretrain": Finetune, "distill": Distill, "data": DataSpec,
           "target": TargetSpec}


def _coerce(value: Any) -> Any:
    """PyYAML reads ``1e-4`` as a string (YAML 1.1); numbers-as-strings become numbers."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        v = value.strip()
        return int(v) if re.fullmatch(r"[+-]?\d+", v) else float(v)
    return value


def _build(cls: type, value: Any, path: str, drop: tuple[str, ...] = ()) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: must be a mapping, got {value!r}")
    known = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in drop
             and f.name != "extra"]
    for key in value:
        if key not in known:
            raise ValueError(f"{path}.{key}: unknown key (known: {', '.join(known)})")
    kwargs = {k: _coerce(v) for k, v in value.items()}
    if "hidden" in kwargs:
        kwargs["hidden"] = tuple(tuple(p) if isinstance(p, list) else p for p in kwargs["hidden"])
    try:
        return cls(**kwargs)
    except ValueError as e:
        msg = str(e)
        field = msg.split(":", 1)[0]
        raise ValueError(f"{path}.{msg}" if field in known else f"{path}: {msg}") from None
    except TypeError as e:
        raise ValueError(f"{path}: {e}") from None


def _schedule(value: Any) -> Any:
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict) or value.get("kind") not in SCHEDULES:
        kind = value.get("kind") if isinstance(value, dict) else value
        raise ValueError(f"schedule.kind: unknown schedule {kind!r}; known: "
                         f"{', '.join(SCHEDULES)}")
    rest = {k: v for k, v in value.items() if k != "kind"}
    return _build(SCHEDULES[value["kind"]], rest, "schedule", drop=("kind",))


def recipe_from_dict(data: Any) -> Recipe:
    """Validate a parsed YAML/JSON mapping into a :class:`Recipe` (errors name the key path)."""
    if not isinstance(data, dict):
        raise ValueError(f"recipe: must be a mapping, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(Recipe)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f"{key}: unknown key (known: {', '.join(known)})")
        if key == "schedule":
            kwargs[key] = _schedule(value)
        elif key == "data" and isinstance(value, str):
            kwargs[key] = _build(DataSpec, {"name": value}, "data")
        elif key in _NESTED and value is not None:
            kwargs[key] = _build(_NESTED[key], value, key)
        elif key == "exclude" and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = _coerce(value)
    try:
        return Recipe(**kwargs)
    except ValueError as e:
        raise ValueError(str(e)) from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a YAML recipe file."""
    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    return recipe_from_dict(data)


__all__ = ["load_recipe", "recipe_from_dict"]
