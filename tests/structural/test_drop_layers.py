"""drop_layers: block influence ranking, identity / deletion, HF config update, bad inputs."""

import pytest
import torch
import torchvision

from prunekit.structural.layers import drop_layers, structural_candidates

transformers = pytest.importorskip("transformers")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resnet_blocks_identity_and_ranking():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    rep = drop_layers(m, x, n=2)
    # downsampling blocks change shape and are never candidates
    assert not set(rep.scores) & {"layer2.0", "layer3.0", "layer4.0"}
    assert len(rep.removed) == 2
    assert sorted(rep.scores, key=rep.scores.get)[:2] == list(rep.removed)
    for name in rep.removed:
        assert isinstance(m.get_submodule(name), torch.nn.Identity)
    assert rep.params_after < rep.params_before
    assert m(x).shape == (2, 1000)


def test_llama_layers_deleted_config_updated():
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=4, num_attention_heads=4,
                                   num_key_value_heads=2)
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (2, 6))
    rep = drop_layers(m, ids, criterion=["model.layers.1", "model.layers.3"])
    assert rep.removed == ("model.layers.1", "model.layers.3")
    assert len(m.model.layers) == 2 and m.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in m.model.layers] == [0, 1]
    if isinstance(getattr(m.config, "layer_types", None), list):
        assert len(m.config.layer_types) == 2
    assert m.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=0).shape == (2, 8)


def test_bert_and_gpt2_candidates():
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=48))
    gpt2 = transformers.GPT2Model(transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=3,
                                                          n_head=4, n_positions=16))
    assert list(structural_candidates(bert)) == [f"encoder.layer.{i}" for i in range(3)]
    assert list(structural_candidates(gpt2)) == [f"h.{i}" for i in range(3)]
    ids = torch.randint(0, 64, (1, 5))
    batches = [{"input_ids": ids}, {"input_ids": torch.randint(0, 64, (2, 4))}]
    rep = drop_layers(gpt2.eval(), n=1, calib_data=batches)
    assert set(rep.scores) == {"h.0", "h.1", "h.2"}
    assert len(gpt2.h) == 2 and gpt2.config.n_layer == 2
    assert gpt2(ids).last_hidden_state.shape == (1, 5, 32)


def test_bad_inputs_leave_model_untouched():
    m = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 32, 32)
    before = _state(m)
    with pytest.raises(ValueError, match="n: 99"):
        drop_layers(m, x, n=99)
    with pytest.raises(ValueError, match="not removable"):
        drop_layers(m, x, criterion=["layer1.0", "nope.3"])
    with pytest.raises(ValueError, match="not removable"):
        drop_layers(m, x, criterion=["layer2.0"])  # changes shape
    with pytest.raises(ValueError, match="n:"):
        drop_layers(m, x, n=0)
    with pytest.raises(ValueError, match="criterion"):
        drop_layers(m, x, n=1, criterion="cosine")
    after = m.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
