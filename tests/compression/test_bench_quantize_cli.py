"""``prunekit bench --quantize int8``: four variants timed together, sizes and int8 columns."""

import json

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("bitarray")

from prunekit.bench import BenchConfig, compare  # noqa: E402
from prunekit.cli import app  # noqa: E402
from prunekit.compression import compress, quantize  # noqa: E402
from prunekit.io import load_model_spec  # noqa: E402
from prunekit.masks import finalize  # noqa: E402
from prunekit.report.tables import models_table, speedup_table  # noqa: E402
from prunekit.serialize import save  # noqa: E402
from prunekit.weights import prune_weights  # noqa: E402

SPEC = "prunekit:cnn2d"
FAST = ["--input-shape", "1,1,8,8", "--repeats", "2", "--max-repeats", "2", "--warmup", "0",
        "--threads", "1", "--budget", "1"]
REL_TOL = 0.05  # int8 vs fp32: relative L2 error of the logits on a random batch


@pytest.fixture
def pruned_dir(tmp_path):
    torch.manual_seed(0)
    m = load_model_spec(SPEC)
    prune_weights(m, 0.8, scope="layer")
    finalize(m)
    save(m, tmp_path / "pruned", spec=SPEC)
    return tmp_path / "pruned"


def test_quantize_int8_four_rows(tmp_path, pruned_dir):
    before = sorted(p.name for p in pruned_dir.iterdir())
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["bench", SPEC, str(pruned_dir), "--quantize", "int8",
                                 "--runtime", "onnxruntime", "--batch", "1,2", *FAST,
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "report.json").read_text())
    names = [SPEC, "pruned", f"{SPEC}+int8", "pruned+int8"]
    assert list(data["models"]) == names
    for b in (1, 2):
        cells = {c["model"]: c for c in data["cells"] if c["batch"] == b}
        assert set(cells) == set(names)
        assert all(c["status"] == "ok" and c["runtime"] == "onnxruntime" for c in cells.values())
        rows = {s["model"]: s for s in data["speedups"] if s["batch"] == b}
        assert set(rows) == set(names[1:]) and all(s["baseline"] == SPEC for s in rows.values())
        assert rows["pruned+int8"]["int8_over_fp32"] > 0 and "int8_over_fp32" not in rows["pruned"]
    models = data["models"]
    assert models["pruned"]["compressed_bytes"] < models[SPEC]["compressed_bytes"]
    for name in names[2:]:
        q = models[name]["int8"]
        assert q["mode"] == "static" and q["rel_err"] < REL_TOL and q["top1_agree"] >= 0.5
        assert models[name]["macs"] == models[q["source"]]["macs"]
    assert "int8 over its fp32" in r.output and "compressed size" in r.output
    md = (out / "report.md").read_text()
    assert "compressed size" in md and "static int8 of pruned" in md
    assert sorted(p.name for p in pruned_dir.iterdir()) == before


@pytest.mark.parametrize("args, text", [
    (["--quantize", "int4", "--runtime", "onnxruntime"], "--quantize must be int8"),
    (["--quantize", "int8"], "add --runtime onnxruntime"),
    (["--quantize", "int8", "--runtime", "onnxruntime", "--dtype", "bf16"], "--dtype fp32"),
])
def test_quantize_bad_input_one_line_exit_2(args, text):
    r = CliRunner().invoke(app, ["bench", SPEC, *args, *FAST])
    assert r.exit_code == 2 and text in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_pkc_file_as_bench_model(tmp_path, pruned_dir):
    m = load_model_spec(str(pruned_dir))
    compress(m, tmp_path / "m.pkc", spec=SPEC)
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["bench", SPEC, str(tmp_path / "m.pkc"), "--batch", "1", *FAST,
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "report.json").read_text())
    assert data["models"]["m.pkc"]["pkc_bytes"] == (tmp_path / "m.pkc").stat().st_size
    assert ".pkc size" in models_table(data)[1]
    bad = tmp_path / "bad.pkc"
    bad.write_bytes(b"PKCZ" + b"\0" * 64)
    r = CliRunner().invoke(app, ["bench", SPEC, str(bad), *FAST])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_int8_module_timed_by_onnxruntime_only():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.randn(1, 1, 8, 8)
    q = quantize(cnn, calib_data=[torch.randn(2, 1, 8, 8) for _ in range(2)])
    res = compare({"fp32": cnn, "int8": q.module(cnn)}, x,
                  BenchConfig(runtimes=("eager", "onnxruntime"), repeats=2, max_repeats=2,
                              warmup=0, budget_s=1, threads=1))
    status = {(c.model, c.runtime): c.ok for c in res.cells}
    assert status == {("fp32", "eager"): True, ("fp32", "onnxruntime"): True,
                      ("int8", "eager"): False, ("int8", "onnxruntime"): True}
    assert "only under runtime='onnxruntime'" in res.cell("int8", "eager", 1).error
    assert res.costs["int8"].macs == res.costs["fp32"].macs
    assert "int8 over its fp32" not in speedup_table(res.to_dict())[1]
