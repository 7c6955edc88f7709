"""Non-latency measurements: MACs (dense and effective), model size, peak memory, energy.

MACs come from :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2). For models
with unstructured zeros the *effective* MACs scale each Linear/Conv layer's MACs by its weight
density: what an ideal sparse kernel would do, which is the "predicted" speedup of weight
pruning; dense kernels still do the full ``macs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunekit.call import call_model
from prunekit._memory import forward_peak_bytes


@dataclass(frozen=True)
class ModelCost:
    """Static cost of one forward at given inputs.

    Attributes:
        params: parameter count.
        nonzero_params: parameters that are not exactly zero.
        size_bytes: bytes of parameters + buffers as stored (dense).
        macs: multiply-accumulates of one forward (dense kernels).
        effective_macs: MACs when zero weights of Linear/Conv layers cost nothing.
    """

    params: int
    nonzero_params: int
    size_bytes: int
    macs: int
    effective_macs: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        k = 1
        for s in module.kernel_size:
            k *= s
        return out.numel() * (module.in_channels // module.groups) * k
    return 0


def _density(module: nn.Module) -> float:
    w = module.weight
    return float((w != 0).sum()) / max(w.numel(), 1)


def count_macs(model: nn.Module, inputs: Any) -> tuple[int, int]:
    """``(macs, effective_macs)`` of one forward on ``inputs`` (no gradients)."""
    saved: list[int] = []
    hooks = []

    def hook(mod: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            saved.append(int(_layer_macs(mod, out) * (1.0 - _density(mod))))

    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            call_model(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    macs = int(counter.get_total_flops()) // 2
    return macs, max(0, macs - sum(saved))


def _stored(t: torch.Tensor) -> list[torch.Tensor]:
    """The dense tensors that hold ``t`` (a sparse CSR/COO tensor has no storage of its own)."""
    if t.layout == torch.sparse_csr:
        return [t.crow_indices(), t.col_indices(), t.values()]
    if t.layout == torch.sparse_coo:
        return [t._indices(), t._values()]
    return [t]


def model_cost(model: nn.Module, inputs: Any) -> ModelCost:
    """Parameters, non-zeros, stored size and MACs of ``model`` at ``inputs``.

    A model that defines ``bench_cost(inputs) -> ModelCost`` (one whose work runs outside
    PyTorch, e.g. an ONNX file) reports its own cost.
    """
    own = getattr(model, "bench_cost", None)
    if callable(own):
        return own(inputs)
    seen: set[int] = set()
    size = 0
    tensors = list(model.parameters()) + list(model.buffers())
    for t in [part for whole in tensors for part in _stored(whole)]:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        size += t.numel() * t.element_size()
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    macs, eff = count_macs(model, inputs)
    return ModelCost(params, nonzero, size, macs, eff)


def peak_memory(model: nn.Module, run: Callable[[Any], Any], inputs: Any,
                device: torch.device) -> tuple[int | None, str]:
    """Peak bytes of one inference and how they were measured.

    CUDA: the caching allocator's peak above the memory allocated before the call (weights
    and inputs excluded). CPU: the live-tensor tracker of :mod:`prunekit._memory` for eager
    runs when available, else ``None`` (process RSS cannot separate two models in a process).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run(inputs)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base, "cuda allocator peak"
    peak, how = forward_peak_bytes(model, inputs)
    return int(peak), how


class NvmlEnergy:
    """Board energy counter of one NVIDIA GPU through NVML (``pynvml``; Volta and newer).

    Raises:
        RuntimeError: pynvml missing, NVML unavailable or the counter unsupported.
    """

    def __init__(self, device: torch.device) -> None:
        try:
            import pynvml
        except ImportError as e:
            raise RuntimeError("energy needs pynvml (pip install nvidia-ml-py)") from e
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            self._handle = self._handle_for(device)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except pynvml.NVMLError as e:
            raise RuntimeError(f"NVML energy counter unavailable: {e}") from e

    def _handle_for(self, device: torch.device):
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:  # match by PCI address: robust to CUDA_VISIBLE_DEVICES reordering
            pci = "%08x:%02x:%02x.0" % (getattr(props, "pci_domain_id", 0), bus,
                                        getattr(props, "pci_device_id", 0))
            try:
                return self._nvml.nvmlDeviceGetHandleByPciBusId(pci)
            except self._nvml.NVMLError:
                pass
        return self._nvml.nvmlDeviceGetHandleByIndex(idx)

    def millijoules(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))


def energy_per_inference(run: Callable[[Any], Any], inputs: list[Any], device: torch.device,
                         min_seconds: float = 1.0) -> tuple[float | None, str]:
    """Joules per call of ``run`` averaged over at least ``min_seconds`` (NVML counter).

    Returns ``(None, reason)`` off NVIDIA GPUs or without pynvml; energy is optional.
    """
    if device.type != "cuda":
        return None, "energy is measured on NVIDIA GPUs only (NVML)"
    try:
        meter = NvmlEnergy(device)
    except RuntimeError as e:
        return None, str(e)
    torch.cuda.synchronize(device)
    e0, t0, calls = meter.millijoules(), time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds or calls < 10:
        run(inputs[calls % len(inputs)])
        calls += 1
        if calls % 10 == 0:
            torch.cuda.synchronize(device)
    torch.cuda.synchronize(device)
    return (meter.millijoules() - e0) / 1000.0 / calls, "nvml total energy counter"
