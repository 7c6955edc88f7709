"""Benchmark inputs: random, never zero, distinct, resized."""

import pytest
import torch

from prunekit.bench.inputs import cast_inputs, input_pool, nbytes, random_like, resize_batch


def test_random_like_keeps_structure_and_is_not_zero():
    ex = {"x": torch.zeros(2, 3), "ids": torch.tensor([[0, 5, 9]]), "mask": torch.ones(1, 3, dtype=torch.bool)}
    r = random_like(ex, seed=1)
    assert r["x"].shape == (2, 3) and bool((r["x"] != 0).all())
    assert r["ids"].dtype == torch.int64 and int(r["ids"].min()) >= 0 and int(r["ids"].max()) <= 9
    assert torch.equal(r["mask"], ex["mask"])


def test_pool_is_bigger_than_cache_and_distinct():
    ex = torch.randn(1, 1024)  # 4 KiB
    pool = input_pool(ex, cache_bytes=16 * 1024, max_count=16)
    assert len(pool) == 4
    assert nbytes(pool) >= 16 * 1024
    assert not torch.equal(pool[0], pool[1])
    assert len(input_pool(ex, cache_bytes=10**9, max_count=5)) == 5
    assert len(input_pool(torch.randn(1, 10), cache_bytes=0)) == 2


def test_resize_batch():
    x = (torch.randn(2, 4), torch.arange(2))
    y = resize_batch(x, 5)
    assert y[0].shape == (5, 4) and y[1].tolist() == [0, 1, 0, 1, 0]
    assert resize_batch(torch.randn(8, 3), 2).shape == (2, 3)
    with pytest.raises(ValueError, match="batch"):
        resize_batch(x, 0)
    with pytest.raises(ValueError, match="no tensor"):
        resize_batch([1, 2], 2)


def test_cast_inputs_keeps_ints():
    x = cast_inputs((torch.randn(2), torch.arange(3)), torch.float16, "cpu")
    assert x[0].dtype == torch.float16 and x[1].dtype == torch.int64
