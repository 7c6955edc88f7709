"""Which torchvision builder, with which arguments, rebuilds a model built by torchvision.

A user builds ``torchvision.models.get_model(name, weights=None, **kwargs)`` and keeps only the
model. :func:`torchvision_builder` recovers ``(name, kwargs)``: it tries the builders of the
model's own family and class, each on the meta device (no memory, no download), and keeps the one
whose state-dict keys, grouped convolutions and shapes match best. Constructor arguments are
read back from the model: a root attribute that is also a constructor parameter
(``aux_logits``, ``transform_input``, ``image_size``, ``num_classes`` ...) and differs from the
builder's default becomes a keyword argument.

Builders that compute their widths with tensor arithmetic (RegNet) cannot run on the meta
device; they are built with only their parameters moved to the meta device as they are created.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

_SCALARS = (bool, int, float, str)


@contextlib.contextmanager
def _params_on_meta() -> Iterator[None]:
    """Every parameter registered inside the block lives on the meta device (buffers and the
    builder's own arithmetic stay on the CPU)."""
    register = nn.Module.register_parameter

    def to_meta(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(self, name, param)

    nn.Module.register_parameter = to_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """``torch.nn.init`` functions leave tensors as they are (empty builds need no values)."""
    names = [n for n in vars(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}
    for n in names:
        setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


def _build_empty(name: str, kwargs: dict[str, Any]) -> nn.Module | None:
    import torchvision

    for ctx in (lambda: torch.device("meta"), _params_on_meta):
        try:
            with ctx(), _no_init():
                return torchvision.models.get_model(name, **kwargs)
        except Exception:  # noqa: BLE001, S112 - builders needing other arguments are skipped
            continue
    return None


def _plain(model: nn.Module) -> dict[str, Any]:
    """The root's plain attributes (``base_width`` tells ResNeXt from a grouped ResNet)."""
    return {k: v for k, v in vars(model).items()
            if not k.startswith("_") and k != "training" and isinstance(v, _SCALARS)}


def _stateless(model: nn.Module) -> dict[str, str]:
    """Settings of the modules without tensors (dropout rates, pooling sizes, activations),
    which pruning does not change: EfficientNet-B1 and B2 differ only there and in widths."""
    return {n: f"{type(m).__name__}({m.extra_repr()})" for n, m in model.named_modules()
            if not m._parameters and not m._buffers and not m._modules}


def _settings(model: nn.Module) -> dict[str, Any]:
    """Root attributes that are constructor parameters of the model's class."""
    try:
        params = set(inspect.signature(type(model).__init__).parameters) - {"self"}
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in vars(model).items()
            if k in params and isinstance(v, _SCALARS)}


def _candidate(name: str, base: dict[str, Any], model: nn.Module
               ) -> tuple[nn.Module, dict[str, Any]] | None:
    """The builder ``name`` built empty, with the constructor arguments ``model`` differs in."""
    import torchvision

    cand = _build_empty(name, base)
    if cand is None or type(cand) is not type(model):
        return None
    mine, theirs = _settings(model), _settings(cand)
    extra = {k: v for k, v in mine.items() if theirs.get(k) != v}
    while extra:
        try:
            with _params_on_meta(), _no_init():
                return torchvision.models.get_model(name, **base, **extra), {**base, **extra}
        except TypeError as err:  # the builder fixes this argument itself: drop it
            fixed = re.search(r"multiple values for keyword argument '(\w+)'", str(err))
            if fixed is None or fixed.group(1) not in extra:
                return None
            extra.pop(fixed.group(1))
        except Exception:  # noqa: BLE001 - e.g. an image size the patch size does not divide
            return None
    return cand, dict(base)


def _grouped(model: nn.Module) -> list[str]:
    """Names of the grouped convolutions (ResNeXt vs ResNet: same keys, other structure)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)
            and isinstance(m.groups, int) and m.groups > 1]


def torchvision_builder(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """``(builder name, keyword arguments)`` that rebuild ``model``'s architecture, or None.

    Only builders of the model's own family and module are tried, with ``weights=None`` (and
    ``weights_backbone=None`` outside classification) so nothing downloads.
    """
    mod = type(model).__module__
    if not mod.startswith("torchvision.models"):
        return None
    import torchvision

    parts = mod.split(".")
    family = parts[2] if len(parts) > 3 else None
    ns = importlib.import_module(f"torchvision.models.{family}") if family else torchvision.models
    base: dict[str, Any] = {"weights": None} if family is None else \
        {"weights": None, "weights_backbone": None}
    own = model.state_dict()
    keys = set(own)
    best: tuple[tuple[int, bool, int, int, int], str, dict[str, Any]] | None = None
    for name in torchvision.models.list_models(module=ns):
        if torchvision.models.get_model_builder(name).__module__ != mod:
            continue  # builders live beside their model class
        found = _candidate(name, base, model)
        if found is None:
            continue
        cand, kwargs = found
        csd = cand.state_dict()
        if not keys <= set(csd):
            continue
        score = (len(set(csd) - keys), _grouped(cand) != _grouped(model),
                 len(set(_plain(cand).items()) ^ set(_plain(model).items())),
                 len(set(_stateless(cand).items()) ^ set(_stateless(model).items())),
                 sum(csd[k].shape != own[k].shape for k in keys))
        if best is None or score < best[0]:
            best = (score, name, kwargs)
    return None if best is None else (best[1], best[2])


__all__ = ["torchvision_builder"]
