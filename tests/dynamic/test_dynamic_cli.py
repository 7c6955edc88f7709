"""prune-llm --dynamic and bench-generate on a tiny offline LLaMA."""

import json

import pytest
import torch
from typer.testing import CliRunner

from prunekit.cli import app

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

CORPUS = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}  # the quick brown fox\n\n"
                 for i in range(120))


def _byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tk = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk)


@pytest.fixture
def hf_dir(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=128)
    d = tmp_path / "tiny"
    transformers.LlamaForCausalLM(cfg).save_pretrained(d)
    _byte_tokenizer().save_pretrained(d)
    (tmp_path / "calib.txt").write_text(CORPUS)
    return d


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_prune_llm_dynamic_then_bench_generate(hf_dir, tmp_path):
    out = tmp_path / "dyn"
    r = _run("prune-llm", f"hf:{hf_dir}", "-o", out, "--method", "none", "--dynamic", "0.4",
             "--calib", tmp_path / "calib.txt", "--nsamples", 8, "--seqlen", 32)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "dynamic.json").read_text())
    assert len(doc["layers"]) == 14
    assert "held-out sparsity" in r.output
    r = _run("bench-generate", f"hf:{out}", "--new-tokens", 2, "--rounds", 2, "--prompt-len", 4)
    assert r.exit_code == 0, r.output
    assert "speedup" in r.output and "tok/s" in r.output
    r = _run("bench-generate", f"hf:{hf_dir}", f"hf:{out}", "--new-tokens", 2, "--rounds", 2,
             "--prompt-len", 4, "--batch", 2)
    assert r.exit_code == 0, r.output


def test_bad_input_is_one_line_and_writes_nothing(hf_dir, tmp_path):
    out = tmp_path / "bad"
    r = _run("prune-llm", f"hf:{hf_dir}", "-o", out, "--method", "none", "--dynamic", "1.0",
             "--calib", tmp_path / "calib.txt")
    assert r.exit_code == 2 and "--dynamic" in r.output and not out.exists()
    r = _run("prune-llm", f"hf:{hf_dir}", "-o", out, "--method", "none")
    assert r.exit_code == 2 and "--dynamic" in r.output
    r = _run("bench-generate", f"hf:{hf_dir}", "--new-tokens", 2)
    assert r.exit_code == 2 and "no activation thresholds" in r.output
    r = _run("bench-generate", f"hf:{hf_dir}", "--batch", 0)
    assert r.exit_code == 2 and "--batch" in r.output
