"""Inference runtimes a model is timed under: eager, torch.compile, CUDA-graph replay, ONNX Runtime.

Every runtime turns ``(model, example inputs, device, threads)`` into a plain callable
``run(inputs) -> outputs`` that is synchronous with the harness's clock (CUDA work is timed
with CUDA events). Registration is explicit (:data:`RUNTIMES`); users can add their own.

Runtimes that cannot run on the requested device raise a :class:`RuntimeUnavailable` whose
message names the argument to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from prunekit._registry import Registry
from prunekit.call import call_model
from prunekit.bench.inputs import tensor_leaves
from prunekit.bench.onnx_runtime import prepare_onnxruntime
from prunekit.bench.openvino_runtime import prepare_openvino
from prunekit.bench.runtime_base import RunFn, RuntimeUnavailable


@dataclass(frozen=True)
class Runtime:
    """A registered runtime.

    Attributes:
        name: registry key (``eager``, ``compile``, ``cudagraph``, ``onnxruntime``).
        prepare: ``prepare(model, example, device, threads) -> run``; may compile or export.
        devices: device types it supports (``cpu``, ``cuda``).
        description: one line for reports.
        device_timed: ``True`` when its GPU work runs on PyTorch's current stream (CUDA events
            time it); ``False`` for runtimes with their own streams (timed by the wall clock
            between device synchronizations).
        memory_format: ``True`` when the model's memory format (``channels_last``) changes
            what runs; ``False`` for runtimes that export the graph (the layout is theirs).
    """

    name: str
    prepare: Callable[[nn.Module, Any, torch.device, int], RunFn]
    devices: tuple[str, ...]
    description: str
    device_timed: bool = True
    memory_format: bool = True


RUNTIMES: Registry[Runtime] = Registry("runtime")


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse and check a device. ``cuda`` on a machine without CUDA raises a clear ValueError."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r} is not a valid torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but this machine has no usable CUDA device "
            "(torch.cuda.is_available() is False); use device='cpu'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: only 'cpu' and 'cuda' are supported")
    return dev


def get_runtime(name: str) -> Runtime:
    """Look up a runtime by name (ValueError naming the known ones if unknown)."""
    if not isinstance(name, str):
        raise ValueError(f"runtime must be a string, got {name!r}")
    try:
        return RUNTIMES.get(name)
    except ValueError:
        raise ValueError(f"runtime={name!r} is unknown; known: {', '.join(RUNTIMES.names())}") \
            from None


def prepare_runtime(name: str, model: nn.Module, example: Any, device: str | torch.device,
                    threads: int = 1) -> RunFn:
    """Build the callable for ``model`` under runtime ``name`` on ``device``.

    Raises:
        ValueError: unknown runtime or device.
        RuntimeUnavailable: the runtime does not support the device, or needs something absent.
        RuntimeError: compilation/export of this model failed (message names runtime and model).

    A model with an ``onnx_path`` attribute is an ONNX file: only ``onnxruntime`` runs it.
    """
    rt = get_runtime(name)
    dev = resolve_device(device)
    if dev.type not in rt.devices:
        raise RuntimeUnavailable(
            f"runtime={name!r} needs device {' or '.join(rt.devices)}, got device={str(dev)!r}"
        )
    if getattr(model, "onnx_path", None) is not None and name != "onnxruntime":
        raise RuntimeUnavailable(f"{type(model).__name__} is an ONNX model ({model.onnx_path}); "
                                 "it runs only under runtime='onnxruntime'")
    return rt.prepare(model, example, dev, threads)


def _eager(model: nn.Module, example: Any, device: torch.device, threads: int) -> RunFn:
    def run(x: Any) -> Any:
        with torch.inference_mode():
            return call_model(model, x)
    return run


def _roomy_recompile_limit():
    """Dense and pruned models share ``forward`` code objects; with several batch sizes the
    default recompile limit (8) would silently fall back to eager. Raise it for the compile."""
    import torch._dynamo.config as dcfg

    names = [n for n in ("recompile_limit", "cache_size_limit") if hasattr(dcfg, n)]
    return dcfg.patch(**{n: max(getattr(dcfg, n), 256) for n in names})


def _compile(model: nn.Module, example: Any, device: torch.device, threads: int,
             mode: str | None = None) -> RunFn:
    compiled = torch.compile(model, dynamic=False, **({"mode": mode} if mode else {}))

    def run(x: Any) -> Any:
        with torch.inference_mode():
            return call_model(compiled, x)

    try:
        with _roomy_recompile_limit():
            run(example)  # compilation happens on the first call: fail here, clearly
    except Exception as e:  # noqa: BLE001 - inductor raises many types; we re-raise with context
        hint = (" On CPU torch.compile (inductor) needs a working C++ compiler (gcc or clang on "
                "PATH) and Python headers.") if device.type == "cpu" else ""
        raise RuntimeError(
            f"runtime='compile{'-' + mode if mode else ''}' failed for {type(model).__name__} on {device}: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}.{hint}"
        ) from e
    return run


def _cudagraph(model: nn.Module, example: Any, device: torch.device, threads: int) -> RunFn:
    """Capture one forward in a CUDA graph; each call copies inputs in and replays it."""
    static_in = torch.utils._pytree.tree_map(
        lambda t: t.clone() if isinstance(t, Tensor) else t, example)
    slots = tensor_leaves(static_in)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode():
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up (cuBLAS handles, autotuning) outside the capture
                call_model(model, static_in)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static_out = call_model(model, static_in)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(
                f"runtime='cudagraph' could not capture {type(model).__name__}: "
                f"{type(e).__name__}: {e} (dynamic control flow, CPU syncs or host tensors "
                "inside forward prevent capture)"
            ) from e

    def run(x: Any) -> Any:
        for dst, src in zip(slots, tensor_leaves(x), strict=True):
            dst.copy_(src, non_blocking=True)
        graph.replay()
        return static_out

    return run


RUNTIMES.register("eager", Runtime("eager", _eager, ("cpu", "cuda"),
                                   "PyTorch eager mode"))
RUNTIMES.register("compile", Runtime("compile", _compile, ("cpu", "cuda"),
                                     "torch.compile (inductor, default mode, static shapes)"))
RUNTIMES.register("compile-reduce-overhead", Runtime(
    "compile-reduce-overhead",
    lambda m, x, d, t: _compile(m, x, d, t, mode="reduce-overhead"), ("cuda",),
    "torch.compile(mode='reduce-overhead'): inductor kernels replayed through CUDA graphs"))
RUNTIMES.register("cudagraph", Runtime("cudagraph", _cudagraph, ("cuda",),
                                       "eager forward captured once and replayed as a CUDA graph"))


def _register_exported() -> None:
    RUNTIMES.register("onnxruntime", Runtime(
        "onnxruntime", prepare_onnxruntime, ("cpu", "cuda"),
        "torch.onnx export + ONNX Runtime InferenceSession (CPU or CUDA provider; pool threads "
        "spin within a run, not after it)",
        device_timed=False, memory_format=False))
    RUNTIMES.register("onnxruntime-nospin", Runtime(
        "onnxruntime-nospin", lambda m, x, d, t: prepare_onnxruntime(m, x, d, t, spinning=False),
        ("cpu",), "ONNX Runtime with intra-op spinning off (idle threads sleep; for shared "
        "cores)", device_timed=False, memory_format=False))
    RUNTIMES.register("openvino", Runtime(
        "openvino", prepare_openvino, ("cpu",),
        "OpenVINO CPU plugin: latency hint, one stream, precision pinned to the model's dtype",
        device_timed=False, memory_format=False))


_register_exported()

__all__ = ["RUNTIMES", "Runtime", "RuntimeUnavailable", "get_runtime", "prepare_runtime",
           "resolve_device"]
