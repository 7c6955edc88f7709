"""Model statistics: parameters (total / nonzero), MACs (dense / effective), size on disk
(dense safetensors vs prunekit's bitmask format, measured bytes) and forward peak memory."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.call import call_model
from prunekit._compressed import save_compressed
from prunekit.io import plain_state_dict, save_weights
from prunekit._memory import forward_peak_bytes, param_bytes
from prunekit.masks.layout import layout_for


@dataclass
class LayerStat:
    name: str
    type: str
    params: int
    nonzero: int
    macs: int
    effective_macs: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.params if self.params else 0.0


@dataclass
class ModelStats:
    """Whole-model statistics. ``macs`` counts multiply-accumulates (FLOPs = 2 x MACs) of
    convolutions and matrix products; ``effective_macs`` scales each layer by its weight density
    (the work a perfect sparse kernel would do)."""

    params: int
    nonzero: int
    macs: int
    effective_macs: int
    size_dense_bytes: int
    size_compressed_bytes: int
    peak_memory_bytes: int
    param_bytes: int
    memory_method: str
    layers: list[LayerStat] = field(default_factory=list)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.params if self.params else 0.0

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sparsity"] = self.sparsity
        d["flops"] = self.flops
        for lay, obj in zip(d["layers"], self.layers, strict=True):
            lay["sparsity"] = obj.sparsity
        return d


def check_inputs(model: nn.Module, example_inputs: Any) -> Any:
    """Run one no-grad forward; a failure becomes a ValueError naming the input shapes and the
    innermost module that was running when it failed."""
    was_training = model.training
    stack: list[str] = []
    failed: list[str] = []

    def pre(name):
        def hook(mod, args):
            stack.append(f"{name} ({type(mod).__name__})")
        return hook

    def post(mod, args, out):
        stack.pop()

    handles = []
    for name, mod in model.named_modules():
        handles.append(mod.register_forward_pre_hook(pre(name or "<root>")))
        handles.append(mod.register_forward_hook(post))
    model.eval()
    try:
        with torch.no_grad():
            return call_model(model, example_inputs)
    except Exception as exc:
        failed = stack[-1:] or [type(model).__name__]
        raise ValueError(
            f"example_inputs {describe_inputs(example_inputs)} do not fit {type(model).__name__}: "
            f"module {failed[0]} raised {type(exc).__name__}: {exc}"
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def module_type_name(module: nn.Module) -> str:
    """Class name, seeing through the subclass ``torch.nn.utils.parametrize`` creates."""
    from torch.nn.utils import parametrize

    cls = type(module)
    if parametrize.is_parametrized(module):
        cls = cls.__bases__[0]
    return cls.__name__


def describe_inputs(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}"
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(describe_inputs(v) for v in x) + ")"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {describe_inputs(v)}" for k, v in x.items()) + "}"
    return type(x).__name__


def _macs_per_module(model: nn.Module, example_inputs: Any) -> dict[str, int]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            call_model(model, example_inputs)
    finally:
        model.train(was_training)
    root = type(model).__name__
    out = {}
    for key, ops in counter.get_flop_counts().items():
        name = "" if key == root else key.removeprefix(root + ".") if key.startswith(root + ".") else None
        if key == "Global":
            name = "__total__"
        if name is not None:
            out[name] = sum(ops.values()) // 2
    return out


def _measure_sizes(model: nn.Module) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as d:
        dense = save_weights(model, Path(d) / "dense.safetensors").stat().st_size
        compressed = save_compressed(plain_state_dict(model), Path(d) / "sparse.safetensors")
    return dense, compressed


def bitmask_bytes(model: nn.Module) -> int:
    """Measured bytes of ``model``'s state in prunekit's bitmask format (1 bit per element
    plus the non-zero values for sparse tensors), as :func:`stats` reports it."""
    with tempfile.TemporaryDirectory() as d:
        return save_compressed(plain_state_dict(model), Path(d) / "sparse.safetensors")


def stats(model: nn.Module, example_inputs: Any) -> ModelStats:
    """Compute :class:`ModelStats` for ``model`` on ``example_inputs`` (model unchanged)."""

    check_inputs(model, example_inputs)
    macs = _macs_per_module(model, example_inputs)
    layers = []
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if not name or layout_for(mod) is None or not isinstance(w, torch.Tensor):
            continue
        own = {k: v for k, v in plain_state_dict(mod).items() if "." not in k}
        params = sum(v.numel() for v in own.values())
        nonzero = sum(int((v != 0).sum()) for v in own.values())
        m = macs.get(name, 0)
        density = float((w != 0).sum()) / w.numel() if w.numel() else 0.0
        layers.append(LayerStat(name, module_type_name(mod), params, nonzero, m, int(round(m * density))))
    sd = plain_state_dict(model)
    params = sum(v.numel() for k, v in sd.items() if _is_param(model, k))
    nonzero = sum(int((v != 0).sum()) for k, v in sd.items() if _is_param(model, k))
    total_macs = macs.get("__total__", 0)
    in_layers = sum(lay.macs for lay in layers)
    effective = total_macs - in_layers + sum(lay.effective_macs for lay in layers)
    dense_b, comp_b = _measure_sizes(model)
    was_training = model.training
    model.eval()
    try:
        peak, how = forward_peak_bytes(model, example_inputs)
    finally:
        model.train(was_training)
    return ModelStats(params, nonzero, total_macs, effective, dense_b, comp_b, peak,
                      param_bytes(model), how, layers)


def _is_param(model: nn.Module, key: str) -> bool:
    """True for parameters (not buffers such as BN running stats)."""
    prefix, _, leaf = key.rpartition(".")
    mod = model.get_submodule(prefix) if prefix else model
    return leaf not in dict(mod.named_buffers(recurse=False))


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def format_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def render_stats(st: ModelStats, title: str = "model statistics"):
    """A rich Table of per-layer and total statistics."""
    from rich.table import Table

    t = Table(title=title)
    for col in ("layer", "type", "params", "nonzero", "sparsity", "MACs", "eff. MACs"):
        t.add_column(col, justify="left" if col in ("layer", "type") else "right")
    for lay in st.layers:
        t.add_row(lay.name, lay.type, format_count(lay.params), format_count(lay.nonzero),
                  f"{lay.sparsity:.1%}", format_count(lay.macs), format_count(lay.effective_macs))
    t.add_section()
    t.add_row("total", "", format_count(st.params), format_count(st.nonzero), f"{st.sparsity:.1%}",
              format_count(st.macs), format_count(st.effective_macs))
    t.caption = (f"size dense {format_bytes(st.size_dense_bytes)} | compressed (bitmask) "
                 f"{format_bytes(st.size_compressed_bytes)} | forward peak {format_bytes(st.peak_memory_bytes)} "
                 f"activations ({st.memory_method}) + {format_bytes(st.param_bytes)} params")
    return t
