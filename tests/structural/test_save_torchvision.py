"""Pruned torchvision classification models, built the ordinary way, save and reload exactly.

``pk.save`` must recognise the builder and the constructor arguments from the model alone
(RegNet widths, ResNeXt groups, MNASNet layer versions, GoogLeNet/Inception without auxiliary
heads, a ViT built for another image size) or refuse at save time in one line.
"""

from __future__ import annotations

import json

import pytest
import torch

import prunekit as pk

torchvision = pytest.importorskip("torchvision")

FAST = [("regnet_x_400mf", {}, 32), ("resnext50_32x4d", {}, 32), ("mnasnet0_5", {}, 32),
        ("googlenet", {"aux_logits": False, "init_weights": False}, 32),
        ("vit_b_32", {"image_size": 64}, 64)]


def _roundtrip(tmp_path, name, kwargs, size, check=False):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    x = torch.randn(1, 3, size, size)
    pruned = pk.plan_structured(model, x, ratio=0.5, check=check).apply()
    with torch.no_grad():
        before = pruned(x)
    pk.save(pruned, tmp_path / "m")
    back = pk.load(tmp_path / "m")
    with torch.no_grad():
        after = back(x)
    return json.loads((tmp_path / "m" / "prunekit.json").read_text()), before, after


@pytest.mark.parametrize("name,kwargs,size", FAST, ids=[f[0] for f in FAST])
def test_pruned_model_reloads_identical(tmp_path, name, kwargs, size):
    meta, before, after = _roundtrip(tmp_path, name, kwargs, size)
    assert meta["base"]["spec"] == f"torchvision:{name}"
    assert torch.equal(before, after)
    recorded = {k: v for k, v in kwargs.items() if k != "init_weights"}  # not an attribute
    assert recorded.items() <= meta["base"]["kwargs"].items()


def test_unknown_root_setting_is_refused_in_one_line(tmp_path):
    model = torchvision.models.get_model("resnet18", weights=None).eval()
    model.scale = 2.0  # a setting no builder argument reproduces
    with pytest.raises(ValueError, match=r"does not rebuild ResNet .*scale") as e:
        pk.save(model, tmp_path / "m")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,size", [
    ("regnet_y_400mf", {}, 64), ("resnext50_32x4d", {}, 64), ("mnasnet1_0", {}, 64),
    ("googlenet", {"aux_logits": False}, 64), ("inception_v3", {"aux_logits": False}, 96),
    ("vit_b_16", {}, 224)])
def test_checked_pruning_reloads_identical(tmp_path, name, kwargs, size):
    _, before, after = _roundtrip(tmp_path, name, kwargs, size, check=True)
    assert torch.equal(before, after)
