"""Hugging Face decoders with ``config.use_cache`` left True (the default): one-shot pruning,
perplexity and ``verify`` run without a KV cache, give the same results as with the cache off,
and leave the user's config as it was."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit.call import is_kv_cache, no_kv_cache
from prunekit.llm.eval import perplexity
from prunekit.llm.oneshot import prune_llm
from prunekit.structural import plan_structured
from prunekit.structural.verify import verify

transformers = pytest.importorskip("transformers")

VOCAB = 64


def _decoder(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                                      n_positions=32)
        return transformers.GPT2LMHeadModel(cfg).eval()
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    if arch == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common)).eval()
    return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common)).eval()


def _cache_spy(model: nn.Module) -> list[str]:
    """Record every module that receives a live KV cache object (copies share the record)."""
    seen: list[str] = []
    for name, mod in model.named_modules():
        def hook(_m, args, kwargs, name=name):
            live = [k for k, v in kwargs.items() if v is not None and is_kv_cache(k, v)]
            live += [str(i) for i, a in enumerate(args) if is_kv_cache("", a)]
            if live:
                seen.append(f"{name}:{live}")
        mod.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def _pair(arch: str) -> tuple[nn.Module, nn.Module]:
    on = _decoder(arch)
    assert on.config.use_cache, "the default HF decoder config keeps the KV cache on"
    off = copy.deepcopy(on)
    off.config.use_cache = False
    return on, off


ARCHS = ["llama", "gpt2", "qwen2"]


@pytest.mark.parametrize("arch", ARCHS)
def test_prune_llm_and_perplexity_ignore_the_cache_setting(arch):
    on, off = _pair(arch)
    spy = _cache_spy(on)
    g = torch.Generator().manual_seed(1)
    calib = torch.randint(0, VOCAB, (3, 10), generator=g)
    text = torch.randint(0, VOCAB, (40,), generator=g)
    for model in (on, off):
        prune_llm(model, calib, method="sparsegpt", sparsity=0.5)
    for (n, a), b in zip(on.state_dict().items(), off.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    ppl_on = perplexity(on, text, seqlen=12, stride=5, batch_size=2)
    assert ppl_on == perplexity(off, text, seqlen=12, stride=5, batch_size=2)
    assert spy == [], "a KV cache was built during calibration or perplexity"
    assert on.config.use_cache is True and off.config.use_cache is False


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_verify_with_cache_on_matches_cache_off(arch):
    on, off = _pair(arch)
    spy = _cache_spy(on)
    ids = torch.randint(0, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    results = []
    for model in (on, off):
        plan = plan_structured(model, {"input_ids": ids}, ratio=0.5)
        results.append(verify(model, plan, {"input_ids": ids}))
    assert results[0].ok and results[1].ok, results
    assert results[0].max_abs_diff == results[1].max_abs_diff
    assert spy == []
    assert on.config.use_cache is True
    assert model(input_ids=ids, use_cache=True).past_key_values is not None  # model still works


def test_no_kv_cache_restores_the_config_on_error():
    model = _decoder("llama")
    with pytest.raises(RuntimeError), no_kv_cache(model):
        assert model.config.use_cache is False
        raise RuntimeError("boom")
    assert model.config.use_cache is True


class _PlainLM(nn.Module):
    """A causal LM whose forward takes no ``use_cache`` argument and has no config."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, input_ids):
        return transformers.modeling_outputs.CausalLMOutput(logits=self.head(self.emb(input_ids)))


def test_perplexity_of_a_model_without_use_cache_argument():
    torch.manual_seed(0)
    ppl = perplexity(_PlainLM(), torch.randint(0, VOCAB, (30,)), seqlen=8)
    assert 1.0 < ppl < 10 * VOCAB
