"""Decode speed, dense vs dynamic, timed in alternating order in one process.

A generation step of a causal LM with a KV cache feeds one token per sequence: at batch 1 every
sparsified layer gets a single-token input and takes its gather kernel. :func:`compare_runs`
times callables round by round (order reversed every other round) and reports the median of
the per-round ratios with a bootstrap interval, as :mod:`prunekit.bench` does for models.
"""

from __future__ import annotations

import inspect
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _cache_name(model: nn.Module) -> str:
    """``cache`` (transformers >= 5.24) or ``past_key_values`` (earlier releases)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def decode_ms(model: nn.Module, prompt: Tensor, steps: int) -> float:
    """Milliseconds per greedy decode step after a prefill of ``prompt`` (prefill untimed)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    key = _cache_name(model)
    with torch.inference_mode():
        out = model(input_ids=prompt, use_cache=True)
        tok = out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=tok, use_cache=True, **{key: getattr(out, key)})
            tok = out.logits[:, -1:].argmax(-1)
        return (time.perf_counter() - t0) * 1e3 / steps


def forward_ms(model: nn.Module, ids: Tensor) -> float:
    """Milliseconds of one forward over ``ids`` (prefill)."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        model(input_ids=ids)
        return (time.perf_counter() - t0) * 1e3


@dataclass(frozen=True)
class PairedTiming:
    """Medians (ms) of a baseline and a candidate and their paired speedup.

    Attributes:
        speedup: median over rounds of ``base_ms / cand_ms``; ``low``/``high`` its 95%
            bootstrap interval; ``ratio_of_medians`` the cross-check.
    """

    base_ms: float
    cand_ms: float
    speedup: float
    low: float
    high: float
    ratio_of_medians: float
    rounds: int

    @property
    def reliable(self) -> bool:
        """Narrow interval and agreeing median-of-ratios / ratio-of-medians."""
        return (self.high - self.low) / self.speedup <= 0.2 and \
            abs(self.ratio_of_medians - self.speedup) / self.speedup <= 0.1


def compare_runs(base: Callable[[], float], cand: Callable[[], float], rounds: int = 10,
                 warmup: int = 1, seed: int = 0) -> PairedTiming:
    """Alternate ``base`` and ``cand`` (each returns its own ms) for ``rounds`` rounds."""
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2, got {rounds}")
    for _ in range(warmup):
        cand()
        base()
    b, c = [], []
    for r in range(rounds):
        if r % 2 == 0:
            b.append(base())
            c.append(cand())
        else:
            c.append(cand())
            b.append(base())
    ratios = [x / y for x, y in zip(b, c, strict=True)]
    rng = random.Random(seed)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    mb, mc = statistics.median(b), statistics.median(c)
    return PairedTiming(mb, mc, statistics.median(ratios), boots[50], boots[1949], mb / mc,
                        rounds)
