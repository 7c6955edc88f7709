"""``prunekit compress`` and ``prunekit stats FILE.pkc``."""

import pytest
from typer.testing import CliRunner

pytest.importorskip("bitarray")

from prunekit.cli import app  # noqa: E402
from prunekit.commands.compression import parse_bits  # noqa: E402

SPEC = "module:prunekit.recover.tasks:mlp"


def test_compress_then_stats(tmp_path):
    out = tmp_path / "m.pkc"
    r = CliRunner().invoke(app, ["compress", SPEC, "--prune", "0.9", "--bits", "fc=5",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "+ Huffman" in r.output and out.is_file()
    r = CliRunner().invoke(app, ["stats", str(out)])
    assert r.exit_code == 0, r.output
    assert "dense fp32" in r.output and "1.weight" in r.output
    r = CliRunner().invoke(app, ["stats", str(out), "--json"])
    assert r.exit_code == 0 and '"ratio"' in r.output


def test_user_errors_exit_2_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["compress", SPEC, "--bits", "fc=17", "-o", str(tmp_path / "x.pkc")])
    assert r.exit_code == 2 and "bits" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.pkc").exists()
    bad = tmp_path / "bad.pkc"
    bad.write_bytes(b"PKCZ" + b"\0" * 100)
    r = runner.invoke(app, ["stats", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_parse_bits():
    assert parse_bits("5") == 5
    assert parse_bits("conv=8,fc=5") == {"Conv1d": 8, "Conv2d": 8, "Conv3d": 8, "Linear": 5}
    assert parse_bits("layer1.*=4") == {"layer1.*": 4}
    with pytest.raises(ValueError, match="--bits"):
        parse_bits("conv:8")
