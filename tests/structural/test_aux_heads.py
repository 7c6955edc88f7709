"""Training-only branches (auxiliary heads) are traced with the containers in training mode."""

import copy

import pytest
import torch
import torchvision
from torch import nn

import prunekit as pk
from prunekit.graph.modes import containers_training
from prunekit.structural.verify import _install


@pytest.fixture(scope="module")
def googlenet_plan():
    torch.manual_seed(0)
    m = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).eval()
    x = torch.randn(1, 3, 64, 64)
    bn = m.aux1.conv.bn.running_mean.clone()
    rng = torch.get_rng_state()
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert torch.equal(torch.get_rng_state(), rng)  # the training-mode pass forks the RNG
    assert torch.equal(m.aux1.conv.bn.running_mean, bn) and not m.training
    assert all(not mod.training for mod in m.modules())
    return m, x, plan, plan.apply(copy=True)


@pytest.mark.slow
def test_googlenet_aux_heads_are_pruned_with_the_trunk(googlenet_plan):
    m, x, plan, pruned = googlenet_plan
    assert plan.not_called == [] and plan.train_output_shapes == [(1, 1000)] * 3
    names = {e.name for e in plan.edits}
    assert {"aux1.conv.conv", "aux2.conv.conv", "aux1.fc1"} <= names
    p = copy.deepcopy(pruned)
    trunk_4a = sum((b[-1] if isinstance(b, nn.Sequential) else b).conv.out_channels
                   for b in (p.inception4a.branch1, p.inception4a.branch2, p.inception4a.branch3,
                             p.inception4a.branch4))
    assert p.aux1.conv.conv.in_channels == trunk_4a < 512
    p.train()
    out = p(torch.randn(2, 3, 64, 64))  # real training mode: BN batch statistics, dropout
    assert [tuple(t.shape) for t in out] == [(2, 1000)] * 3
    sum(t.sum() for t in out).backward()


@pytest.mark.slow
def test_googlenet_aux_outputs_match_masked_model(googlenet_plan):
    """Zeroing the removed channels == removing them, on the trunk and the auxiliary heads."""
    m, x, plan, pruned = googlenet_plan
    masked = copy.deepcopy(m)
    handles = _install(masked, pruned, plan)
    for model in (masked, pruned):
        model.eval()
        model.training = True  # only GoogLeNet.forward branches: aux heads run, no dropout
    with torch.no_grad():
        ref, got = masked(x), pruned(x)
    for h in handles:
        h.remove()
    assert len(ref) == len(got) == 3
    for a, b in zip(ref, got, strict=True):
        assert (a - b).abs().max() <= 1e-4


class _AuxNet(nn.Module):
    """Trunk with an auxiliary head that runs in training mode on large inputs only."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)
        self.aux = nn.Sequential(nn.Conv2d(16, 8, 1), nn.Flatten(), nn.Linear(8 * 64, 4))

    def forward(self, x):
        h = self.stem(x).relu()
        if self.training:
            if x.shape[-1] != 8:
                raise RuntimeError("auxiliary head needs 8x8 inputs")
            aux = self.aux(h)
            return self.head(self.body(h).mean((2, 3))), aux
        return self.head(self.body(h).mean((2, 3)))


def test_aux_head_traced_in_training_mode_and_checked():
    m = _AuxNet().eval()
    plan = pk.plan_structured(m, torch.randn(1, 3, 8, 8), ratio=0.5)
    assert plan.not_called == [] and plan.train_output_shapes == [(1, 4), (1, 4)]
    p = plan.apply(copy=True)
    assert p.aux[0].in_channels == p.stem.out_channels == 8
    with containers_training(p):
        assert [t.shape for t in p(torch.randn(2, 3, 8, 8))] == [(2, 4), (2, 4)]


def test_failed_training_pass_leaves_aux_head_alone():
    m = _AuxNet().eval()
    plan = pk.plan_structured(m, torch.randn(1, 3, 6, 6), ratio=0.5)
    assert plan.train_output_shapes is None
    assert set(plan.not_called) == {"aux.0", "aux.2"}
    assert not any(e.name.startswith("aux") for e in plan.edits)
    assert "not called" in plan.summary()
