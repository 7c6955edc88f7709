"""Ranking and rating metrics.

For leave-one-out evaluation each test user has one held-out positive. ``HR@K`` is the fraction
of users whose positive ranks in the top K; ``NDCG@K`` gives it ``1 / log2(rank + 2)`` (rank 0 =
first) and 0 outside the top K (He et al., "Neural Collaborative Filtering", WWW 2017). Ties
count against the positive (a collapsed model that scores everything equal gets no credit).

``negatives=99`` ranks the positive among 99 sampled unobserved items (the NCF protocol);
``negatives=None`` ranks it among all items the user has not interacted with in training
(full ranking, Krichene & Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from prunekit.recsys.data import Interactions
from prunekit.recsys.train import sample_negatives, seen_matrix


def ranks_of_positive(scores: Tensor) -> Tensor:
    """Rank (0 = best) of column 0 within each row of ``scores`` (U, C); ties count against."""
    return (scores[:, 1:] >= scores[:, :1]).sum(1)


def hit_ndcg(ranks: Tensor, k: int) -> tuple[float, float]:
    """``(HR@k, NDCG@k)`` of one-positive rankings with 0-based ``ranks``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if ranks.numel() == 0:
        raise ValueError("hit_ndcg: no rankings to evaluate")
    hit = ranks < k
    gain = torch.where(hit, 1.0 / torch.log2(ranks.double() + 2.0), torch.zeros(()).double())
    return float(hit.double().mean()), float(gain.mean())


def ndcg_at_k(relevance: list[float], k: int) -> float:
    """Textbook NDCG@k of one ranked relevance list (graded gains ``rel / log2(i + 2)``)."""
    dcg = sum(r / math.log2(i + 2) for i, r in enumerate(relevance[:k]))
    ideal = sorted(relevance, reverse=True)
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal[:k]))
    return dcg / idcg if idcg > 0 else 0.0


def _score_fn(model: nn.Module):
    return model.score if hasattr(model, "score") else model


@torch.no_grad()
def _full_ranks(model: nn.Module, test: Interactions, seen: Tensor, chunk: int) -> Tensor:
    score, out = _score_fn(model), []
    items = torch.arange(test.n_items)
    for s in range(0, len(test), chunk):
        u, pos = test.users[s:s + chunk], test.items[s:s + chunk]
        all_s = score(u.unsqueeze(1).expand(-1, test.n_items).reshape(-1),
                      items.repeat(u.numel())).view(u.numel(), -1)
        pos_s = all_s.gather(1, pos.unsqueeze(1))
        mask = seen[u].clone()
        mask[torch.arange(u.numel()), pos] = True  # the positive itself is not a competitor
        out.append(((all_s >= pos_s) & ~mask).sum(1))
    return torch.cat(out)


@torch.no_grad()
def evaluate_ranking(model: nn.Module, test: Interactions, k: int = 10,
                     train: Interactions | None = None, negatives: int | None = 99,
                     seed: int = 0, chunk: int = 256) -> dict[str, float]:
    """HR@k and NDCG@k of the held-out positives in ``test``.

    Args:
        train: observed pairs excluded from the candidates (recommended; without it only the
            test positives are excluded).
        negatives: sampled negatives per positive (the same for a given ``seed``); ``None``
            ranks against every unobserved item.
    """
    if len(test) == 0:
        raise ValueError("evaluate_ranking: the test log is empty")
    if negatives is not None and negatives < 1:
        raise ValueError(f"negatives must be >= 1 or None, got {negatives}")
    seen = seen_matrix(test if train is None else train)
    seen[test.users, test.items] = True
    was = model.training
    model.eval()
    try:
        if negatives is None:
            ranks = _full_ranks(model, test, seen, chunk)
        else:
            gen = torch.Generator().manual_seed(seed)
            neg = sample_negatives(test.users, seen, negatives, gen)
            cand = torch.cat([test.items.unsqueeze(1), neg], 1)
            u = test.users.unsqueeze(1).expand_as(cand)
            ranks = ranks_of_positive(_score_fn(model)(u.reshape(-1), cand.reshape(-1))
                                      .view_as(cand))
    finally:
        model.train(was)
    hr, ndcg = hit_ndcg(ranks, k)
    return {f"hr@{k}": hr, f"ndcg@{k}": ndcg}


@torch.no_grad()
def rmse(model: nn.Module, test: Interactions) -> float:
    """Root mean squared error of predicted ratings."""
    if len(test) == 0:
        raise ValueError("rmse: the test log is empty")
    was = model.training
    model.eval()
    pred = _score_fn(model)(test.users, test.items)
    model.train(was)
    return float(torch.sqrt(torch.mean((pred - test.ratings) ** 2)))
