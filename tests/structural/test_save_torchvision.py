"""Pruned torchvision classification models, built the ordinary way, save and reload exactly.

``pk.save`` must recognise the builder and the constructor arguments from the model alone
(RegNet widths, ResNeXt groups, MNASNet layer versions, GoogLeNet/Inception without auxiliary
heads, a ViT built for another image size) or refuse at save time in one line.
"""

from __future__ import annotations

import json
import os

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
    with pytest.raises(ValueError, match=r"does not rebuild ResNet \(its attribute scale = "
                                         r"2.0 rebuilds as None\)") as e:
        pk.save(model, tmp_path / "m")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "m").exists()


# one model per family in the slow tier; every classification model with PRUNEKIT_SAVE_ALL=1
# (benchmarks/save_roundtrip.py runs the same sweep and writes its table to the results page)
FAMILIES = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b2", "efficientnet_v2_s",
            "googlenet", "inception_v3", "maxvit_t", "mnasnet1_0", "mobilenet_v2",
            "mobilenet_v3_small", "regnet_y_400mf", "resnet18", "shufflenet_v2_x0_5",
            "squeezenet1_0", "swin_t", "swin_v2_t", "vgg11", "vit_b_16", "wide_resnet50_2"]
SIZE = {"inception_v3": 96, "maxvit_t": 224, "vit_b_16": 224, "vit_b_32": 224, "vit_l_16": 224,
        "vit_l_32": 224, "vit_h_14": 224}
TOO_BIG = ("vit_h_14", "regnet_y_128gf", "vit_l_16", "vit_l_32", "convnext_large",
           "regnet_y_32gf")  # over 4 GB for build + prune + save + proof + load


def _sweep() -> list[str]:
    if os.environ.get("PRUNEKIT_SAVE_ALL") != "1":
        return FAMILIES
    return [m for m in torchvision.models.list_models(module=torchvision.models)
            if m not in TOO_BIG]


@pytest.mark.slow
@pytest.mark.parametrize("name", _sweep())
def test_every_family_reloads_identical(tmp_path, name):
    _, before, after = _roundtrip(tmp_path, name, {}, SIZE.get(name, 64))
    assert torch.equal(before, after)
