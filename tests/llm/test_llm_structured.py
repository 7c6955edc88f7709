"""Structured LLM paths (MLP channels, heads, layer drop) through the structural engine."""

from __future__ import annotations


import pytest
import torch
from typer.testing import CliRunner

from llm_models import CORPUS, samples, save_tiny_hf_llama, tiny_bert, tiny_llama
from prunekit.cli import app
from prunekit.llm.structured import prune_heads_mlp



@pytest.mark.parametrize("criterion", ["l2", "taylor"])
def test_llm_structured_mlp_llama_config_and_outputs(criterion):
    model = tiny_llama()
    ids = samples()
    rep = prune_heads_mlp(model, ids, mlp=0.25, criterion=criterion)
    assert model.config.intermediate_size == 48 and rep.config_updates["intermediate_size"] == 48
    for blk in model.model.layers:
        assert blk.mlp.gate_proj.weight.shape == (48, 32) and blk.mlp.down_proj.weight.shape == (32, 48)
    with torch.no_grad():
        out = model(input_ids=ids[:1]).logits
    assert torch.isfinite(out).all() and rep.params_after < rep.params_before


def test_llm_structured_mlp_bert():
    model = tiny_bert()
    prune_heads_mlp(model, samples(), mlp=0.5, criterion="activation")
    assert model.config.intermediate_size == 32
    assert model.encoder.layer[0].output.dense.weight.shape == (32, 32)


def test_llm_structured_errors_leave_model_unchanged():
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="nothing to prune"):
        prune_heads_mlp(model, samples())
    with pytest.raises(ValueError, match="mlp"):
        prune_heads_mlp(model, samples(), mlp=1.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_llm_cli_structured_mlp_roundtrip(tmp_path):
    from transformers import AutoModelForCausalLM

    save_tiny_hf_llama(tmp_path / "d")
    (tmp_path / "c.txt").write_text(CORPUS)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["prune-llm", str(tmp_path / "d"), "--structured", "--mlp", "0.25",
                                   "--calib", str(tmp_path / "c.txt"), "--nsamples", "4",
                                   "--seqlen", "32", "-o", str(out)])
    assert res.exit_code == 0, res.output
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert loaded.config.intermediate_size == 48
    assert loaded.model.layers[0].mlp.up_proj.weight.shape == (48, 32)


def test_llm_structured_heads_gqa_groups():
    model = tiny_llama()
    prune_heads_mlp(model, samples(), heads=0.5)
    att = model.model.layers[0].self_attn
    assert att.q_proj.weight.shape[0] == 16 and att.k_proj.weight.shape[0] == 8  # 1 of 2 KV groups
    assert model.config.num_attention_heads == 2 and model.config.num_key_value_heads == 1


def test_llm_drop_blocks_updates_config():
    from prunekit.llm.structured import drop_blocks

    model = tiny_llama(layers=3)
    removed = drop_blocks(model, samples(), 1)
    assert len(removed) == 1 and len(model.model.layers) == 2
    assert model.config.num_hidden_layers == 2


def test_llm_cli_drop_layers_and_heads_roundtrip(tmp_path):
    from transformers import AutoModelForCausalLM

    save_tiny_hf_llama(tmp_path / "d")
    (tmp_path / "c.txt").write_text(CORPUS)
    common = ["--calib", str(tmp_path / "c.txt"), "--nsamples", "4", "--seqlen", "32"]
    res = CliRunner().invoke(app, ["prune-llm", str(tmp_path / "d"), "--drop-layers", "1",
                                   *common, "-o", str(tmp_path / "o1")])
    assert res.exit_code == 0, res.output
    m1 = AutoModelForCausalLM.from_pretrained(tmp_path / "o1")
    assert m1.config.num_hidden_layers == 1 and len(m1.model.layers) == 1
    res = CliRunner().invoke(app, ["prune-llm", str(tmp_path / "d"), "--structured", "--heads", "0.5",
                                   *common, "-o", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    m2 = AutoModelForCausalLM.from_pretrained(tmp_path / "o2")
    assert m2.config.num_key_value_heads == 1 and m2.model.layers[0].self_attn.k_proj.weight.shape[0] == 8


def test_llm_structured_heads_bert(tmp_path_factory):
    import prunekit as pk
    from prunekit.llm.hfio import save_hf_atomic

    model = tiny_bert()
    prune_heads_mlp(model, samples(), heads=0.5)
    assert model.encoder.layer[0].attention.self.query.weight.shape == (16, 32)
    assert model.encoder.layer[0].attention.output.dense.weight.shape == (32, 16)
    # BertConfig derives head size from hidden/heads: not expressible -> prunekit's loader
    out = save_hf_atomic(model, None, tmp_path_factory.mktemp("b") / "o", structured=True)
    again = pk.load(out)
    x = samples()[:1]
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=x).last_hidden_state, model(input_ids=x).last_hidden_state)
