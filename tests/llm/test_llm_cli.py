"""prune-llm / eval-ppl: HF save/load round trip, atomic output, clear errors."""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from llm_models import CORPUS, save_tiny_hf_llama
from prunekit.cli import app

runner = CliRunner()


@pytest.fixture()
def hf_dir(tmp_path):
    d = tmp_path / "dense"
    save_tiny_hf_llama(d)
    (tmp_path / "calib.txt").write_text(CORPUS)
    return d


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("method,shape", [("sparsegpt", ["--pattern", "2:4"]), ("wanda", ["--sparsity", "0.5"])])
def test_llm_cli_prune_roundtrip_identical_logits(hf_dir, tmp_path, method, shape):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "pruned"
    res = _run("prune-llm", f"hf:{hf_dir}", "--method", method, *shape, "--calib",
               tmp_path / "calib.txt", "--nsamples", 8, "--seqlen", 32, "--device", "cpu", "-o", out)
    assert res.exit_code == 0, res.output
    assert "saved" in res.output
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    w = loaded.model.layers[1].mlp.down_proj.weight
    assert abs(float((w == 0).float().mean()) - 0.5) < 0.01
    # prune again in-process with the same settings: the saved model is exactly that result
    from prunekit.llm.calib import calibration_samples
    from prunekit.llm.oneshot import prune_llm

    ref = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    ids = calibration_samples(tmp_path / "calib.txt", tok, nsamples=8, seqlen=32, seed=0)
    kw = {"pattern": "2:4"} if "--pattern" in shape else {"sparsity": 0.5}
    prune_llm(ref, ids, method=method, device="cpu", **kw)
    x = torch.tensor([tok.encode("def f3(x):\n    return x")])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, ref(x).logits, atol=0, rtol=0)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".pruned")]


def test_llm_cli_eval_ppl(hf_dir, tmp_path):
    res = _run("eval-ppl", hf_dir, "--text", tmp_path / "calib.txt", "--seqlen", 64)
    assert res.exit_code == 0, res.output
    ppl = float(re.search(r"perplexity ([0-9.]+)", res.output).group(1))
    assert 100 < ppl < 1000  # random 256-way model: about uniform


def test_llm_cli_errors_write_nothing(hf_dir, tmp_path):
    out = tmp_path / "o"
    short = tmp_path / "short.txt"
    short.write_text("too short")
    cases = [
        (["--method", "wanda", "--calib", short, "--nsamples", 4, "--seqlen", 32], "too short"),
        (["--method", "wanda"], "--calib"),
        (["--method", "obs", "--calib", tmp_path / "calib.txt"], "unknown one-shot LLM method"),
    ]
    for extra, msg in cases:
        res = _run("prune-llm", hf_dir, "-o", out, *extra)
        assert res.exit_code == 2, res.output
        assert msg in res.output
        assert not out.exists()
    bad = tmp_path / "bad"
    save_tiny_hf_llama(bad, inter=36)
    res = _run("prune-llm", bad, "-o", out, "--method", "sparsegpt", "--pattern", "4:8",
               "--calib", tmp_path / "calib.txt", "--nsamples", 2, "--seqlen", 16)
    assert res.exit_code == 2 and "does not divide" in res.output and not out.exists()
    res = _run("prune-llm", tmp_path / "nowhere", "-o", out, "--method", "magnitude")
    assert res.exit_code == 2 and "config.json" in res.output and not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = _run("prune-llm", hf_dir, "-o", out, "--method", "magnitude")
    assert res.exit_code == 2 and "exists" in res.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_llm_cli_eval_embed(tmp_path):
    from llm_models import byte_tokenizer, tiny_bert

    model = tiny_bert()
    model.resize_token_embeddings(256)
    tok = byte_tokenizer()
    tok.pad_token = "!"
    model.save_pretrained(tmp_path / "enc")
    tok.save_pretrained(tmp_path / "enc")
    (tmp_path / "t.txt").write_text("\n\n".join(f"paragraph {i} about foxes" for i in range(6)))
    res = _run("eval-embed", tmp_path / "enc", tmp_path / "enc", "--text", tmp_path / "t.txt")
    assert res.exit_code == 0, res.output
    assert "mean cosine 1.0000" in res.output and "top-1 agreement 1.000" in res.output
