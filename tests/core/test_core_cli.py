import json

import pytest
import torch
from typer.testing import CliRunner

from prunekit.cli import app
from prunekit.demo import DigitsCNN
from prunekit.io import load_weights, save_weights
from prunekit.masks import is_nm_valid, layout_for

runner = CliRunner()
ARCH = "module:prunekit.demo:DigitsCNN"


@pytest.fixture()
def weights(tmp_path):
    torch.manual_seed(0)
    return save_weights(DigitsCNN(), tmp_path / "dense.safetensors")


def test_stats_json(weights):
    r = runner.invoke(app, ["stats", str(weights), "--arch", ARCH, "--input-shape", "1,1,8,8", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["params"] > 0 and d["macs"] > 0 and d["sparsity"] < 0.01  # only BN biases start at zero


def test_stats_table_and_bad_shape(weights):
    r = runner.invoke(app, ["stats", str(weights), "--arch", ARCH, "--input-shape", "1,1,8,8"])
    assert r.exit_code == 0 and "total" in r.output
    r = runner.invoke(app, ["stats", str(weights), "--arch", ARCH, "--input-shape", "1,3,8,8"])
    assert r.exit_code != 0 and "input" in r.output.lower()


def test_prune_global_and_24(weights, tmp_path):
    out = tmp_path / "p.safetensors"
    r = runner.invoke(app, ["prune", "weights", str(weights), "--arch", ARCH, "--method", "magnitude",
                            "--sparsity", "0.7", "--scope", "global", "-o", str(out)])
    assert r.exit_code == 0, r.output
    sd = load_weights(out)
    assert set(sd) == set(DigitsCNN().state_dict())
    w = [sd[k] for k in sd if k.endswith("weight") and sd[k].dim() > 1]
    zeros = sum(int((t == 0).sum()) for t in w)
    assert zeros / sum(t.numel() for t in w) == pytest.approx(0.7, abs=1e-4)
    out24 = tmp_path / "p24.safetensors"
    r = runner.invoke(app, ["prune", "weights", str(weights), "--arch", ARCH, "--pattern", "2:4",
                            "--skip-incompatible", "-o", str(out24)])
    assert r.exit_code == 0, r.output
    assert "skipped features.0" in r.output
    m = DigitsCNN()
    m.load_state_dict(load_weights(out24))
    conv = m.features[3]
    assert is_nm_valid(layout_for(conv).to_rows(conv.weight != 0), 2, 4)


def test_prune_bad_inputs_leave_files(weights, tmp_path):
    before = weights.read_bytes()
    out = tmp_path / "o.safetensors"
    for args in (["--sparsity", "1.5"], ["--pattern", "2:4"], ["--exclude", "nope"], ["--scope", "weird"]):
        r = runner.invoke(app, ["prune", "weights", str(weights), "--arch", ARCH, "-o", str(out), *args])
        assert r.exit_code != 0, args
        assert not out.exists()
    assert weights.read_bytes() == before


def test_pickled_model_needs_trust(tmp_path):
    f = tmp_path / "m.pt"
    torch.save(DigitsCNN(), f)
    r = runner.invoke(app, ["stats", str(f), "--input-shape", "1,1,8,8"])
    assert r.exit_code != 0 and "trust" in r.output
    r = runner.invoke(app, ["stats", str(f), "--input-shape", "1,1,8,8", "--trust", "--json"])
    assert r.exit_code == 0, r.output
