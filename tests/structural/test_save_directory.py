"""`pk.save` writes a directory whole or not at all: no stale files beside new ones, the
previous save intact when a new one fails, no hidden leftovers after a killed save."""

import os
import stat

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit.datasets import DigitsCNN

SPEC = "module:prunekit.datasets:DigitsCNN"


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return DigitsCNN().eval()


def test_saving_over_a_previous_save_leaves_no_stale_files(tmp_path):
    d = tmp_path / "out"
    pk.save(_model(0), d, spec=SPEC)
    (d / "stale.json").write_text("{}")
    pk.save(_model(1), d, spec=SPEC)
    assert not (d / "stale.json").exists()
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(pk.load(d)(x), _model(1)(x))


def test_a_directory_of_other_files_is_refused_and_untouched(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files"):
        pk.save(_model(), d, spec=SPEC)
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        pk.save(_model(), f, spec=SPEC)


def test_a_failed_save_keeps_the_previous_one(tmp_path):
    d = tmp_path / "out"
    pk.save(_model(0), d, spec=SPEC)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    wrong = nn.Sequential(nn.Linear(3, 4))  # does not rebuild from this spec
    with pytest.raises(ValueError, match="does not rebuild"):
        pk.save(wrong, d, spec=SPEC)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no hidden temporary left


def test_leftovers_of_a_killed_save_are_removed_and_files_are_readable(tmp_path):
    d = tmp_path / "out"
    (tmp_path / ".out.abc123.saving").mkdir()
    (tmp_path / ".out.abc123.saving" / "model.safetensors").write_bytes(b"partial")
    pk.save(_model(), d, spec=SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    umask = os.umask(0)
    os.umask(umask)
    for p in d.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_masked_model_is_refused_in_one_line_and_saves_after_finalize(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=10).eval()
    pk.prune_weights(model, 0.5)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    with pytest.raises(ValueError, match=r"module conv1 still carries a mask.*finalize"):
        pk.save(model, tmp_path / "masked")
    assert not (tmp_path / "masked").exists()
    pk.finalize(model)
    pk.save(model, tmp_path / "plain")
    with torch.no_grad():
        assert torch.equal(pk.load(tmp_path / "plain")(x), want)
