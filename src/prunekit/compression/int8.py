"""Int8 on top of pruning, through ONNX Runtime's maintained quantizer (no int8 kernels here).

Deep Compression's weight sharing shrinks files, not time; on CPUs the speed half of "prune +
quantize" is int8 (Han, Mao & Dally, ICLR 2016, discuss both). :func:`quantize` exports the
(pruned) model to ONNX, hands it to ``onnxruntime.quantization`` — ``quantize_static`` (QDQ,
u8 activations / s8 per-channel weights, calibrated on ``calib_data``) or, without calibration
data, ``quantize_dynamic`` — and returns an :class:`Int8Model` that runs it in an ONNX Runtime
session. Compute nodes that the quantizer left in float (ops it does not cover) are named in
``fp32_nodes`` and a warning.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from prunekit.bench.metrics import ModelCost, model_cost

COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
QUANT_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
             "DynamicQuantizeMatMul", "QGemm", "MatMulIntegerToFloat")


def _ort():
    try:
        import onnxruntime
        import onnxruntime.quantization  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("quantize(runtime='onnxruntime') needs onnxruntime and onnx; install "
                          "with: pip install 'prunekit[onnx]'") from None
    return onnxruntime


def _as_tuple(x: Any) -> tuple[Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def export_onnx(model: nn.Module, example: Any, path: str) -> list[str]:
    """Export with a dynamic batch axis (TorchScript exporter); returns the input names."""
    args = _as_tuple(example)
    names = [f"input_{i}" for i in range(len(args))]
    axes = {n: {0: "batch"} for n in names}
    axes["output_0"] = {0: "batch"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), args, path, input_names=names, output_names=["output_0"],
                          dynamic_axes=axes, dynamo=False, opset_version=17)
    return names


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over batches of model inputs."""

    def __init__(self, names: list[str], batches: Iterable[Any]) -> None:
        self.names = names
        self.it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.it, None)
        if batch is None:
            return None
        xs = _as_tuple(batch)
        return {n: t.detach().cpu().numpy() for n, t in zip(self.names, xs, strict=True)}


