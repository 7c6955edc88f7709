"""Relative (CSR-style) indices with fixed-width gaps and filler entries (pure numpy).

Deep Compression (Han, Mao & Dally, ICLR 2016, section 2 and figure 2) stores the position of
each kept weight as the difference from the previous one, in ``b`` bits (8 for conv, 5 for FC);
a gap that does not fit is bridged by filler zeros. Here the gap symbol ``0`` is the filler: it
advances ``2^b - 1`` positions and carries no weight, so a filler costs one gap symbol and no
codebook index (the paper also spends a codebook index on its filler zero). Symbols ``1 ..
2^b - 1`` place the next kept weight that many positions after the previous one (the first gap
counts from position -1).
"""

from __future__ import annotations

import numpy as np


def encode_gaps(positions: np.ndarray, width: int) -> np.ndarray:
    """Gap symbols (``uint32``) for ascending flat ``positions`` of the kept weights."""
    if not 1 <= width <= 16:
        raise ValueError(f"index width must be in 1..16 bits, got {width}")
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    if pos.size == 0:
        return np.zeros(0, dtype=np.uint32)
    span = (1 << width) - 1
    d = np.diff(np.concatenate(([-1], pos)))
    if (d < 1).any():
        raise ValueError("positions must be strictly increasing and >= 0")
    fillers = (d - 1) // span
    out = np.zeros(int(fillers.sum() + d.size), dtype=np.uint32)
    out[np.cumsum(fillers + 1) - 1] = d - fillers * span
    return out


def decode_gaps(gaps: np.ndarray, width: int) -> np.ndarray:
    """Flat positions (int64) encoded by :func:`encode_gaps`."""
    g = np.asarray(gaps, dtype=np.int64).reshape(-1)
    span = (1 << width) - 1
    steps = np.where(g == 0, span, g)
    return (np.cumsum(steps) - 1)[g != 0]


def count_fillers(gaps: np.ndarray) -> int:
    return int((np.asarray(gaps) == 0).sum())


__all__ = ["count_fillers", "decode_gaps", "encode_gaps"]
