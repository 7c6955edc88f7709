"""The one home of the digits data and the small models."""

from __future__ import annotations

import pytest
import torch

from prunekit.datasets import DigitsCNN, digits_split, mlp, small_cnn

pytest.importorskip("sklearn")


def test_digits_splits_are_seeded_and_disjoint():
    for split in ("stratified", "permutation"):
        tr, te = digits_split(0, split)
        again, _ = digits_split(0, split)
        assert torch.equal(tr.tensors[0], again.tensors[0])
        assert (len(tr), len(te)) == (1437, 360)
        assert tr.tensors[0].shape[1:] == (1, 8, 8) and float(tr.tensors[0].max()) <= 1.0
    strat = torch.bincount(digits_split(0)[1].tensors[1], minlength=10)
    assert int(strat.max() - strat.min()) <= 2  # stratified: every class ~36 times


def test_bad_split_names_the_argument():
    with pytest.raises(ValueError, match="split must be one of"):
        digits_split(0, "random")


def test_models_take_digits():
    x = torch.randn(2, 1, 8, 8)
    for model in (DigitsCNN(), small_cnn(2), mlp()):
        assert model.eval()(x).shape == (2, 10)
