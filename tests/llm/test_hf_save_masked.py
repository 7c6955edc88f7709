"""``save_pretrained`` on a masked (not finalised) Hugging Face model reloads identically."""

from __future__ import annotations

import copy

import pytest
import torch

import prunekit as pk
from prunekit.masks.apply import masked_modules

transformers = pytest.importorskip("transformers")


def _llama():
    cfg = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                                   num_attention_heads=2, num_key_value_heads=1, vocab_size=64)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def _gpt2():
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("build,exclude", [(_llama, ()), (_gpt2, ("lm_head",))],
                         ids=["llama", "gpt2"])
def test_masked_model_reloads_with_its_masked_weights(tmp_path, build, exclude):
    model = build()
    pk.prune_weights(model, 0.5, exclude=exclude)
    ids = torch.randint(0, 64, (1, 8))
    before = _logits(model, ids)
    model.save_pretrained(tmp_path)
    assert masked_modules(model)  # the model in memory stays masked
    back = type(model).from_pretrained(tmp_path).eval()
    assert not any("parametrizations" in k for k in back.state_dict())
    torch.testing.assert_close(_logits(back, ids), before, rtol=0, atol=0)
    layer = back.model.layers[0] if hasattr(back, "model") else back.transformer.h[0]
    w = next(m.weight for m in layer.modules() if hasattr(m, "weight") and m.weight.dim() == 2)
    assert 0.45 < float((w == 0).float().mean()) < 0.55


def test_tied_masked_weight_is_refused_in_one_line(tmp_path):
    model = _gpt2()
    pk.prune_weights(model, 0.5)  # masks lm_head, whose weight is the token embedding
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"lm_head.weight is masked but tied to .*exclude") as e:
        model.save_pretrained(out)
    assert "\n" not in str(e.value)
    assert not out.exists()


def test_a_copy_saves_itself(tmp_path):
    model = _llama()
    pk.prune_weights(model, 0.5)
    clone = copy.deepcopy(model)
    assert clone.save_pretrained.model is clone


def test_finalised_model_saves_as_usual(tmp_path):
    model = _llama()
    pk.prune_weights(model, 0.5)
    ids = torch.randint(0, 64, (1, 8))
    before = _logits(model, ids)
    pk.finalize(model)
    model.save_pretrained(tmp_path)
    back = type(model).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(_logits(back, ids), before, rtol=0, atol=0)
