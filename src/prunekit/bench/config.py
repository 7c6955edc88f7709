"""Frozen, validated configuration of a benchmark run (strings are parsed at the CLI edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from prunekit.bench.inputs import DEFAULT_CACHE_BYTES

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _positive_int(value: Any, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class BenchConfig:
    """What a benchmark measures.

    Attributes:
        device: ``cpu`` or ``cuda[:i]``.
        dtype: ``fp32``, ``fp16`` or ``bf16`` (models and floating inputs are cast).
        batches: batch sizes.
        runtimes: registered runtime names (``eager``, ``compile``, ``cudagraph``, ``onnxruntime``).
        threads: intra-op threads for every model and runtime (default: PyTorch's current).
        warmup: untimed calls per model before sampling.
        repeats: samples per model (interleaved rounds) in the first chunk; the minimum.
        max_repeats: adaptive repetition: more rounds, in chunks, while any speedup interval
            is wider than ``tolerance`` (``None``: ``max(repeats, 200)``; equal to ``repeats``
            turns adaptation off).
        tolerance: relative half-width of the 95% speedup interval a figure needs to be
            reliable (default ±5%).
        budget_s: seconds per (runtime, batch) group after which no new chunk starts.
        probe: run the contention probe (CPU, wall clock) before, between and after chunks.
        number: calls per sample; ``None`` picks it so a sample lasts ``min_sample_ms``.
        min_sample_ms: target duration of one sample when ``number`` is ``None``.
        cache_bytes: the rotating inputs together exceed this many bytes.
        fold_bn: fold BatchNorm into the preceding conv/linear in *every* model before timing.
        memory: measure peak memory.
        energy: measure energy per inference (NVIDIA GPUs with pynvml only).
        clock: a custom :class:`~prunekit.bench.timer.Clock` (tests); default per device.
    """

    device: str = "cpu"
    dtype: str = "fp32"
    batches: tuple[int, ...] = (1,)
    runtimes: tuple[str, ...] = ("eager",)
    threads: int = field(default_factory=torch.get_num_threads)
    warmup: int = 5
    repeats: int = 30
    max_repeats: int | None = None
    tolerance: float = 0.05
    budget_s: float = 20.0
    probe: bool = True
    number: int | None = None
    min_sample_ms: float = 2.0
    cache_bytes: int = DEFAULT_CACHE_BYTES
    fold_bn: bool = True
    memory: bool = True
    energy: bool = True
    clock: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        object.__setattr__(self, "batches", tuple(self.batches))
        object.__setattr__(self, "runtimes", tuple(self.runtimes))
        if not self.batches:
            raise ValueError("batches must hold at least one batch size")
        for b in self.batches:
            _positive_int(b, "batches entries")
        if not self.runtimes:
            raise ValueError("runtimes must name at least one runtime")
        _positive_int(self.threads, "threads")
        _positive_int(self.warmup, "warmup", 0)
        _positive_int(self.repeats, "repeats")
        if self.max_repeats is None:
            object.__setattr__(self, "max_repeats", max(self.repeats, 200))
        _positive_int(self.max_repeats, "max_repeats", self.repeats)
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance!r}")
        if isinstance(self.budget_s, bool) or not self.budget_s >= 0:
            raise ValueError(f"budget_s must be >= 0 seconds, got {self.budget_s!r}")
        if self.number is not None:
            _positive_int(self.number, "number")
        if not self.min_sample_ms > 0:
            raise ValueError(f"min_sample_ms must be > 0, got {self.min_sample_ms!r}")
        _positive_int(self.cache_bytes, "cache_bytes", 0)
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
                if k != "clock"}
