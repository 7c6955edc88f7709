"""Zero-heads-then-remove equivalence for nn.MultiheadAttention and HF attention families."""

import copy

import pytest
import torch
from torch import nn

from prunekit.handlers import get_handler
from prunekit.handlers.attention import PrunedMultiheadAttention

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("batch_first,bias_kv", [(True, False), (False, True)])
def test_mha_heads_in_out(batch_first, bias_kv):
    torch.manual_seed(0)
    m = nn.MultiheadAttention(16, 4, batch_first=batch_first, add_bias_kv=bias_kv).eval()
    x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
    p = copy.deepcopy(m)
    p.__class__ = PrunedMultiheadAttention  # same maths as the parent before any surgery
    full = m(x, x, x, key_padding_mask=kpm, attn_mask=mask)
    mine = p(x, x, x, key_padding_mask=kpm, attn_mask=mask)
    assert (full[0] - mine[0]).abs().max() <= 1e-5 and (full[1] - mine[1]).abs().max() <= 1e-5
    z = copy.deepcopy(m)
    with torch.no_grad():
        z.out_proj.weight[:, 4:8] = 0
        z.in_proj_weight[:, 3] = 0
    x0 = x.clone()
    x0[..., 3] = 0
    ref = z(x0, x0, x0, key_padding_mask=kpm, need_weights=False)[0][..., :10]
    h = get_handler(m)
    (g,) = h.internal_groups(m)
    assert g.size == 4 and all(t.shape[a] == 16 for t, a in g.weight_slices)
    g.prune(torch.tensor([0, 2, 3]))
    keep = torch.tensor([i for i in range(16) if i != 3])
    h.prune_in(m, keep)
    h.prune_out(m, torch.arange(10))
    xs = x[..., keep]
    out = m(xs, xs, xs, key_padding_mask=kpm, need_weights=False)[0]
    assert isinstance(m, nn.MultiheadAttention) and m.num_heads == 3 and m.embed_dim == 10
    assert (out - ref).abs().max() <= 1e-5


def _hidden(out):
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _check(model, inputs, zero, prune):
    model.eval()
    z = copy.deepcopy(model)
    for m in z.modules():
        if get_handler(m) is not None and hasattr(m, "config"):
            zero(m)
    ref = _hidden(z(**inputs))
    n = 0
    for m in model.modules():
        if get_handler(m) is not None and hasattr(m, "config"):
            prune(m)
            n += 1
    assert n > 0
    assert (_hidden(model(**inputs)) - ref).abs().max() <= 1e-4
    return model


def test_llama_gqa_kv_groups():
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    ids = torch.randint(0, 64, (2, 6))

    def zero(m):  # kv group 1 = query heads 2,3 = o_proj columns 16:32
        with torch.no_grad():
            m.o_proj.weight[:, 16:] = 0

    def prune(m):
        (g,) = get_handler(m).internal_groups(m)
        assert g.name == "kv_groups" and g.size == 2
        assert all(t.shape[a] == 32 for t, a in g.weight_slices)
        g.prune(torch.tensor([0]))

    _check(model, {"input_ids": ids}, zero, prune)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.out_features == 16 and attn.k_proj.out_features == 8
    assert attn.num_key_value_groups == 2
    assert model.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=0).shape == (2, 8)


def test_llama_gqa_query_heads_within_groups():
    from prunekit.handlers.attention_hf import HFAttentionHandler

    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    h = HFAttentionHandler(gqa="query_heads")

    def zero(m):  # query position 0 in each group = heads 0 and 2 = o_proj cols 0:8, 16:24
        with torch.no_grad():
            m.o_proj.weight[:, 0:8] = 0
            m.o_proj.weight[:, 16:24] = 0

    def prune(m):
        (g,) = h.internal_groups(m)
        assert g.name == "query_heads" and g.size == 2
        assert all(t.shape[a] == 16 for t, a in g.weight_slices)
        g.prune(torch.tensor([1]))

    _check(model, {"input_ids": torch.randint(0, 64, (2, 6))}, zero, prune)
    attn = model.model.layers[0].self_attn
    assert attn.num_key_value_groups == 1 and attn.k_proj.out_features == 16
    with pytest.raises(ValueError, match="gqa"):
        HFAttentionHandler(gqa="heads")


def test_bert_heads_are_output_channels():
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=48)
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    ids = torch.randint(0, 64, (2, 6))
    z = copy.deepcopy(model)
    for layer in z.encoder.layer:
        with torch.no_grad():
            layer.attention.output.dense.weight[:, 8:16] = 0
    ref = z(input_ids=ids).last_hidden_state
    keep = torch.tensor([i for i in range(32) if not 8 <= i < 16])
    for layer in model.encoder.layer:
        sa = layer.attention.self
        h = get_handler(sa)
        assert h.out_granularity(sa) == 8
        with pytest.raises(ValueError, match="whole heads"):
            h.prune_out(sa, torch.arange(1, 32))
        h.prune_out(sa, keep)
        dense = layer.attention.output.dense
        dense.weight = nn.Parameter(dense.weight[:, keep])
        dense.in_features = 24
        assert sa.num_attention_heads == 3 and sa.all_head_size == 24
    assert (model(input_ids=ids).last_hidden_state - ref).abs().max() <= 1e-4


def test_gpt2_heads():
    cfg = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=16)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg)

    def zero(m):
        with torch.no_grad():
            m.c_proj.weight[8:16] = 0

    _check(model, {"input_ids": torch.randint(0, 64, (2, 6))}, zero,
           lambda m: get_handler(m).internal_groups(m)[0].prune(torch.tensor([0, 2, 3])))
    assert model.transformer.h[0].attn.num_heads == 3


def test_vit_heads():
    cfg = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=4, intermediate_size=48)
    torch.manual_seed(0)
    model = transformers.ViTModel(cfg)
    if not any(hasattr(m, "o_proj") for m in model.modules()):
        pytest.skip("this transformers release builds ViT attention in the BERT layout "
                    "(covered by test_bert_heads_are_output_channels)")

    def zero(m):
        with torch.no_grad():
            m.o_proj.weight[:, :8] = 0

    _check(model, {"pixel_values": torch.randn(2, 3, 16, 16)}, zero,
           lambda m: get_handler(m).internal_groups(m)[0].prune(torch.tensor([1, 2, 3])))


def test_torchvision_maxvit_attention_heads_and_width():
    from torchvision.models.maxvit import RelativePositionalMultiHeadAttention

    torch.manual_seed(0)
    m = RelativePositionalMultiHeadAttention(32, 8, 16).eval()  # 4 heads, 4x4 window
    x = torch.randn(2, 3, 16, 32)  # (B, G, P, D)
    z = copy.deepcopy(m)
    with torch.no_grad():
        z.merge.weight[:, 8:16] = 0  # head 1
        z.to_qkv.weight[:, 5] = 0
    x0 = x.clone()
    x0[..., 5] = 0
    ref = z(x0)[..., :20]
    h = get_handler(m)
    (g,) = h.internal_groups(m)
    g.prune(torch.tensor([0, 2, 3]))
    keep = torch.tensor([i for i in range(32) if i != 5])
    h.prune_in(m, keep)
    h.prune_out(m, torch.arange(20))
    assert isinstance(m, RelativePositionalMultiHeadAttention) and m.n_heads == 3
    assert (m(x[..., keep]) - ref).abs().max() <= 1e-5
