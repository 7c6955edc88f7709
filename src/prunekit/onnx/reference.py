"""The masked reference in ONNX and the ONNX Runtime comparison.

Removing channel ``c`` from a layer does to each consumer exactly what zeroing the consumer's
input slice ``c`` does (the reasoning of :mod:`prunekit.structural.verify`). The *masked
reference* is therefore the original graph with those weight slices set to zero: same ops,
same opset, run by ONNX Runtime. The pruned export must reproduce its outputs.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from prunekit.onnx.importer import NodeRef

_INSTALL = "install with: pip install 'prunekit[onnx]'"


def run_ort(model_or_bytes: Any, feed: dict[str, np.ndarray], threads: int = 1) -> list[np.ndarray]:
    """Outputs of ONNX Runtime (CPU) on ``feed``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError(f"ONNX verification needs onnxruntime; {_INSTALL}") from None
    data = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest absolute difference over matching outputs (inf when shapes differ)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=False)):
        return float("inf")
    return max((float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())
                for x, y in zip(a, b, strict=False) if x.size), default=0.0)


def input_zero_mask(module: nn.Module, keep_in: Tensor) -> Tensor | None:
    """Bool mask (torch weight layout) of the weight entries reading removed input channels.

    ``None`` when the module's weight layout is not a Conv/Linear one.
    """
    w = getattr(module, "weight", None)
    if not isinstance(w, Tensor):
        return None
    zero = torch.zeros(w.shape, dtype=torch.bool)
    if isinstance(module, nn.Linear):
        removed = torch.ones(w.shape[1], dtype=torch.bool)
        removed[keep_in] = False
        zero[:, removed] = True
        return zero
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        cin, groups = module.in_channels, module.groups
        per_in, per_out = cin // groups, module.out_channels // groups
        removed = torch.ones(cin, dtype=torch.bool)
        removed[keep_in] = False
        for c in torch.nonzero(removed).flatten().tolist():
            g = c // per_in
            zero[g * per_out:(g + 1) * per_out, c % per_in] = True
        return zero
    return None


def write_zeros(model, refs: dict[str, NodeRef],
                zero_masks: dict[str, Tensor]) -> tuple[Any, list[str]]:
    """Copy of ``model`` whose weight initializers are zero where ``zero_masks`` say.

    Args:
        model: the ONNX model (not modified).
        refs: module name -> ONNX node (from :func:`prunekit.onnx.importer.to_torch`).
        zero_masks: module name -> bool mask in the torch weight's layout.

    Returns:
        ``(masked model, modules that could not be mapped)``.
    """
    from onnx import numpy_helper

    out = copy.deepcopy(model)
    inits = {t.name: t for t in out.graph.initializer}
    users: dict[str, int] = {}
    for node in out.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    unmapped = []
    for name, zero in zero_masks.items():
        ref = refs.get(name)
        t = inits.get(ref.weight) if ref is not None and ref.weight else None
        if t is None or users.get(ref.weight, 0) != 1:
            unmapped.append(name)
            continue
        arr = numpy_helper.to_array(t).copy()
        z = zero.numpy()
        if ref.weight_transposed:
            z = z.T
        if z.shape != arr.shape:
            unmapped.append(name)
            continue
        arr[z] = 0
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return out, unmapped
