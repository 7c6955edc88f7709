"""Per-layer latency lookup tables as a function of channel count, and rounding chosen from them.

GPU kernels (and CPU vector units) like some channel counts: on an H100 a 3×3 conv at 56² took
0.347 ms with 256 output channels and 0.695 ms with 255. A fixed ``round_to`` guesses; here each
distinct layer shape of the model is timed on the target device over a range of output-channel
counts (cached in a JSON file keyed by device, dtype and batch), and the granularity whose
rounding-up saves the most measured time is chosen (Torch-Pruning's ``round_to`` made
hardware-aware; cf. HALP, Shen et al., "Structural Pruning via Latency-Saliency Knapsack", 2022).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.timer import compare_latency
from prunekit.bench.sparse import capture_inputs
from prunekit._env import cpu_name
from prunekit.io import atomic_write_bytes

CurveTimer = Callable[[Mapping[int, nn.Module], Tensor], Mapping[int, float]]
GRANULARITIES = (1, 2, 4, 8, 16, 32, 64)


def layer_signature(module: nn.Module, x: Tensor) -> str:
    """A key identifying what a layer's latency depends on, except its output channels."""
    if isinstance(module, nn.Linear):
        return f"Linear(in={module.in_features},tokens={x.numel() // x.shape[-1]})"
    if isinstance(module, nn.Conv2d):
        return (f"Conv2d(in={module.in_channels},k={module.kernel_size},s={module.stride},"
                f"p={module.padding},d={module.dilation},g={module.groups},"
                f"x={tuple(x.shape)})")
    raise ValueError(f"no latency table for {type(module).__name__} (Linear and Conv2d only)")


def with_out_channels(module: nn.Module, count: int) -> nn.Module:
    """A fresh layer like ``module`` with ``count`` outputs (random weights: speed only)."""
    dev, dt = module.weight.device, module.weight.dtype
    if isinstance(module, nn.Linear):
        new = nn.Linear(module.in_features, count, bias=module.bias is not None)
    elif isinstance(module, nn.Conv2d):
        if module.groups not in (1,):
            raise ValueError("grouped/depthwise convs change inputs with outputs; not tabulated")
        new = nn.Conv2d(module.in_channels, count, module.kernel_size, module.stride,
                        module.padding, module.dilation, 1, module.bias is not None,
                        module.padding_mode)
    else:
        raise ValueError(f"no latency table for {type(module).__name__}")
    return new.to(device=dev, dtype=dt).eval()


def default_counts(full: int) -> list[int]:
    """Output-channel counts to measure: every count in a window around ``full``/2 and
    3·``full``/4, the multiples of 32 and 64 those round up to, and ``full``."""
    counts = {full}
    for frac in (0.5, 0.75):
        centre = max(1, round(full * frac))
        window = range(max(1, centre - 8), min(full, centre + 8) + 1)
        counts.update(window)
        counts.update(math.ceil(c / g) * g for c in window for g in (32, 64)
                      if math.ceil(c / g) * g <= full)
    return sorted(counts)


def measure_curve(module: nn.Module, x: Tensor, counts: Iterable[int],
                  timer: CurveTimer | None = None) -> dict[int, float]:
    """Median ms of the layer at each output-channel count (interleaved by the default timer)."""
    mods = {c: with_out_channels(module, c) for c in counts}
    if timer is None:
        stats = compare_latency(mods, x, warmup=2, repeats=10, rotate=None, number=None,
                                device=x.device)
        return {c: s.median for c, s in stats.items()}
    return {int(c): float(v) for c, v in timer(mods, x).items()}


def rounding_savings(curve: Mapping[int, float], g: int) -> float:
    """Mean relative time saved by rounding each measured count up to a multiple of ``g``
    (only counts whose rounded value was measured too)."""
    gains = []
    for c, ms in curve.items():
        up = math.ceil(c / g) * g
        if up in curve and ms > 0:
            gains.append((ms - curve[up]) / ms)
    return sum(gains) / len(gains) if gains else 0.0


def preferred_multiple(curve: Mapping[int, float], choices: Iterable[int] = GRANULARITIES,
                       min_gain: float = 0.02) -> int:
    """The granularity whose rounding-up saves the most measured time (1 if none saves
    ``min_gain``); ties go to the smaller granularity (fewer channels kept for nothing)."""
    best, best_gain = 1, min_gain
    for g in sorted(choices):
        gain = rounding_savings(curve, g)
        if gain > best_gain + 1e-9:
            best, best_gain = g, gain
    return best


class LatencyLUT:
    """Latency curves cached in a JSON file: ``{device|dtype|batch: {signature: {count: ms}}}``.

    Writes are atomic (temp file + ``os.replace``).
    """

    def __init__(self, path: str | os.PathLike | None, key: str) -> None:
        self.path = Path(path) if path is not None else None
        self.key = key
        self.data: dict[str, dict[str, dict[str, float]]] = {}
        if self.path is not None and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"latency table {self.path} is not valid JSON: {e}") from None

    @staticmethod
    def make_key(device: torch.device | str, dtype: torch.dtype | str, batch: int,
                 clock: str | None = None) -> str:
        """``device:name|dtype|batchN`` (plus ``|clock`` for a non-default clock)."""

        dev = torch.device(device)
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
        key = f"{dev.type}:{name}|{str(dtype).replace('torch.', '')}|batch{batch}"
        return key + (f"|{clock}" if clock else "")

    def get(self, signature: str) -> dict[int, float] | None:
        table = self.data.get(self.key, {}).get(signature)
        return None if table is None else {int(k): float(v) for k, v in table.items()}

    def put(self, signature: str, curve: Mapping[int, float]) -> None:
        self.data.setdefault(self.key, {})[signature] = {str(k): v for k, v in curve.items()}

    def save(self) -> None:
        if self.path is None:
            return
        atomic_write_bytes(self.path, json.dumps(self.data, indent=1).encode())


def layer_inputs(model: nn.Module, example_inputs: Any) -> dict[str, tuple[nn.Module, Tensor]]:
    """``name -> (layer, its input)`` for every dense Linear / ungrouped Conv2d of one forward."""

    layers = {n: m for n, m in model.named_modules()
              if type(m) is nn.Linear or (type(m) is nn.Conv2d and m.groups == 1)}
    xs = capture_inputs(model, example_inputs, layers)
    return {n: (layers[n], xs[n]) for n in layers if n in xs}


def choose_round_to(model: nn.Module, example_inputs: Any, lut: LatencyLUT,
                    timer: CurveTimer | None = None,
                    choices: Iterable[int] = GRANULARITIES) -> tuple[int, dict[str, Any]]:
    """One global ``round_to`` for the planner: each layer shape's preferred granularity,
    weighted by that layer's dense latency. Missing curves are measured and cached.

    Returns:
        ``(round_to, details)`` with per-signature curves and choices for the report.
    """
    votes: dict[int, float] = {}
    details: dict[str, Any] = {}
    for name, (mod, x) in layer_inputs(model, example_inputs).items():
        sig = layer_signature(mod, x)
        curve = lut.get(sig)
        full = mod.out_features if isinstance(mod, nn.Linear) else mod.out_channels
        if curve is None:
            curve = measure_curve(mod, x, default_counts(full), timer)
            lut.put(sig, curve)
        g = preferred_multiple(curve, choices)
        weight = curve.get(full, max(curve.values()))
        votes[g] = votes.get(g, 0.0) + weight
        details[name] = {"signature": sig, "round_to": g}
    lut.save()
    best = max(votes, key=lambda g: (votes[g], -g)) if votes else 1
    return best, details
