"""``prunekit prune-onnx`` end to end, and its one-line errors."""

import hashlib

import pytest
from typer.testing import CliRunner

from prunekit.cli import app

onnx = pytest.importorskip("onnx")


def test_prune_onnx_cli_writes_a_verified_graph(small_cnn_onnx, tmp_path):
    out = tmp_path / "pruned.onnx"
    before = hashlib.sha256(small_cnn_onnx.read_bytes()).hexdigest()
    r = CliRunner().invoke(app, ["prune-onnx", str(small_cnn_onnx), "--structured", "--ratio",
                                 "0.5", "--input-shape", "1,3,16,16", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "OK" in r.output and "frozen channels" in r.output
    onnx.checker.check_model(onnx.load(str(out)))
    assert hashlib.sha256(small_cnn_onnx.read_bytes()).hexdigest() == before


def test_prune_onnx_cli_user_errors_are_one_line(small_cnn_onnx, tmp_path):
    out = tmp_path / "x.onnx"
    r = CliRunner().invoke(app, ["prune-onnx", str(tmp_path / "missing.onnx"), "-o", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "no ONNX file" in r.output and not out.exists()
    r = CliRunner().invoke(app, ["prune-onnx", str(small_cnn_onnx), "--ratio", "2", "-o", str(out)])
    assert r.exit_code == 2 and "ratio" in r.output and not out.exists()
