"""``analyze`` with compressed-size, int8 and Deep Compression stage columns."""

import json

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("bitarray")

from prunekit.bench import BenchConfig, analyze  # noqa: E402
from prunekit.cli import app  # noqa: E402
from prunekit.compression.columns import analyze_extras, stage_sizes  # noqa: E402
from prunekit.masks import finalize  # noqa: E402
from prunekit.report.tables import stages_table, sweep_table  # noqa: E402
from prunekit.weights import prune_weights  # noqa: E402

FAST = BenchConfig(runtimes=("onnxruntime",), repeats=2, max_repeats=2, warmup=0, budget_s=1,
                   threads=1, memory=False)


def test_stage_sizes_shrink_and_model_untouched(pruned_mlp):
    before = {k: v.clone() for k, v in pruned_mlp.state_dict().items()}
    rows = stage_sizes(pruned_mlp)
    assert [r["stage"] for r in rows] == ["dense", "pruned", "shared", "huffman", "file"]
    b = [r["bytes"] for r in rows[:4]]
    assert b[0] > b[1] > b[2] > b[3]  # each stage stores fewer bytes
    assert rows[3]["ratio"] > 20  # 90% pruned + 5-bit sharing + Huffman on an MLP
    after = pruned_mlp.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert pruned_mlp(torch.randn(2, 64)).shape == (2, 10)  # still a working masked model


def test_stage_sizes_of_finalized_pruning_match_masked(pruned_mlp, make_mlp):
    torch.manual_seed(0)
    plain = make_mlp()
    prune_weights(plain, 0.9, scope="layer")
    finalize(plain)
    masked, final = stage_sizes(pruned_mlp), stage_sizes(plain)
    assert [r["bytes"] for r in masked[:4]] == [r["bytes"] for r in final[:4]]


@pytest.mark.slow
def test_analyze_gains_size_int8_and_stage_rows(make_cnn, tmp_path):
    torch.manual_seed(0)
    net = make_cnn().eval()
    x = torch.randn(1, 1, 8, 8)
    res = analyze(net, x, methods=["magnitude-unstructured"], ratios=[0.8], config=FAST,
                  sparse_backends=False, out_dir=str(tmp_path),
                  extras=analyze_extras(x, int8=True, stages=True, threads=1))
    d = res.to_dict()
    assert {"dense+int8", "magnitude-unstructured@0.8+int8"} <= set(d["models"])
    row = d["sweep"][0]
    assert row["compressed_bytes"] < d["models"]["dense"]["compressed_bytes"]
    assert row["int8_speedup"] > 0 and row["int8_over_fp32"] > 0
    stages = [s for s in d["compression_stages"] if s["model"] == row["method"] + "@0.8"]
    assert row["huffman_bytes"] == stages[-1]["bytes"]
    header = sweep_table(d)[1]
    assert {"compressed size", "Deep Compression size", "int8 speedup"} <= set(header)
    assert len(stages_table(d)[2]) == 2 * 5  # dense and the cell, five rows each
    md = (tmp_path / "report.md").read_text()
    assert "Where the bytes went" in md and "+ Huffman coding" in md


@pytest.mark.slow
def test_analyze_cli_quantize_and_deep_compression(tmp_path):
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, [
        "analyze", "prunekit:cnn2d", "--methods", "magnitude-unstructured", "--ratios", "0.8",
        "--input-shape", "1,1,8,8", "--runtime", "onnxruntime", "--quantize", "int8",
        "--deep-compression", "--no-sparse-backends", "--repeats", "2", "--max-repeats", "2",
        "--warmup", "0", "--threads", "1", "--budget", "1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "report.json").read_text())
    assert "int8_speedup" in data["sweep"][0] and data["compression_stages"]
    assert "Where the bytes went" in r.output


def test_analyze_cli_quantize_needs_onnxruntime(tmp_path):
    r = CliRunner().invoke(app, ["analyze", "prunekit:cnn2d", "--input-shape", "1,1,8,8",
                                 "--quantize", "int8", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "onnxruntime" in r.output and "Traceback" not in r.output


def test_finalizing_or_sharing_a_copy_leaves_the_original_working(pruned_mlp):
    import copy

    from prunekit.compression import share_weights

    x = torch.randn(2, 64)
    ref = pruned_mlp(x)
    finalize(copy.deepcopy(pruned_mlp))
    share_weights(copy.deepcopy(pruned_mlp))
    assert torch.equal(pruned_mlp(x), ref)
