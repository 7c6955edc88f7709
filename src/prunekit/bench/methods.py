"""Pruning methods a sweep (``prunekit analyze``) can apply, parsed from names.

- ``<criterion>-unstructured`` (``magnitude-unstructured``, ``l1-unstructured``, ``unstructured``):
  :func:`prunekit.prune_weights` with global scope; the ratio is the sparsity.
- ``N:M`` (``2:4``): :func:`prunekit.prune_weights` with that pattern; the ratio is ignored
  (the pattern fixes it), so the sweep runs it once.
- a name registered in :data:`EXTRA_METHODS` (e.g. ``dynamic`` and ``tome``, registered by
  :mod:`prunekit.dynamic` when it is imported): that area's function applies it at the ratio
  and returns what it measured (realised sparsity, tokens kept, ...), shown beside latency.
- any other name is a structured criterion (``l1``, ``l2``, ``taylor``, ``random`` …): channels
  are removed with :func:`prunekit.plan_structured` at the given ratio.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from prunekit._registry import Registry
from prunekit.masks.select import parse_pattern
from prunekit.structural import plan_structured
from prunekit.weights import prune_weights

Kind = Literal["unstructured", "nm", "structured", "dynamic"]

ExtraMethod = Callable[..., dict[str, Any]]
"""``fn(model, example, ratio, calib_data=None) -> stats``: changes ``model`` in place (a copy
the sweep owns) and returns named figures of what it does, e.g. ``{"tokens kept": 0.51}``."""

EXTRA_METHODS: Registry[ExtraMethod] = Registry("analyze method")


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name.

    Attributes:
        name: as the user wrote it.
        kind: ``unstructured``, ``nm`` or ``structured``.
        criterion: importance criterion name.
        pattern: ``(n, m)`` for N:M methods.
    """

    name: str
    kind: Kind
    criterion: str
    pattern: tuple[int, int] | None = None

    @property
    def fixed_ratio(self) -> float | None:
        """The zero fraction an N:M pattern fixes (None when the sweep ratio applies)."""
        return None if self.pattern is None else 1.0 - self.pattern[0] / self.pattern[1]


def parse_method(name: str) -> MethodSpec:
    """Parse a method name (ValueError naming the argument when it is malformed)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"methods entries must be non-empty strings, got {name!r}")
    key = name.strip().lower()
    if key in EXTRA_METHODS:
        return MethodSpec(name, "dynamic", key)
    if ":" in key:
        try:
            return MethodSpec(name, "nm", "l1", parse_pattern(key))
        except ValueError as e:
            raise ValueError(f"methods entry {name!r}: {e}") from None
    if key == "unstructured" or key.endswith("-unstructured"):
        crit = key[: -len("-unstructured")] if key != "unstructured" else "l1"
        return MethodSpec(name, "unstructured", crit or "l1")
    return MethodSpec(name, "structured", key)


def _structured(model: nn.Module, example: Any, ratio: float, criterion: str,
                **kwargs: Any) -> nn.Module:
    params = inspect.signature(plan_structured).parameters
    kw = {k: v for k, v in {"ratio": ratio, "criterion": criterion, **kwargs}.items()
          if k in params or any(p.kind is p.VAR_KEYWORD for p in params.values())}
    plan = plan_structured(model, example, **kw)
    return plan.apply()


def apply_method(spec: MethodSpec, model: nn.Module, example: Any, ratio: float, *,
                 calib_data: Iterable[Any] | None = None,
                 loss_fn: Callable[[Any, Any], Any] | None = None,
                 structured_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Prune ``model`` with ``spec`` at ``ratio``; returns the pruned model (``model`` itself
    for weight masks, in place)."""

    if spec.kind == "structured":
        return _structured(model, example, ratio, spec.criterion, **(structured_kwargs or {}))
    if spec.kind == "nm":
        prune_weights(model, criterion=spec.criterion, pattern=spec.pattern,
                      skip_incompatible=True, calib_data=calib_data, loss_fn=loss_fn)
    else:
        prune_weights(model, sparsity=ratio, criterion=spec.criterion, scope="global",
                      calib_data=calib_data, loss_fn=loss_fn)
    return model


def apply_extra(spec: MethodSpec, model: nn.Module, example: Any, ratio: float, *,
                calib_data: Iterable[Any] | None = None) -> dict[str, Any]:
    """Apply a registered method to ``model`` in place; return its measured figures."""
    return dict(EXTRA_METHODS.get(spec.criterion)(model, example, ratio, calib_data=calib_data))


def layer_profile(dense: nn.Module, pruned: nn.Module) -> tuple[list[dict[str, Any]], str]:
    """Per-layer kept fraction: output channels for structured changes, else weight density."""
    old = {n: m for n, m in dense.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
    rows, unit = [], "weights"
    new = dict(pruned.named_modules())
    width = {nn.Linear: "out_features"}
    for name, m in old.items():
        p = new.get(name)
        if p is None:
            rows.append({"name": name, "kept": 0.0, "total": 1, "removed": True})
            unit = "channels"
            continue
        attr = width.get(type(m), "out_channels")
        a, b = getattr(m, attr, None), getattr(p, attr, None)
        if a and b is not None and b != a:
            unit = "channels"
        w = p.weight
        density = float((w != 0).sum()) / max(w.numel(), 1)
        rows.append({"name": name, "kept_channels": (b / a) if a else None, "density": density,
                     "total": int(a or 0)})
    for r in rows:
        if "removed" not in r:
            r["kept"] = r["kept_channels"] if unit == "channels" else r["density"]
    return rows, unit
