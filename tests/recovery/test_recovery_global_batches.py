"""Data-parallel batches: every rank's share of each global batch, the partial last one included."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from prunekit.recover.ddp import GlobalBatchSampler


@pytest.mark.parametrize("n,batch,world", [(1437, 64, 2), (100, 8, 4), (9, 8, 4), (65, 64, 2)])
def test_ranks_share_exactly_the_single_process_batches(n, batch, world):
    single = list(GlobalBatchSampler(n, batch, shuffle=True, seed=3))
    ranks = [GlobalBatchSampler(n, batch, world, r, shuffle=True, seed=3) for r in range(world)]
    shares = [list(s) for s in ranks]
    assert all(len(s) == len(single) for s in shares)
    for step, whole in enumerate(single):
        real = [shares[r][step] for r in range(world) if ranks[r].loss_scale(step) > 0]
        assert sorted(i for part in real for i in part) == sorted(whole)
        # scaled per-rank means averaged over ranks: every sample weighs 1 / global batch
        for r in range(world):
            weight = ranks[r].loss_scale(step) / (len(shares[r][step]) * world)
            assert weight == pytest.approx(1 / len(whole) if r < len(whole) else 0.0)


def test_one_process_order_is_the_distributed_sampler_order():
    data = TensorDataset(torch.arange(1437))
    old = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=5)
    new = GlobalBatchSampler(len(data), 64, shuffle=True, seed=5)
    for epoch in (0, 1):
        old.set_epoch(epoch)
        new.set_epoch(epoch)
        a = [b[0].tolist() for b in DataLoader(data, batch_size=64, sampler=old)]
        b = [b[0].tolist() for b in DataLoader(data, batch_sampler=new)]
        assert a == b


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="GlobalBatchSampler"):
        GlobalBatchSampler(10, 4, world=2, rank=2)