def _pre_process(path: str) -> str:
    """ONNX Runtime's recommended pre-processing (graph optimization folds constants such as
    exported BatchNorm into initializers, then shape inference); the input path if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = path.replace(".onnx", ".pre.onnx")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(path, out, skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - optional step; quantization works without it
        return path
    return out


def float_nodes(onnx_path: str) -> list[str]:
    """Compute nodes (Conv/MatMul/Gemm) whose inputs are not dequantized int8 in a graph."""
    import onnx

    graph = onnx.load(onnx_path).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    inits = {i.name for i in graph.initializer}
    out = []
    for n in graph.node:
        if n.op_type not in COMPUTE_OPS:
            continue
        srcs = [producer.get(i, "initializer" if i in inits else "input") for i in n.input[:2]]
        if not all(s == "DequantizeLinear" for s in srcs):
            out.append(n.name or n.op_type)
    return out


@dataclass
class Int8Model:
    """An int8 ONNX model in an ONNX Runtime session; call it like the torch model.

    Attributes:
        path: the quantized ``.onnx`` file.
        mode: ``static`` (calibrated), ``dynamic``, or ``fp32`` (:func:`float_model`).
        fp32_nodes: compute nodes left in float by the quantizer.
    """

    path: str
    mode: str
    input_names: list[str]
    session: Any = field(repr=False)
    fp32_nodes: list[str] = field(default_factory=list)

    def __call__(self, *inputs: Tensor) -> Tensor:
        """Run on torch tensors (CPU); returns the first output."""
        feed = {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs, strict=True)}
        return torch.from_numpy(self.session.run(None, feed)[0])

    def module(self, source: nn.Module) -> OnnxModule:
        """This model as an ``nn.Module`` for :func:`prunekit.bench.compare` (see
        :class:`OnnxModule`); ``source`` is the torch model it was quantized from."""
        return OnnxModule(self, source)


class OnnxModule(nn.Module):
    """An :class:`Int8Model` as an ``nn.Module`` the bench harness can time.

    The ``onnxruntime`` bench runtime loads :attr:`onnx_path` into its own session (no
    re-export), with the same options as the fp32 models it exports; other runtimes refuse it.
    Its cost (:meth:`bench_cost`) is the source model's parameters and MACs with the ``.onnx``
    file's size. Copies share the session (it is read-only).
    """

    def __init__(self, model: Int8Model, source: nn.Module) -> None:
        super().__init__()
        self.onnx_path = model.path
        self._held = (model, copy.deepcopy(source).eval())  # a tuple: not a submodule

    def forward(self, *inputs: Tensor) -> Tensor:
        return self._held[0](*inputs)

    def bench_cost(self, inputs: Any) -> ModelCost:
        c = model_cost(self._held[1], inputs)
        return ModelCost(c.params, c.nonzero_params, os.path.getsize(self.onnx_path), c.macs,
                         c.effective_macs)

    def __deepcopy__(self, memo: dict) -> OnnxModule:
        return self


def _session(path: str, threads: int | None):
    ort = _ort()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def float_model(model: nn.Module, example_inputs: Any, threads: int | None = None) -> Int8Model:
    """The fp32 model in the same runtime (ONNX Runtime), for like-for-like comparisons."""
    _ort()
    path = os.path.join(tempfile.mkdtemp(prefix="prunekit-fp32-"), "fp32.onnx")
    names = export_onnx(model, example_inputs, path)
    return Int8Model(path, "fp32", names, _session(path, threads), [])


def quantize(model: nn.Module, dtype: str = "int8", runtime: str = "onnxruntime", *,
             example_inputs: Any = None, calib_data: Iterable[Any] | None = None,
             path: str | os.PathLike | None = None, per_channel: bool = True,
             threads: int | None = None) -> Int8Model:
    """Quantize ``model`` to int8 with ONNX Runtime's quantizer.

    Args:
        model: a plain or structurally pruned ``nn.Module`` (finalize masks first).
        dtype: ``"int8"`` (the only one).
        runtime: ``"onnxruntime"`` (the only one).
        example_inputs: a tensor or tuple of tensors the model is exported with (batch axis
            dynamic); defaults to the first calibration batch.
        calib_data: batches of inputs for static quantization; ``None``: dynamic quantization
            (weights int8, activations quantized on the fly; MatMul/Gemm only).
        path: where the int8 ``.onnx`` goes (default: a temporary folder).
        per_channel: per-output-channel weight scales (static and dynamic; dynamic
            per-channel halves MiniLM's output error at the same speed).
        threads: ONNX Runtime intra-op threads (default: its own).

    Returns:
        An :class:`Int8Model`; compute nodes left in float are in ``fp32_nodes`` (warned).

    Raises:
        ValueError: unknown dtype/runtime, no example input, export failure (named).
    """
    if dtype != "int8":
        raise ValueError(f"dtype must be 'int8', got {dtype!r}")
    if runtime != "onnxruntime":
        raise ValueError(f"runtime must be 'onnxruntime', got {runtime!r}")
    _ort()
    from onnxruntime import quantization as q

    batches = None if calib_data is None else list(calib_data)
    if example_inputs is None:
        if not batches:
            raise ValueError("quantize needs example_inputs= or non-empty calib_data=")
        example_inputs = batches[0]
    tmp = tempfile.mkdtemp(prefix="prunekit-int8-")
    fp32 = os.path.join(tmp, "fp32.onnx")
    out = str(path) if path is not None else os.path.join(tmp, "int8.onnx")
    try:
        names = export_onnx(model, example_inputs, fp32)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ValueError(f"quantize: ONNX export of {type(model).__name__} failed: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    fp32 = _pre_process(fp32)
    if batches is None:
        q.quantize_dynamic(fp32, out, weight_type=q.QuantType.QInt8, per_channel=per_channel)
        mode = "dynamic"
    else:
        q.quantize_static(fp32, out, _Reader(names, batches), quant_format=q.QuantFormat.QDQ,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                          per_channel=per_channel)
        mode = "static"
    left = float_nodes(out)
    if left:
        warnings.warn(f"quantize: {len(left)} compute node(s) stay fp32 (not covered by ONNX "
                      f"Runtime's {mode} quantizer): {', '.join(left[:10])}", stacklevel=2)
    return Int8Model(out, mode, names, _session(out, threads), left)


__all__ = ["COMPUTE_OPS", "Int8Model", "OnnxModule", "export_onnx", "float_model", "float_nodes", "quantize"]
