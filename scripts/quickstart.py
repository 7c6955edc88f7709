"""The README's quick start, run from an installed wheel (scripts/wheel_check.sh)."""

import copy
import tempfile
from pathlib import Path

import torch

import prunekit as pk
from prunekit.demo import DigitsCNN

model, x = DigitsCNN().eval(), torch.randn(1, 1, 8, 8)
dense = copy.deepcopy(model)
plan = pk.plan_structured(model, x, ratio=0.5, criterion="l1")
pruned = plan.apply()
assert pk.verify(dense, plan).ok
with tempfile.TemporaryDirectory() as d:
    pk.save(pruned, Path(d) / "pruned", spec="module:prunekit.demo:DigitsCNN")
    again = pk.load(Path(d) / "pruned")
    assert torch.allclose(again(x), pruned(x))
res = pk.compare({"dense": dense, "pruned": pruned}, x, pk.BenchConfig(batches=(1,), repeats=5))
print("quick start OK:", res.speedups()[0]["model"])
