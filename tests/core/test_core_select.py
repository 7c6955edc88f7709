import pytest
import torch

from prunekit.masks.select import (
    global_masks, is_nm_valid, n_to_prune, nm_mask, parse_pattern, unstructured_mask,
)


@pytest.mark.parametrize("numel,s", [(100, 0.5), (101, 0.7), (7, 0.3), (1000, 0.0), (64, 0.99)])
def test_unstructured_exact_count(numel, s):
    scores = torch.rand(numel)
    mask = unstructured_mask(scores, s)
    assert int((~mask).sum()) == n_to_prune(numel, s)
    # every pruned score is <= every kept score
    if (~mask).any() and mask.any():
        assert scores[~mask].max() <= scores[mask].min()


def test_unstructured_ties_deterministic():
    scores = torch.zeros(10)
    m1, m2 = unstructured_mask(scores, 0.5), unstructured_mask(scores, 0.5)
    assert torch.equal(m1, m2) and int((~m1).sum()) == 5
    assert torch.equal(m1, torch.tensor([False] * 5 + [True] * 5))


def test_global_masks_exact_total_and_single_threshold():
    scores = {"a": torch.rand(30, 4), "b": torch.rand(50) * 2, "c": torch.rand(7)}
    masks = global_masks(scores, 0.6)
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == n_to_prune(30 * 4 + 50 + 7, 0.6)
    kept_min = min(scores[k][masks[k]].min() for k in scores)
    pruned_max = max(scores[k][~masks[k]].max() for k in scores if (~masks[k]).any())
    assert pruned_max <= kept_min
    for k in scores:
        assert masks[k].shape == scores[k].shape


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4), (3, 8)])
def test_nm_mask_validity(n, m):
    scores = torch.randn(16, 4 * m)
    mask = nm_mask(scores, n, m)
    groups = mask.reshape(-1, m)
    assert torch.all(groups.sum(1) == n)
    assert is_nm_valid(mask, n, m)
    # kept are the n largest in every group
    g = scores.reshape(-1, m)
    kept_min = torch.where(groups, g, torch.inf).min(1).values
    pruned_max = torch.where(~groups, g, -torch.inf).max(1).values
    assert torch.all(pruned_max <= kept_min)


def test_nm_rejects_bad_input():
    with pytest.raises(ValueError, match="not divisible by M=4"):
        nm_mask(torch.rand(3, 6), 2, 4)
    with pytest.raises(ValueError, match="0 < N < M"):
        nm_mask(torch.rand(3, 8), 4, 4)


@pytest.mark.parametrize("bad", ["4:4", "5:4", "0:4", "2-4", "a:b", "2:4:8"])
def test_parse_pattern_rejects(bad):
    with pytest.raises(ValueError, match="pattern"):
        parse_pattern(bad)


def test_parse_pattern_ok():
    assert parse_pattern("2:4") == (2, 4)
    assert parse_pattern("unstructured") is None
    assert parse_pattern(None) is None
    assert parse_pattern((4, 8)) == (4, 8)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_sparsity_out_of_range(bad):
    with pytest.raises(ValueError, match="sparsity"):
        unstructured_mask(torch.rand(10), bad)
