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


def test_prune_onnx_cli_names_an_unconvertible_op(small_cnn_onnx, tmp_path):
    from onnx import helper

    model = onnx.load(str(small_cnn_onnx))
    model.graph.node.append(helper.make_node("MysteryOp", [model.graph.output[0].name], ["y"],
                                             domain="com.example", name="odd_node"))
    model.graph.output[0].name = "y"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    src = tmp_path / "odd.onnx"
    onnx.save(model, str(src))
    r = CliRunner().invoke(app, ["prune-onnx", str(src), "-o", str(tmp_path / "out.onnx")])
    assert r.exit_code == 2 and "MysteryOp" in r.output and "odd_node" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "out.onnx").exists()
