"""ONNX Runtime as a benchmark runtime: ``torch.onnx.export`` then an ``InferenceSession``.

The model is exported at the exact input shapes timed (static shapes, like the other runtimes),
first with the torch.export-based exporter and, if that fails, the legacy TorchScript one.
On CUDA inputs and outputs stay on the device through I/O binding, so no host copy is timed.
A model that is already an ONNX file (an ``nn.Module`` with an ``onnx_path`` attribute, such as
an int8 model from a quantizer) is not re-exported: its file is loaded into the same kind of
session, so it is timed like-for-like with the exported fp32 models.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.inputs import tensor_leaves
from prunekit.bench.runtime_base import RunFn, RuntimeUnavailable


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise RuntimeUnavailable(
            "runtime='onnxruntime' needs the onnxruntime package: pip install 'prunekit[onnx]'"
        ) from e
    return onnxruntime


def _export(model: nn.Module, example: Any, path: str) -> str:
    """Export to ``path``; returns which exporter worked. RuntimeError names both failures."""
    args, kwargs = (example if isinstance(example, tuple) else (example,)), {}
    if isinstance(example, dict):
        args, kwargs = (), example
    errors = []
    for dynamo in (True, False):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(model, args, path, kwargs=kwargs or None, dynamo=dynamo,
                                  external_data=False)
            return "dynamo" if dynamo else "torchscript"
        except Exception as e:  # noqa: BLE001 - exporters raise many types; both are reported
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            errors.append(f"{'torch.export' if dynamo else 'TorchScript'} exporter: "
                          f"{type(e).__name__}: {first[:300]}")
    raise RuntimeError(f"ONNX export of {type(model).__name__} failed; " + "; ".join(errors))


def _session(path: str, device: torch.device, threads: int, spinning: bool = True):
    """An InferenceSession: ``threads`` intra-op threads, sequential execution, all graph
    optimisations.

    Pool threads spin between the operators of a run (fast hand-offs) but stop spinning when
    the run returns (``session.force_spinning_stop``): a session left spinning keeps burning a
    core for milliseconds after each run, which would slow whatever runs next on the same
    cores: the other model of an interleaved comparison, or the rest of the user's program.
    ``spinning=False`` lets idle pool threads sleep inside a run too
    (``session.intra_op.allow_spinning=0``), which helps when other processes share the cores.
    """
    ort = _ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeUnavailable(
                "runtime='onnxruntime' with device='cuda' needs onnxruntime-gpu "
                f"(available providers: {ort.get_available_providers()})")
        providers = [("CUDAExecutionProvider", {"device_id": device.index or 0})]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(path, opts, providers=providers)


def _np_dtype(t: Tensor):
    return torch.empty((), dtype=t.dtype).numpy().dtype


def prepare_onnxruntime(model: nn.Module, example: Any, device: torch.device,
                        threads: int, spinning: bool = True) -> RunFn:
    """Export ``model`` at the shapes of ``example`` and return ``run(inputs) -> outputs``."""
    _ort()
    path = getattr(model, "onnx_path", None)
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="prunekit-onnx-"), "model.onnx")
        _export(model, example, path)
    sess = _session(path, device, threads, spinning)
    names = [i.name for i in sess.get_inputs()]
    leaves = tensor_leaves(example)
    if len(names) != len(leaves):
        raise RuntimeError(
            f"ONNX graph of {type(model).__name__} has {len(names)} inputs but the example has "
            f"{len(leaves)} tensors; pass only the tensors the model uses")
    out_names = [o.name for o in sess.get_outputs()]

    if device.type != "cuda":
        def run(x: Any) -> Any:
            feed = {n: t.detach().cpu().numpy()
                    for n, t in zip(names, tensor_leaves(x), strict=True)}
            return sess.run(out_names, feed)
        return run

    def run_cuda(x: Any) -> Any:
        binding = sess.io_binding()
        for n, t in zip(names, tensor_leaves(x), strict=True):
            t = t.contiguous()
            binding.bind_input(n, "cuda", device.index or 0, _np_dtype(t), list(t.shape),
                               t.data_ptr())
        for n in out_names:
            binding.bind_output(n, "cuda", device.index or 0)
        sess.run_with_iobinding(binding)
        return binding.get_outputs()

    return run_cuda


export_onnx = _export  # public names for the deploy step (same behaviour)
onnx_session = _session
