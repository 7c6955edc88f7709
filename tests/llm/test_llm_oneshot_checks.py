"""N:M validity, encoder support, OWL, and clear errors with the model left untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llm_models import samples, tiny_bert, tiny_llama
from prunekit.llm import oneshot
from prunekit.llm.blocks import find_blocks
from prunekit.llm.oneshot import OneShotConfig, prune_llm
from prunekit.llm.owl import owl_sparsities
from prunekit.llm.registry import LLM_METHODS, LayerMethod
from prunekit.masks.select import is_nm_valid


def _linears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".layers." in n}


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
def test_llm_nm_valid_every_layer(method, pattern):
    model = tiny_llama()
    prune_llm(model, samples(), method=method, pattern=pattern, device="cpu")
    n, m = (int(v) for v in pattern.split(":"))
    for name, lin in _linears(model).items():
        nz = lin.weight != 0
        assert is_nm_valid(nz, n, m), name
        assert int(nz.sum()) == lin.weight.numel() * n // m, name  # random init: no extra zeros


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_llm_unstructured_sparsity_and_untouched_rest(method):
    model = tiny_llama()
    before = _snapshot(model)
    rep = prune_llm(model, samples(), method=method, sparsity=0.5, device="cpu")
    for name, lin in _linears(model).items():
        assert abs(float((lin.weight == 0).float().mean()) - 0.5) < 0.02, name
    after = model.state_dict()
    for k in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"):
        assert torch.equal(before[k], after[k])
    assert len(rep.layer_sparsity) == 14 and abs(rep.overall_sparsity - 0.5) < 0.02


def test_llm_encoder_blocks_are_found_and_pruned():
    model = tiny_bert()
    assert find_blocks(model)[0] == "encoder.layer"
    rep = prune_llm(model, samples(), method="sparsegpt", pattern="2:4", device="cpu")
    assert rep.blocks_path == "encoder.layer"
    w = model.encoder.layer[1].intermediate.dense.weight
    assert is_nm_valid(w != 0, 2, 4)


def test_llm_owl_nonuniform_sparsity_averages_target():
    model = tiny_llama(layers=3)
    rep = prune_llm(model, samples(), method="wanda", sparsity=0.5, owl=True, owl_lambda=0.1, device="cpu")
    assert len(set(round(s, 6) for s in rep.block_sparsity)) > 1
    assert abs(sum(rep.block_sparsity) / 3 - 0.5) < 1e-9
    assert max(rep.block_sparsity) - min(rep.block_sparsity) <= 0.2 + 1e-9


def test_llm_owl_sparsities_more_outliers_less_sparse():
    s = owl_sparsities([0.01, 0.02, 0.03], 0.5, 0.1)
    assert s[0] > s[1] > s[2] and abs(sum(s) / 3 - 0.5) < 1e-12
    assert owl_sparsities([0.02, 0.02], 0.5, 0.1) == [0.5, 0.5]


def test_llm_model_without_blocks_is_a_clear_error():
    model = nn.Sequential(nn.Embedding(96, 16), nn.Linear(16, 16))
    before = _snapshot(model)
    with pytest.raises(ValueError, match="no transformer block list"):
        prune_llm(model, samples(), method="wanda", sparsity=0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_llm_pattern_not_dividing_layer_is_a_clear_error_model_untouched():
    model = tiny_llama(inter=36)  # down_proj has in_features=36, not divisible by 8
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"4:8 does not divide.*mlp\.down_proj \(in_features=36\)"):
        prune_llm(model, samples(), method="sparsegpt", pattern="4:8", device="cpu")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_llm_missing_samples_and_bad_config_errors():
    with pytest.raises(ValueError, match="needs calibration samples"):
        prune_llm(tiny_llama(), None, method="wanda")
    prune_llm(tiny_llama(), None, method="magnitude")  # magnitude needs no data
    with pytest.raises(ValueError, match="unknown one-shot LLM method 'obs'"):
        OneShotConfig(method="obs")
    with pytest.raises(ValueError, match="sparsity"):
        OneShotConfig(sparsity=1.0)
    with pytest.raises(ValueError, match="N:M"):
        OneShotConfig(pattern="4:2")
    with pytest.raises(ValueError, match="blocksize 100 must be a multiple of M=8"):
        OneShotConfig(method="sparsegpt", pattern="4:8", blocksize=100)
    with pytest.raises(ValueError, match="owl"):
        OneShotConfig(owl=True, pattern="2:4")


def test_llm_failure_midway_restores_weights(monkeypatch):
    model = tiny_llama()
    before = _snapshot(model)
    real = LLM_METHODS.get("wanda")
    calls = {"n": 0}

    def flaky(w, stats, target):
        calls["n"] += 1
        if calls["n"] > 9:  # fails in the second block, after the first was written
            raise RuntimeError("boom")
        return real.prune(w, stats, target)

    monkeypatch.setattr(oneshot.LLM_METHODS, "get", lambda name: LayerMethod("wanda", "act_norm", flaky))
    with pytest.raises(RuntimeError, match="boom"):
        prune_llm(model, samples(), method="wanda", sparsity=0.5, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_llm_gpt2_conv1d_layers_grouped_along_input_dim():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64)).eval()
    rep = prune_llm(model, samples(), method="sparsegpt", pattern="2:4", device="cpu")
    assert rep.blocks_path == "transformer.h"
    w = model.transformer.h[0].mlp.c_proj.weight  # Conv1D stores (in=128, out=32)
    assert w.shape == (128, 32)
    assert is_nm_valid(w.t() != 0, 2, 4)
