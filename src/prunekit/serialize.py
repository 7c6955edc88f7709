"""Save and reload pruned models with their (smaller) architecture — no class edits needed.

A saved model is a directory:

* ``prunekit.json`` — the base architecture (``"torchvision:resnet18"``, ``"timm:name"``,
  ``"module:pkg.mod:factory"``, or an HF config dict + class name), the history of layer
  removals (:func:`prunekit.drop_layers`) and module replacements (``replace_module``: a pruned
  layer of another type, e.g. a remapped embedding table, rebuilt from its ``module:`` spec and
  sizes) and the format version;
* ``model.safetensors`` — the ordinary state_dict (atomic write).

:func:`load` rebuilds the base (random init), replays the layer removals, resizes every module
whose saved tensor shapes differ (each handler's ``resize`` fixes attributes such as
``out_channels``, ``num_heads``, ``hidden_size``) and loads the weights strictly.

Hugging Face models whose per-layer sizes are uniform are written with ``save_pretrained``
after their config is updated (:func:`prunekit.structural.hf_config.sync_hf_config`), so plain
``from_pretrained`` reloads them too; ``prunekit.json`` then just says so.
"""

from __future__ import annotations

import importlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from prunekit.io import MODEL_DIRECTORIES, atomic_dir, atomic_path, build_from_spec, load_model_spec, load_weights, save_weights
from prunekit.structural.resize import resize_to_state_dict
from prunekit.structural.hf_config import sync_hf_config
from prunekit.structural.layers import replay_drop
from prunekit.tv_builders import torchvision_builder

FORMAT = 1
_PLAIN = (bool, int, float, str)
_META = "prunekit.json"
_WEIGHTS = "model.safetensors"


def _is_hf(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(type(model), "_from_config") \
        and hasattr(model, "save_pretrained")


def _conv_groups(model: nn.Module) -> dict[str, int]:
    """``groups`` of every convolution (pruning removes whole groups, down to one, and a
    builder cannot tell the new count from weight shapes)."""
    return {n: int(m.groups) for n, m in model.named_modules()
            if isinstance(m, nn.modules.conv._ConvNd) and isinstance(m.groups, int)}


def _infer_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """How to build ``model``'s unpruned base: ``(spec, builder keyword arguments)``."""
    recorded = model.__dict__.get("_prunekit_spec")
    if recorded is not None:
        return recorded, dict(model.__dict__.get("_prunekit_spec_kwargs", {}))
    found = torchvision_builder(model)
    if found is not None:
        return f"torchvision:{found[0]}", found[1]
    cfg = getattr(model, "pretrained_cfg", None)  # timm models carry their architecture name
    if isinstance(cfg, dict) and cfg.get("architecture") and type(model).__module__.startswith(
            "timm."):
        return f"timm:{cfg['architecture']}", {}
    raise ValueError(
        f"save: cannot tell how to rebuild {type(model).__name__}; pass spec="
        "'torchvision:NAME' | 'timm:NAME' | 'module:pkg.mod:factory'")


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))


