"""Peak memory of one forward pass.

On CUDA the caching allocator's peak is read. On CPU there is no allocator statistic, so a
``TorchDispatchMode`` records every tensor storage produced by an ATen op and a weak-reference
finalizer releases it when Python frees it: the maximum of live bytes is the activation peak
(exact for tensors created during the forward; parameters are added separately).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from prunekit.call import call_model


class _LiveBytes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            st = t.untyped_storage()
            key = id(st)
            if key in self.live or st.nbytes() == 0:
                continue
            self.live[key] = st.nbytes()
            self.current += st.nbytes()
            self.peak = max(self.peak, self.current)
            weakref.finalize(st, self._free, key)
        return out


def param_bytes(model: nn.Module) -> int:
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def forward_peak_bytes(model: nn.Module, inputs: Any) -> tuple[int, str]:
    """Peak bytes of activations during one ``torch.no_grad`` forward, and how it was measured."""

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            call_model(model, inputs)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base, "cuda allocator peak"
    tracker = _LiveBytes()
    with torch.no_grad(), tracker:
        out = call_model(model, inputs)
    del out
    return tracker.peak, "cpu live-tensor tracker"
