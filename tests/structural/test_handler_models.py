"""plan_structured + verify through the attention, RNN and HF Conv1D handlers (attention, RNN, HF Conv1D), hybrid, save."""

import pytest
import torch
import torchvision
from structural_factories import self_attention, tagger
from torch import nn

import prunekit as pk

transformers = pytest.importorskip("transformers")


def _plan_verify(model, x, **kw):
    model.eval()
    plan = pk.plan_structured(model, x, ratio=0.5, **kw)
    pruned = plan.apply(copy=True)
    res = pk.verify(model, plan, x, pruned=pruned)
    assert res.ok, res
    n0 = sum(p.numel() for p in model.parameters())
    n1 = sum(p.numel() for p in pruned.parameters())
    assert n1 < n0
    return pruned


def test_mha_self_attention_model():
    torch.manual_seed(0)
    pruned = _plan_verify(self_attention(), torch.randn(2, 5, 16))
    assert pruned.head.out_features == 3  # outputs keep their meaning
    assert pruned.mha.num_heads == 2  # internal group planned at the same ratio


@pytest.mark.parametrize("kind", ["lstm_bi", "gru"])
def test_rnn_models(kind):
    torch.manual_seed(0)
    m = tagger()
    if kind == "gru":
        m.rnn = nn.GRU(8, 12, num_layers=2, batch_first=True)
        m.head = nn.Linear(12, 5)
    pruned = _plan_verify(m, torch.randint(0, 20, (2, 7)))
    assert pruned.rnn.hidden_size < 12
    assert pruned.head.in_features == pruned.rnn.hidden_size * (2 if kind == "lstm_bi" else 1)


def test_gpt2_conv1d_mlp_pruned():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=16)
    pruned = _plan_verify(transformers.GPT2LMHeadModel(cfg), {"input_ids": torch.randint(0, 64, (2, 6))})
    assert pruned.transformer.h[0].mlp.c_fc.nf < 128
    assert pruned.lm_head.out_features == 64


def test_hf_llama_plan_save_load(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2)
    ids = torch.randint(0, 64, (2, 6))
    pruned = _plan_verify(transformers.LlamaForCausalLM(cfg), {"input_ids": ids})
    attn = pruned.model.layers[0].self_attn
    assert attn.k_proj.out_features == 8 and attn.q_proj.out_features == 16  # one KV group left
    assert pruned.config.num_key_value_heads == 1 and pruned.config.num_attention_heads == 2
    ref = pruned(input_ids=ids).logits
    pk.save(pruned, tmp_path / "llama")
    assert torch.allclose(pk.load(tmp_path / "llama")(input_ids=ids).logits, ref, atol=1e-6)


@pytest.mark.slow
def test_resnet18_plan_save_load_and_hybrid(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    pruned = _plan_verify(torchvision.models.resnet18(weights=None), x)
    ref = pruned(x)
    pk.save(pruned, tmp_path / "r18")
    again = pk.load(tmp_path / "r18")
    assert torch.equal(again(x), ref)

    model = torchvision.models.resnet18(weights=None).eval()
    dense = sum(p.numel() for p in model.parameters())
    out, rep = pk.prune_hybrid(model, x, structured={"ratio": 0.3},
                               weights={"sparsity": 0.5})
    assert rep.params_dense == dense > rep.params_after_structured > rep.nonzero_after_weights
    assert 0.45 <= rep.weights.sparsity <= 0.55
    assert "structured" in rep.summary() and out(x).shape == (1, 1000)
    with pytest.raises(ValueError, match="model"):
        pk.prune_hybrid(model, x, structured={"model": model})
