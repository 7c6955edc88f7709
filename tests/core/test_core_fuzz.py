"""Property tests: selection is exact for any shape/ratio; N:M always valid."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit.masks.select import global_masks, is_nm_valid, n_to_prune, nm_mask, unstructured_mask

shapes = st.lists(st.integers(1, 9), min_size=1, max_size=4)
ratios = st.floats(0.0, 0.999, allow_nan=False)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(shape=shapes, s=ratios, seed=st.integers(0, 2**16))
def test_unstructured_any_shape(shape, s, seed):
    scores = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    mask = unstructured_mask(scores, s)
    assert mask.shape == scores.shape
    assert int((~mask).sum()) == n_to_prune(scores.numel(), s)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=5), s=ratios)
def test_global_any_sizes(sizes, s):
    scores = {f"l{i}": torch.rand(n) for i, n in enumerate(sizes)}
    masks = global_masks(scores, s)
    assert sum(int((~m).sum()) for m in masks.values()) == n_to_prune(sum(sizes), s)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), groups=st.integers(1, 6), m=st.sampled_from([2, 4, 8, 16]),
       data=st.data())
@pytest.mark.slow
def test_nm_any(rows, groups, m, data):
    n = data.draw(st.integers(1, m - 1))
    scores = torch.randn(rows, groups * m)
    mask = nm_mask(scores, n, m)
    assert is_nm_valid(mask, n, m)
    assert int(mask.sum()) == rows * groups * n
