"""Calibration text -> fixed-length token samples for one-shot LLM pruning.

SparseGPT and Wanda calibrate on ``nsamples`` random windows of ``seqlen`` tokens drawn from a
text corpus (Frantar & Alistarh, ICML 2023, §5; Sun et al., ICLR 2024, §4). This module does that
for any Hugging Face tokenizer (or any callable ``str -> list[int]``) and a text file, a string,
or an iterable of strings. Windows are drawn with a seeded generator, so the same seed gives the
same samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class CalibConfig:
    """How calibration samples are drawn.

    Attributes:
        nsamples: number of windows.
        seqlen: tokens per window.
        seed: seed of the window positions.
    """

    nsamples: int = 128
    seqlen: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("nsamples", "seqlen"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


def read_text(source: str | Path | Iterable[str]) -> str:
    """A text file path, or an iterable of strings (joined by blank lines), as one string.

    A ``str`` is treated as a path when such a file exists, otherwise as the text itself.
    """
    if isinstance(source, Path):
        return source.read_text(encoding="utf-8", errors="replace")
    if isinstance(source, str):
        if len(source) < 4096 and "\n" not in source:
            p = Path(source)
            if p.is_file():
                return p.read_text(encoding="utf-8", errors="replace")
        return source
    parts = list(source)
    if not all(isinstance(s, str) for s in parts):
        raise ValueError("calibration source must be a path, a string or an iterable of strings")
    return "\n\n".join(parts)


def encode(tokenizer: Any, text: str) -> Tensor:
    """Token ids (1-D long tensor) of ``text`` with a HF tokenizer or a ``str -> ids`` callable.

    Special tokens are not added: calibration windows are cut from the middle of the stream.
    """
    if hasattr(tokenizer, "encode"):
        try:
            ids = tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            ids = tokenizer.encode(text)
    elif callable(tokenizer):
        ids = tokenizer(text)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
    else:
        raise ValueError(f"tokenizer must be a HF tokenizer or a callable, got {type(tokenizer)}")
    return torch.as_tensor(list(ids), dtype=torch.long).reshape(-1)


def sample_windows(ids: Tensor, cfg: CalibConfig) -> Tensor:
    """``cfg.nsamples`` seeded random windows of ``cfg.seqlen`` tokens: ``(nsamples, seqlen)``.

    Raises:
        ValueError: when the stream holds fewer than ``nsamples * seqlen`` tokens (too little
            text to calibrate on without heavy reuse of the same tokens).
    """
    need = cfg.nsamples * cfg.seqlen
    if ids.numel() < need:
        raise ValueError(
            f"calibration text too short: {ids.numel()} tokens, need at least "
            f"nsamples*seqlen = {cfg.nsamples}*{cfg.seqlen} = {need}; give more text or lower "
            "--nsamples/--seqlen"
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    starts = torch.randint(0, ids.numel() - cfg.seqlen + 1, (cfg.nsamples,), generator=gen)
    return torch.stack([ids[s : s + cfg.seqlen] for s in starts.tolist()])


def calibration_samples(
    source: str | Path | Iterable[str],
    tokenizer: Any,
    nsamples: int = 128,
    seqlen: int = 512,
    seed: int = 0,
) -> Tensor:
    """Text -> tokenizer -> ``(nsamples, seqlen)`` long tensor of seeded random windows."""
    cfg = CalibConfig(nsamples=nsamples, seqlen=seqlen, seed=seed)
    text = read_text(source)
    if not text.strip():
        raise ValueError("calibration text is empty")
    return sample_windows(encode(tokenizer, text), cfg)
