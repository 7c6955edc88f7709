"""OpenVINO as a benchmark runtime and deploy target (CPU).

The model is converted with ``openvino.convert_model`` (PyTorch frontend) at the exact input
shapes timed (static shapes, like the other runtimes) and compiled for the ``CPU`` device with
the ``LATENCY`` performance hint, one stream and ``threads`` inference threads. The inference
precision is pinned to the model's dtype: on CPUs with native bf16 (AVX512-BF16, AMX) OpenVINO
would otherwise run an fp32 model in bf16, which is faster but not a like-for-like comparison.
Artifacts are OpenVINO IR (``model.xml`` + ``model.bin``), saved without fp16 compression.

Reference: Intel, *OpenVINO toolkit* (https://docs.openvino.ai), CPU device performance hints.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from prunekit.bench.inputs import tensor_leaves
from prunekit.bench.runtime_base import RunFn, RuntimeUnavailable

_PRECISION = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


def _ov():
    try:
        import openvino
    except ImportError as e:
        raise RuntimeUnavailable(
            "runtime='openvino' needs the openvino package: pip install 'prunekit[openvino]'"
        ) from e
    return openvino


def _dtype_of(model: nn.Module) -> torch.dtype:
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.float32


def convert_openvino(model: nn.Module, example: Any) -> Any:
    """An ``openvino.Model`` of ``model`` with static input shapes taken from ``example``.

    Raises:
        RuntimeUnavailable: openvino is not installed.
        RuntimeError: conversion failed (the message names the model).
    """
    ov = _ov()
    args = example if isinstance(example, tuple) else (example,)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            om = ov.convert_model(model, example_input=args if len(args) > 1 else args[0])
        shapes = [list(t.shape) for t in tensor_leaves(example)]
        if len(shapes) == len(om.inputs):
            om.reshape({i: ov.PartialShape(s) for i, s in enumerate(shapes)})
    except Exception as e:  # noqa: BLE001 - the frontend raises many types; re-raised with context
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise RuntimeError(f"OpenVINO conversion of {type(model).__name__} failed: "
                           f"{type(e).__name__}: {first[:300]}") from e
    return om


def save_openvino(om: Any, path: str) -> None:
    """Write OpenVINO IR (``path`` ends in ``.xml``; weights go next to it, uncompressed)."""
    _ov().save_model(om, path, compress_to_fp16=False)


def compile_openvino(model_or_path: Any, threads: int, precision: str = "f32") -> Any:
    """A compiled model on the CPU device: latency hint, one stream, ``threads`` threads."""
    ov = _ov()
    cfg = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
           "INFERENCE_PRECISION_HINT": precision}
    return ov.Core().compile_model(model_or_path, "CPU", cfg)


def openvino_runner(compiled: Any) -> RunFn:
    """``run(inputs) -> [outputs as numpy]`` on one reused infer request."""
    req = compiled.create_infer_request()
    outs = list(compiled.outputs)

    def run(x: Any) -> list[Any]:
        res = req.infer({i: t.detach().cpu().numpy() for i, t in enumerate(tensor_leaves(x))})
        return [res[o] for o in outs]

    return run


def prepare_openvino(model: nn.Module, example: Any, device: torch.device,
                     threads: int) -> RunFn:
    """Convert ``model`` at the shapes of ``example`` and return ``run(inputs) -> outputs``."""
    if device.type != "cpu":
        raise RuntimeUnavailable(f"runtime='openvino' runs on device='cpu' here, got "
                                 f"device={str(device)!r}")
    _ov()
    dtype = _dtype_of(model)
    if dtype not in _PRECISION:
        raise RuntimeUnavailable(f"runtime='openvino' has no inference precision for {dtype}")
    compiled = compile_openvino(convert_openvino(model, example), threads, _PRECISION[dtype])
    return openvino_runner(compiled)
