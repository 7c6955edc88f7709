"""pk.save proves that what it wrote rebuilds the model, or refuses with one line."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from torch import nn

import prunekit as pk

tv = pytest.importorskip("torchvision")


def _roundtrip(model, x, tmp_path):
    plan = pk.plan_structured(model, x, ratio=0.5)
    pruned = plan.apply()
    out = pk.save(pruned, tmp_path / "m")
    again = pk.load(out)
    with torch.no_grad():
        torch.testing.assert_close(again(x), pruned(x), atol=0, rtol=0)
    for f in out.iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o666 & ~_umask(), f
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "prunekit.json"]
    return again


def _umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


def test_mnasnet_state_dict_version_survives(tmp_path):
    model = tv.models.get_model("mnasnet0_5", weights=None).eval()
    _roundtrip(model, torch.randn(1, 3, 32, 32), tmp_path)


@pytest.mark.slow
def test_resnext_groups_survive(tmp_path):
    model = tv.models.get_model("resnext50_32x4d", weights=None).eval()
    again = _roundtrip(model, torch.randn(1, 3, 32, 32), tmp_path)
    assert again.layer1[0].conv2.groups > 1


def test_unbuildable_model_refused_in_one_line_and_nothing_left(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU())  # no builder names it (RegNet saves now)
    with pytest.raises(ValueError, match="spec") as err:
        pk.save(model, tmp_path / "r")
    assert "\n" not in str(err.value)
    assert not any((tmp_path / "r").glob("*"))


class Wider(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(4, width)


def make_other() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8))


def test_wrong_spec_refused_and_files_removed(tmp_path):
    with pytest.raises(ValueError, match="does not rebuild"):
        pk.save(Wider(), tmp_path / "w", spec=f"module:{__name__}:make_other")
    assert not any((tmp_path / "w").glob("*"))
