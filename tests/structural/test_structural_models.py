"""Representative torchvision models: plan, apply, verify (random weights, small inputs)."""

from __future__ import annotations

import pytest
import torch
from struct_models import randomize_norms

import prunekit as pk

torchvision = pytest.importorskip("torchvision")

FAST = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1"]
SLOW = ["densenet121", "convnext_tiny", "googlenet", "mobilenet_v2", "resnext50_32x4d",
        "regnet_x_400mf", "efficientnet_b0"]


def _check(name: str, scope: str = "local") -> None:
    torch.manual_seed(0)
    kw = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = randomize_norms(torchvision.models.get_model(name, weights=None, **kw)).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    plan = pk.plan_structured(model, x, ratio=0.5, scope=scope)
    pruned = plan.apply(copy=True)
    assert not [w for _, _, w in plan.fixed if "label rule failed" in w], plan.fixed
    res = pk.verify(model, plan, pruned=pruned)
    assert res.ok, (name, res)
    assert res.max_abs_ref > 1e-3, "reference outputs too small for a meaningful check"
    assert pruned(x).shape == ref.shape
    n0 = sum(p.numel() for p in model.parameters())
    n1 = sum(p.numel() for p in pruned.parameters())
    assert n1 < 0.8 * n0, plan.summary()
    assert plan.params[1] == n1  # handler cost formulas count exactly


@pytest.mark.parametrize("name", FAST)
def test_torchvision_fast(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_torchvision_slow(name):
    _check(name, scope="global")
