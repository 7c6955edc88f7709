"""`verify` on Hugging Face decoders with the KV cache left on (the default), under every
cache-argument convention transformers has used (``past_key_value``, ``past_key_values``,
``layer_past``, and 5.x's ``cache=``)."""

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit.call import is_kv_cache as _is_cache

transformers = pytest.importorskip("transformers")


def _decoders():
    gpt2 = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=16)
    llama = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2)
    return {"gpt2": lambda: transformers.GPT2LMHeadModel(gpt2),
            "llama": lambda: transformers.LlamaForCausalLM(llama)}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_verify_decoder_with_cache_enabled(arch):
    torch.manual_seed(0)
    model = _decoders()[arch]().eval()
    assert model.config.use_cache, "the default HF config keeps the KV cache on"
    ids = torch.randint(0, 64, (2, 6))
    plan = pk.plan_structured(model, {"input_ids": ids}, ratio=0.5)
    res = pk.verify(model, plan, {"input_ids": ids})
    assert res.ok, res
    # the dense model is untouched and still runs with its cache
    out = model(input_ids=ids, use_cache=True)
    assert out.past_key_values is not None


class _FakeCache:
    pass


class DynamicCache(_FakeCache):  # named like transformers' caches
    pass


@pytest.mark.parametrize("name,value,expected", [
    ("cache", object(), True), ("past_key_values", None, True), ("layer_past", 1, True),
    ("past_key_value", (), True), ("anything", DynamicCache(), True),
    ("attention_mask", torch.ones(1), False), ("hidden_states", nn.Identity(), False),
])
def test_cache_arguments_recognised(name, value, expected):
    assert _is_cache(name, value) is expected
