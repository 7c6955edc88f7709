"""ONNX -> ``torch.fx.GraphModule`` through onnx2torch, keeping the way back to the graph.

Each converted module remembers the ONNX node it came from and the initializer that holds its
weight, so masks computed on the torch side can be written into the original graph (the masked
reference that ONNX Runtime checks the pruned export against).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

_INSTALL = "install with: pip install 'prunekit[onnx]'"

# ONNX element types -> numpy dtypes of the inputs we can synthesise
_DTYPES = {1: np.float32, 10: np.float16, 11: np.float64, 6: np.int32, 7: np.int64}


def require_onnx():
    """Import ``onnx`` and ``onnx2torch`` or raise a clear ImportError."""
    try:
        import onnx
        import onnx2torch
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"ONNX pruning needs onnx and onnx2torch ({exc.name} is missing); "
                          f"{_INSTALL}") from None
    return onnx, onnx2torch


@dataclass(frozen=True)
class NodeRef:
    """The ONNX node behind a converted module and its weight initializer (if any)."""

    node: str
    op_type: str
    weight: str | None
    weight_transposed: bool = False  # Gemm with transB=0 stores its weight as (in, out)


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: Any  # numpy dtype


def load_model(path_or_model: Any):
    """A private copy of the user's ONNX model (a path or an ``onnx.ModelProto``)."""
    onnx, _ = require_onnx()
    if isinstance(path_or_model, onnx.ModelProto):
        return copy.deepcopy(path_or_model)
    if isinstance(path_or_model, (str, Path)):
        path = Path(path_or_model)
        if not path.is_file():
            raise ValueError(f"path_or_model: no ONNX file at {str(path)!r}")
        try:
            return onnx.load(str(path))
        except Exception as exc:  # protobuf DecodeError and friends
            raise ValueError(f"path_or_model: {str(path)!r} is not an ONNX model ({exc})") from None
    raise ValueError(f"path_or_model must be a path or an onnx.ModelProto, "
                     f"got {type(path_or_model).__name__}")


def inline_shared_initializers(model) -> None:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer (in place).

    The TorchScript exporter deduplicates equal initializers that way; onnx2torch expects a
    Conv's bias to be an initializer, and per-node copies let each layer be pruned alone.
    """
    onnx, _ = require_onnx()
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep = []
    for node in graph.node:
        if (node.op_type == "Identity" and node.input and node.input[0] in inits
                and node.output[0] not in outputs):
            t = onnx.TensorProto()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            graph.initializer.append(t)
            inits[t.name] = t
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def unsupported_ops(model) -> list[tuple[str, str]]:
    """``(op_type, node name)`` of every node onnx2torch has no converter for."""
    from onnx2torch.node_converters.registry import get_converter

    opsets = {o.domain: o.version for o in model.opset_import}
    bad = []
    for i, node in enumerate(model.graph.node):
        domain = node.domain or ""
        version = opsets.get(domain, opsets.get("ai.onnx", 0))
        try:
            get_converter(operation_type=node.op_type, version=version, domain=domain)
        except NotImplementedError:
            bad.append((node.op_type, node.name or f"#{i}"))
    return bad


def _onnx_opset(model) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def make_convertible(model) -> tuple[Any, str | None]:
    """``model`` itself when onnx2torch converts every op, else the same graph converted down to
    the newest opset at which it does (onnx2torch lags the newest opsets), with a note.

    Raises:
        ValueError: no opset works; the message names the ops and nodes.
    """
    bad = unsupported_ops(model)
    if not bad:
        return model, None
    from onnx import version_converter

    opset = _onnx_opset(model)
    if not any(o.domain not in ("", "ai.onnx") for o in model.opset_import):
        for target in range(opset - 1, 12, -1):
            try:
                down = version_converter.convert_version(model, target)
            except Exception:  # the converter has no adapter for some op at this opset
                continue
            if not unsupported_ops(down):
                return down, (f"graph converted from opset {opset} to {target} for onnx2torch "
                              f"(it has no converter for {', '.join(sorted({o for o, _ in bad}))} "
                              f"at opset {opset})")
    ops = sorted({op for op, _ in bad})
    where = ", ".join(f"{n} ({op})" for op, n in bad[:6]) + (" ..." if len(bad) > 6 else "")
    raise ValueError(f"ONNX op(s) {', '.join(ops)} cannot be converted by onnx2torch "
                     f"(nodes: {where}); the model is not pruned")


def to_torch(model) -> tuple[nn.Module, dict[str, NodeRef]]:
    """Convert ``model`` (not modified; see :func:`make_convertible`) to a GraphModule; map
    module names to ONNX nodes."""
    _, onnx2torch = require_onnx()
    try:
        gm = onnx2torch.convert(copy.deepcopy(model), attach_onnx_mapping=True)
    except NotImplementedError as exc:  # a converter refusing one attribute combination
        raise ValueError(f"onnx2torch cannot convert this model: {exc}") from None
    inits = {t.name for t in model.graph.initializer}
    by_output = {tuple(n.output): n for n in model.graph.node}
    refs: dict[str, NodeRef] = {}
    for name, mod in gm.named_modules():
        mapping = getattr(mod, "onnx_mapping", None)
        node = by_output.get(tuple(mapping.outputs)) if mapping is not None else None
        if node is None:
            continue
        weight = node.input[1] if len(node.input) > 1 and node.input[1] in inits else None
        transposed = node.op_type == "Gemm" and not any(
            a.name == "transB" and a.i for a in node.attribute)
        refs[name] = NodeRef(node.name, node.op_type, weight, transposed)
    gm.eval()
    return gm, refs


def input_spec(model, input_shape: tuple[int, ...] | None) -> InputSpec:
    """Name, shape and dtype of the graph's single data input."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"only single-input graphs are supported; this one has "
                         f"{len(inputs)} inputs ({', '.join(i.name for i in inputs)})")
    inp = inputs[0]
    ttype = inp.type.tensor_type
    dtype = _DTYPES.get(ttype.elem_type)
    if dtype is None:
        raise ValueError(f"input {inp.name!r}: element type {ttype.elem_type} is not supported")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
    if input_shape is None:
        if any(d is None or d <= 0 for d in dims):
            raise ValueError(f"input {inp.name!r} has dynamic dimensions {dims}; "
                             f"give input_shape= (CLI --input-shape)")
        return InputSpec(inp.name, tuple(dims), dtype)
    shape = tuple(int(v) for v in input_shape)
    if not shape or any(v <= 0 for v in shape):
        raise ValueError(f"input_shape must be positive integers, got {input_shape!r}")
    if len(shape) != len(dims) or any(d is not None and d > 0 and d != s
                                      for d, s in zip(dims, shape, strict=False)):
        raise ValueError(f"input_shape {shape} does not fit input {inp.name!r} of shape {dims}")
    return InputSpec(inp.name, shape, dtype)


def dynamic_batch(model) -> bool:
    """Whether the data input's first dimension is symbolic."""
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in inits:
            dims = inp.type.tensor_type.shape.dim
            return bool(dims) and not dims[0].HasField("dim_value")
    return False


def example_input(spec: InputSpec, seed: int = 0) -> torch.Tensor:
    """A random input (never zeros) of the spec's shape and dtype."""
    gen = torch.Generator().manual_seed(seed)
    if np.issubdtype(spec.dtype, np.integer):
        return torch.randint(0, 100, spec.shape, generator=gen).to(torch.from_numpy(
            np.zeros(0, spec.dtype)).dtype)
    return torch.randn(spec.shape, generator=gen).to(torch.from_numpy(np.zeros(0, spec.dtype)).dtype)