def _save_extensions(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Files that areas keep beside the weights (``{name: module}`` with save/load_extension)."""
    exts = dict(model.__dict__.get("_prunekit_extensions", {}))
    for modname in exts.values():
        importlib.import_module(modname).save_extension(model, path)
    if exts:
        meta["extensions"] = exts


def _load_extensions(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    for name, modname in dict(meta.get("extensions", {})).items():
        if not str(modname).startswith("prunekit."):
            raise ValueError(f"load: extension {name!r} names a module outside prunekit")
        importlib.import_module(modname).load_extension(model, path)


def save(model: nn.Module, path: str | Path, spec: str | None = None,
         spec_kwargs: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (pruned or not) to directory ``path``; see the module docstring.

    The directory is written whole or not at all: everything goes into a hidden temporary
    directory beside ``path``, is reloaded and compared with ``model``, and only then replaces
    ``path`` (a previous save there is removed with every file in it, so no stale file is left
    beside the new ones). A save killed midway leaves ``path`` as it was; its hidden temporary
    directory is removed by the next save to the same path.

    Args:
        spec: how to build the unpruned base; inferred for HF, torchvision and timm models and
            for models returned by :func:`load`.
        spec_kwargs: JSON-serialisable keyword arguments of the builder (e.g.
            ``{"img_size": 64}`` for a timm ViT, ``{"num_classes": 10}``).

    Returns:
        The directory.

    Raises:
        ValueError: ``path`` is a file, or a directory holding files of something other than a
            previous save; or what would be written does not rebuild ``model``.
    """
    path = Path(path)
    _check_target(path)
    with atomic_dir(path) as tmp:
        _write(model, tmp, spec, spec_kwargs, shown=path)
    return path


def _check_target(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"save: {path} exists and is not a directory")
    for up in path.parents:
        if up.exists():
            if not up.is_dir():
                raise ValueError(f"save: {up} is not a directory, so {path} cannot be created")
            break
    if path.is_dir() and any(path.iterdir()) and not (
            (path / _META).exists() or (path / "config.json").exists()):
        raise ValueError(f"save: {path} holds other files; save into a new or empty directory "
                         "(or over a previous save)")


def _write(model: nn.Module, path: Path, spec: str | None, spec_kwargs: dict[str, Any] | None,
           shown: Path) -> None:
    history = list(model.__dict__.get("_prunekit_history", []))
    meta: dict[str, Any] = {"format": FORMAT, "history": history}
    if spec is None and _is_hf(model):
        if sync_hf_config(model):
            model.save_pretrained(str(path))
            meta.update(base={"kind": "hf_pretrained"})
            _save_extensions(model, path, meta)
            _write_json(path / _META, meta)
            return
        meta.update(base={"kind": "hf_config", "class": type(model).__name__,
                          "config": model.config.to_dict()})
    else:
        _refuse_parametrized(model)
        if spec is None:
            spec, inferred = _infer_spec(model)
        else:
            inferred = model.__dict__.get("_prunekit_spec_kwargs", {})
        kwargs = spec_kwargs if spec_kwargs is not None else inferred
        meta.update(base={"kind": "spec", "spec": spec, "kwargs": dict(kwargs)})
    groups = _conv_groups(model)
    if groups:
        meta["conv_groups"] = groups
    save_weights(model, path / _WEIGHTS)
    _save_extensions(model, path, meta)
    _write_json(path / _META, meta)
    _prove_rebuilds(model, path, [path / _WEIGHTS, path / _META], shown)


def _refuse_parametrized(model: nn.Module) -> None:
    """Masked (weight-pruned) or weight-shared modules have no ordinary state_dict keys, so no
    builder rebuilds them: say how to save them instead of failing the rebuild proof."""
    name = next((n for n, m in model.named_modules() if parametrize.is_parametrized(m)), None)
    if name is not None:
        raise ValueError(
            f"save: module {name or '<root>'} still carries a mask or other parametrization; "
            "call prunekit.finalize(model) first (the masked entries become zeros of a plain "
            "module, which saves and reloads)")


def _structure(model: nn.Module) -> list[tuple[str, str, str]]:
    """Every module's name, type and settings."""
    return [(n, type(m).__name__, m.extra_repr()) for n, m in model.named_modules()]


def _root_settings(model: nn.Module) -> dict[str, Any]:
    """The root's plain attributes (``image_size``, ``aux_logits`` ...), which forward may read
    and no ``extra_repr`` shows."""
    return {k: v for k, v in vars(model).items()
            if not k.startswith("_") and k != "training" and isinstance(v, _PLAIN)}


def _prove_rebuilds(model: nn.Module, path: Path, written: list[Path], shown: Path) -> None:
    """Load what was written and compare it with ``model`` (every module's type and settings,
    every tensor); on any difference remove the files and raise one clear ``ValueError``."""
    why = ""
    try:
        again = load(path, trust=True)  # a pickled base was loaded by the caller already
        a, b = _structure(model), _structure(again)
        diff = next(((x, y) for x, y in zip(a, b, strict=False) if x != y), None)
        if diff is not None or len(a) != len(b):
            why = (f"module {diff[0][0] or '<root>'} rebuilds as {diff[1][1]}({diff[1][2]}), "
                   f"not {diff[0][1]}({diff[0][2]})" if diff else "the module tree differs")
        elif _root_settings(model) != _root_settings(again):
            mine, theirs = _root_settings(model), _root_settings(again)
            key = next(k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
            why = f"its attribute {key} = {mine.get(key)!r} rebuilds as {theirs.get(key)!r}"
        else:
            own, got = model.state_dict(), again.state_dict()
            bad = [k for k in own if k not in got or not torch.equal(
                own[k].detach().cpu(), got[k].detach().cpu())]
            why = f"tensor {bad[0]} differs after reloading" if bad else ""
    except Exception as err:  # noqa: BLE001 - reported as one line below
        why = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    if why:
        for f in written:
            f.unlink(missing_ok=True)
        raise ValueError(f"save: what would be written to {shown} does not rebuild "
                         f"{type(model).__name__} ({why}); pass spec= and spec_kwargs= "
                         "(the builder and its arguments)")


def _build_hf(base: dict[str, Any]) -> nn.Module:
    import transformers

    cls = getattr(transformers, base["class"], None)
    if cls is None:
        raise ValueError(f"load: transformers has no class {base['class']!r}")
    cfg_dict = dict(base["config"])
    cfg_cls = transformers.AutoConfig.for_model(cfg_dict.pop("model_type"))
    config = type(cfg_cls).from_dict(cfg_dict) if not isinstance(cfg_cls, type) else \
        cfg_cls.from_dict(cfg_dict)
    return cls._from_config(config)


def _build_base(meta: dict[str, Any], trust: bool = False) -> nn.Module:
    base = meta.get("base", {})
    kind = base.get("kind")
    if kind == "hf_config":
        return _build_hf(base)
    if kind == "spec":
        kwargs = base.get("kwargs") or {}
        model = (build_from_spec(base["spec"], **kwargs) if kwargs
                 else load_model_spec(base["spec"], trust=trust))
        model.__dict__["_prunekit_spec"] = base["spec"]
        model.__dict__["_prunekit_spec_kwargs"] = dict(kwargs)
        return model
    raise ValueError(f"load: unknown base kind {kind!r} in {_META}")


def _replace_module(model: nn.Module, op: dict[str, Any]) -> None:
    """Put a freshly built module (``op["spec"]`` called with ``op["kwargs"]``) at
    ``op["name"]``: how pruned layers of another type (e.g. a remapped embedding table) are
    restored. Only ``module:`` specs, like the base model's."""
    spec, name = op.get("spec", ""), op.get("name", "")
    if not spec.startswith("module:") or not name:
        raise ValueError(f"load: replace_module needs a 'module:' spec and a name, got {op!r}")
    new = build_from_spec(spec, **dict(op.get("kwargs") or {}))
    parent, _, attr = name.rpartition(".")
    try:
        owner = model.get_submodule(parent) if parent else model
    except AttributeError:
        raise ValueError(f"load: replace_module: the model has no module {parent!r}") from None
    setattr(owner, attr, new)


def _replay(model: nn.Module, history: list[dict[str, Any]], from_config: bool) -> None:
    for op in history:
        if op.get("op") == "drop_layers":
            replay_drop(model, op, skip_config_deletions=from_config)
        elif op.get("op") == "replace_module":
            _replace_module(model, op)
        else:
            raise ValueError(f"load: unknown history op {op.get('op')!r}")
    model.__dict__["_prunekit_history"] = list(history)


def load(path: str | Path, trust: bool = False) -> nn.Module:
    """Rebuild a model saved by :func:`save` (weights loaded strictly, in eval mode).

    ``trust``: the base is a pickled model file (saved from one): allow unpickling it."""
    path = Path(path)
    meta_path = path / _META
    if not meta_path.is_file():
        raise FileNotFoundError(f"load: {path} has no {_META} (not saved by prunekit.save)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"load: unsupported format {meta.get('format')!r} in {meta_path}")
    if meta["base"]["kind"] == "hf_pretrained":
        model = load_model_spec(f"hf:{path}")
        model.__dict__["_prunekit_history"] = list(meta.get("history", []))
        _load_extensions(model, path, meta)
        return model.eval()
    model = _build_base(meta, trust)
    _replay(model, meta.get("history", []), from_config=meta["base"]["kind"] == "hf_config")
    mods = dict(model.named_modules())
    for name, g in (meta.get("conv_groups") or {}).items():
        if isinstance(mods.get(name), nn.modules.conv._ConvNd):
            mods[name].groups = int(g)
    sd = load_weights(path / _WEIGHTS)
    own_meta = getattr(model.state_dict(), "_metadata", None)
    if own_meta is not None:  # layer versions (MNASNet reads its own) are the builder's
        sd = OrderedDict(sd)
        sd._metadata = own_meta  # type: ignore[attr-defined]
    resize_to_state_dict(model, sd)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"load: weights in {path} do not fit the rebuilt model: {exc}") from None
    _load_extensions(model, path, meta)
    return model.eval()


MODEL_DIRECTORIES.register(_META, load)
