import math

import pytest
import torch

from prunekit.recsys.metrics import evaluate_ranking, hit_ndcg, ndcg_at_k, ranks_of_positive


def test_toy_ranking_by_hand():
    # 3 users; positive in column 0. Ranks: 0, 2, 4 (ties count against the positive).
    scores = torch.tensor([[5.0, 1.0, 2.0, 0.0, 0.5],
                           [3.0, 4.0, 3.5, 1.0, 0.0],
                           [1.0, 2.0, 3.0, 4.0, 1.0]])
    ranks = ranks_of_positive(scores)
    assert ranks.tolist() == [0, 2, 4]
    hr, ndcg = hit_ndcg(ranks, k=3)
    assert hr == pytest.approx(2 / 3)
    # by hand: user 0 -> 1/log2(2) = 1, user 1 -> 1/log2(4) = 0.5, user 2 -> outside top 3
    assert ndcg == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    # the same from the textbook graded formula on each ranked list
    lists = [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1]]
    assert ndcg == pytest.approx(sum(ndcg_at_k(r, 3) for r in lists) / 3)
    assert ndcg_at_k([0, 1, 1], 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


class Oracle(torch.nn.Module):
    """Scores the held-out item highest."""

    def __init__(self, test):
        super().__init__()
        self.best = dict(zip(test.users.tolist(), test.items.tolist(), strict=False))

    def forward(self, users, items):
        return torch.tensor([1.0 if self.best[u] == i else 0.0
                             for u, i in zip(users.tolist(), items.tolist(), strict=False)])


class Const(torch.nn.Module):
    def forward(self, users, items):
        return torch.zeros(users.shape)


def test_evaluate_ranking_sampled_and_full(split):
    train, test = split
    oracle = Oracle(test)
    assert evaluate_ranking(oracle, test, k=1, train=train, negatives=5) == \
        {"hr@1": 1.0, "ndcg@1": 1.0}
    assert evaluate_ranking(oracle, test, k=1, train=train, negatives=None)["hr@1"] == 1.0
    const = Const()  # ties give no credit
    assert evaluate_ranking(const, test, k=10, train=train, negatives=None)["hr@10"] == 0.0
    with pytest.raises(ValueError, match="k must be"):
        hit_ndcg(torch.tensor([0]), 0)
    with pytest.raises(ValueError, match="negatives"):
        evaluate_ranking(oracle, test, negatives=0)
