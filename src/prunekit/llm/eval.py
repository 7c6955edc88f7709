"""Evaluation of (pruned) transformers: causal-LM perplexity and sentence-embedding fidelity.

Perplexity uses strided windows over one token stream (the Hugging Face "perplexity of
fixed-length models" procedure): each window of ``seqlen`` tokens scores only the tokens not
scored by the previous window, so with ``stride == seqlen`` windows are disjoint (the setting of
the SparseGPT and Wanda papers) and with a smaller stride every token gets more context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.call import cache_off_kwargs, no_kv_cache


def _windows(n: int, seqlen: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, number of scored targets at the end of the window) for a stream of n ids."""
    out, prev_end = [], 0
    for begin in range(0, n - 1, stride):
        end = min(begin + seqlen, n)
        trg = end - max(prev_end, begin + 1)  # the window's first token is never a target
        if trg > 0:
            out.append((begin, end, trg))
        prev_end = end
        if end == n:
            break
    return out


@torch.no_grad()
def perplexity(
    model: nn.Module,
    ids: Tensor,
    seqlen: int = 512,
    stride: int | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> float:
    """Perplexity of a causal LM on a 1-D token stream, ``exp(mean NLL)`` over scored tokens.

    Args:
        ids: ``(N,)`` token ids of the evaluation text.
        seqlen: window length (at most the model's context).
        stride: step between windows (default ``seqlen``: disjoint windows).
        batch_size: windows of equal length per forward.
        device: where to run (default: the model's device).
    """
    stride = seqlen if stride is None else stride
    if seqlen < 2 or not 0 < stride <= seqlen:
        raise ValueError(f"need seqlen >= 2 and 0 < stride <= seqlen, got {seqlen}, {stride}")
    ids = ids.reshape(-1)
    if ids.numel() < 2:
        raise ValueError("evaluation text too short: fewer than 2 tokens")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    wins = _windows(ids.numel(), seqlen, stride)
    no_cache = cache_off_kwargs(model)  # every window is scored on its own: no KV cache
    try:
        i = 0
        while i < len(wins):
            length = wins[i][1] - wins[i][0]
            j = i
            while j < len(wins) and j - i < batch_size and wins[j][1] - wins[j][0] == length:
                j += 1
            batch = torch.stack([ids[b:e] for b, e, _ in wins[i:j]]).to(dev)
            with no_kv_cache(model):
                logits = model(input_ids=batch, **no_cache).logits.float()  # (B, L, V)
            lp = F.log_softmax(logits[:, :-1], dim=-1)
            tok_nll = -lp.gather(-1, batch[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, L-1)
            for row, (_, _, trg) in enumerate(wins[i:j]):
                nll += float(tok_nll[row, -trg:].double().sum())
                count += trg
            i = j
    finally:
        model.train(was_training)
    return math.exp(nll / count)


@torch.no_grad()
def sentence_embeddings(
    model: nn.Module, tokenizer: Any, sentences: Sequence[str], batch_size: int = 32,
    max_length: int = 128,
) -> Tensor:
    """Mean-pooled, L2-normalised last hidden states (sentence-transformers' pooling), ``(n, d)``."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(sentences), batch_size):
            enc = tokenizer(list(sentences[i : i + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(dev)
            with no_kv_cache(model):
                hidden = model(**enc).last_hidden_state  # (B, T, d)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


@dataclass(frozen=True)
class Fidelity:
    """How close pruned sentence embeddings stay to the dense ones.

    Attributes:
        mean_cosine: mean over sentences of cos(dense_i, pruned_i).
        top1_agreement: fraction of sentences whose nearest other sentence is the same under the
            dense and the pruned embeddings.
    """

    mean_cosine: float
    top1_agreement: float


def _nearest(emb: Tensor) -> Tensor:
    sim = emb @ emb.t()
    sim.fill_diagonal_(-float("inf"))
    return sim.argmax(dim=1)


def embedding_fidelity(dense: Tensor, pruned: Tensor) -> Fidelity:
    """Compare two ``(n, d)`` embedding sets of the same sentences (n >= 2)."""
    if dense.shape != pruned.shape or dense.shape[0] < 2:
        raise ValueError(f"need two (n>=2, d) embedding sets of one shape, got {tuple(dense.shape)} "
                         f"and {tuple(pruned.shape)}")
    d, p = F.normalize(dense.float(), dim=-1), F.normalize(pruned.float(), dim=-1)
    cos = float((d * p).sum(-1).mean())
    agree = float((_nearest(d) == _nearest(p)).float().mean())
    return Fidelity(cos, agree)
