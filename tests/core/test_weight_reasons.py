"""The weight-pruning report says why every layer got its sparsity."""

from __future__ import annotations

import torch
from torch import nn

from prunekit.weights import prune_weights


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 4))


def test_global_threshold_override_and_exclusion_are_explained():
    model = _mlp()
    rep = prune_weights(model, 0.6, scope="global", overrides={"4": 0.25}, exclude=["0"])
    why = {r.name: r.reason for r in rep.layers}
    assert why["4"] == "override '4': the lowest-l1 25.00% of this layer's weights"
    assert why["2"].startswith("global l1 ranking over 1 layer(s): one threshold ")
    threshold = float(why["2"].split("threshold ")[1].split(" ")[0])
    w = model[2].weight.detach().abs()
    assert bool((w[w != 0] >= threshold * (1 - 1e-3)).all())  # kept weights score above it
    assert rep.to_dict()["excluded"] == [{"name": "0", "reason": "excluded by '0'"}]


def test_local_and_nm_reasons():
    rep = prune_weights(_mlp(), 0.5)
    assert {r.reason for r in rep.layers} == {"local: the lowest-l1 50.00% of this layer's "
                                              "weights"}
    rep = prune_weights(_mlp(), pattern="2:4")
    assert all(r.reason.startswith("2:4 pattern: the 2 lowest-l1 of every 4") for r in
               rep.layers)
