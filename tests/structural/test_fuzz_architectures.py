"""Random architectures pruned with a setting drawn from the seed (ratio, scope, criterion):
the pruned model equals an independent masked reference (channels zeroed in the dense
weights), and ``verify`` neither crashes nor raises false alarms.

A small fixed seed set runs always; ``PRUNEKIT_FUZZ_SEEDS=500`` runs that many (slow tier).
"""

from __future__ import annotations

import os

import pytest
import torch
from fuzz_check import run_case

FIXED_SEEDS = [0, 7, 19]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", FIXED_SEEDS)
def test_random_architecture_never_wrong(seed):
    out = run_case(seed)
    assert out.status != "wrong", out
    assert out.verify == "ok", out


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PRUNEKIT_FUZZ_SEEDS"),
                    reason="set PRUNEKIT_FUZZ_SEEDS=500 to run many random architectures")
def test_many_random_architectures_never_wrong():
    n = int(os.environ["PRUNEKIT_FUZZ_SEEDS"])
    bad = [o for o in map(run_case, range(1000, 1000 + n))
           if o.status == "wrong" or o.verify != "ok"]
    assert not bad, bad[:5]
