"""CLI user errors: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from prunekit import cli


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))


def not_a_module() -> int:
    return 3


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["prunekit", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exc.value.code, err


def test_wrong_input_shape_structured(monkeypatch, capsys, tmp_path):
    code, err = _run(monkeypatch, capsys, "prune", "structured", f"module:{__name__}:tiny",
                     "--input-shape", "1,5,16,16", "-o", str(tmp_path / "o"))
    assert code == 2 and err.startswith("Error:") and err.count("\n") == 1


def test_factory_returning_non_module(monkeypatch, capsys, tmp_path):
    code, err = _run(monkeypatch, capsys, "prune", "structured", f"module:{__name__}:not_a_module",
                     "--input-shape", "1,3,16,16", "-o", str(tmp_path / "o"))
    assert code == 2 and "nn.Module" in err


def test_output_under_a_file(monkeypatch, capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, err = _run(monkeypatch, capsys, "prune", "structured", f"module:{__name__}:tiny",
                     "--input-shape", "1,3,16,16", "-o", str(tmp_path / "afile" / "sub"))
    assert code == 2 and "not a directory" in err.lower()


def test_unknown_timm_model(monkeypatch, capsys, tmp_path):
    pytest.importorskip("timm")
    code, err = _run(monkeypatch, capsys, "prune", "structured", "timm:doesnotexist",
                     "--input-shape", "1,3,16,16", "-o", str(tmp_path / "o"))
    assert code == 2 and "doesnotexist" in err


def test_pickled_model_path_recorded_absolute(monkeypatch, tmp_path):
    import json

    torch.save(tiny(), tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["prunekit", "prune", "structured", "model.pt", "--trust",
                                      "--input-shape", "1,3,16,16", "-o", "out"])
    try:
        cli.main()
    except SystemExit as exc:
        assert not exc.code
    meta = json.loads((tmp_path / "out" / "prunekit.json").read_text())
    assert meta["base"]["spec"] == str(tmp_path / "model.pt")
