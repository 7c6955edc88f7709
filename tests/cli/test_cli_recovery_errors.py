"""`run` and `sensitivity`: bad weights and data that do not fit the model are one-line errors
(exit code 2); a sensitivity target out of reach still writes the scan, with the closest choice."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from prunekit import cli
from prunekit.recover.tasks import build_model

RECIPE = """
model: prunekit:mlp
data: {name: digits, limit: 64}
method: unstructured
target: {ratio: 0.5}
finetune: {epochs: 1}
"""


def three_channel() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["prunekit", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("content", ["pickled model", "other tensors", "not a file format"])
def test_run_with_unusable_weights(monkeypatch, capsys, tmp_path, content):
    (tmp_path / "r.yaml").write_text(RECIPE)
    weights = tmp_path / "x.pt"
    if content == "pickled model":
        torch.save(build_model("prunekit:mlp"), weights)
    elif content == "other tensors":
        torch.save({"a": torch.zeros(2)}, weights)
    else:
        weights.write_bytes(b"\x00" * 64)
    code, _, err = _run(monkeypatch, capsys, "run", str(tmp_path / "r.yaml"), "--weights",
                        str(weights), "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and "x.pt" in err
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_run_with_pt_state_dict(monkeypatch, capsys, tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    torch.manual_seed(0)
    torch.save(build_model("prunekit:mlp").state_dict(), tmp_path / "w.pt")
    code, out, _ = _run(monkeypatch, capsys, "run", str(tmp_path / "r.yaml"), "--weights",
                        str(tmp_path / "w.pt"), "--out", str(tmp_path / "o"))
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["sparsity"] == 0.5


def test_sensitivity_channels_mismatch(monkeypatch, capsys, tmp_path):
    code, _, err = _run(monkeypatch, capsys, "sensitivity", f"module:{__name__}:three_channel",
                        "--data", "digits", "--limit", "32", "--ratios", "0.5",
                        "--out", str(tmp_path / "s"))
    assert code == 2 and err.count("\n") == 1 and "3 channels" in err and "(32, 1, 8, 8)" in err


def test_sensitivity_target_out_of_reach_writes_the_scan(monkeypatch, capsys, tmp_path):
    code, out, err = _run(monkeypatch, capsys, "sensitivity", "prunekit:mlp", "--data", "digits",
                          "--limit", "32", "--ratios", "0.5,0.8", "--target", "0.9",
                          "--out", str(tmp_path / "s"))
    assert code == 0 and "out of reach" in err and err.count("\n") == 1
    saved = json.loads((tmp_path / "s" / "sensitivity.json").read_text())
    assert saved["target_reached"] is False and set(saved["chosen"].values()) == {0.8}
    assert saved["removed"] == pytest.approx(0.8, abs=1e-3)
    assert (tmp_path / "s" / "sensitivity.png").exists()
    assert json.loads(out.strip().splitlines()[-1])["target_reached"] is False
