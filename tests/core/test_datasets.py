"""The one home of the digits data and the small models."""

from __future__ import annotations

import pytest
import torch

from prunekit.datasets import DigitsCNN, digits_split, mlp, small_cnn
from prunekit.demo import load_digits_data
from prunekit.recover.tasks import load_task

pytest.importorskip("sklearn")


def test_digits_split_is_seeded_and_stratified():
    tr, te = digits_split(0)
    again, _ = digits_split(0)
    assert torch.equal(tr.tensors[0], again.tensors[0])
    assert (len(tr), len(te)) == (1437, 360)
    assert tr.tensors[0].shape[1:] == (1, 8, 8) and float(tr.tensors[0].max()) <= 1.0
    strat = torch.bincount(te.tensors[1], minlength=10)
    assert int(strat.max() - strat.min()) <= 2  # stratified: every class ~36 times


def test_recipes_and_demo_use_the_one_split():
    tr, te = digits_split(0)
    for a, b in zip(load_task("digits"), (tr, te), strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a.tensors, b.tensors, strict=True))
    assert all(torch.equal(u, v) for u, v in zip(load_digits_data(0)[1].tensors, te.tensors, strict=True))


@pytest.mark.parametrize("bad", [0, 1.0, -0.1, True, "0.2"])
def test_bad_test_size_names_the_argument(bad):
    with pytest.raises(ValueError, match="test_size"):
        digits_split(0, bad)


def test_models_take_digits():
    x = torch.randn(2, 1, 8, 8)
    for model in (DigitsCNN(), small_cnn(2), mlp()):
        assert model.eval()(x).shape == (2, 10)
