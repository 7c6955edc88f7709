"""Thresholds travel with the model through prunekit.save / prunekit.load."""

import json

import pytest
import torch

from prunekit.dynamic import ActivationSparsityConfig, layer_states, sparsify_activations
from prunekit.serialize import load, save


def test_save_load_round_trip(tiny, calib, tmp_path):
    sparsify_activations(tiny, calib, 0.5, config=ActivationSparsityConfig(
        repeats=2, multi_token="masked"))
    save(tiny, tmp_path / "m", spec="module:dynamic_models:build_tiny")
    doc = json.loads((tmp_path / "m" / "dynamic.json").read_text())
    assert set(doc["layers"]) == set(layer_states(tiny))
    back = load(tmp_path / "m")
    x = torch.randn(1, 1, 32)
    with torch.no_grad():
        assert torch.equal(back(x), tiny(x))
    a, b = layer_states(tiny), layer_states(back)
    assert {n: (s.threshold, s.kernel, s.blocks, s.mask_multi, s.plain) for n, s in a.items()} == \
        {n: (s.threshold, s.kernel, s.blocks, s.mask_multi, s.plain) for n, s in b.items()}


def test_hf_decoder_round_trip(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=2)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (8, 16))
    rep = sparsify_activations(model, ids, 0.4, config=ActivationSparsityConfig(repeats=2))
    assert "lm_head" not in {r.name for r in rep.layers} and len(rep.layers) == 7
    save(model, tmp_path / "hf")
    back = load(tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(back(ids[:1]).logits, model(ids[:1]).logits)
    assert len(layer_states(back)) == 7
