"""pk.save / pk.load round trips of pruned models and ONNX export of pruned models."""

import json

import pytest
import torch
import torchvision
from torch import nn

from prunekit.handlers import get_handler
from prunekit.serialize import load, save
from prunekit.structural.layers import drop_layers

transformers = pytest.importorskip("transformers")


def _slice_block(block: nn.Module, keep: torch.Tensor) -> None:
    """Remove inner channels of a BasicBlock (conv1 out, bn1, conv2 in) by hand."""
    with torch.no_grad():
        block.conv1.weight = nn.Parameter(block.conv1.weight[keep].clone())
        block.conv1.out_channels = keep.numel()
        bn = block.bn1
        bn.weight = nn.Parameter(bn.weight[keep].clone())
        bn.bias = nn.Parameter(bn.bias[keep].clone())
        bn.running_mean, bn.running_var = bn.running_mean[keep], bn.running_var[keep]
        bn.num_features = keep.numel()
        block.conv2.weight = nn.Parameter(block.conv2.weight[:, keep].clone())
        block.conv2.in_channels = keep.numel()


@pytest.fixture(scope="module")
def pruned_resnet():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 48, 48)
    drop_layers(m, x, criterion=["layer3.1"])
    _slice_block(m.layer1[0], torch.arange(0, 64, 3))
    _slice_block(m.layer4[0], torch.arange(0, 512, 2))
    return m, x


def test_resnet_round_trip(pruned_resnet, tmp_path):
    m, x = pruned_resnet
    save(m, tmp_path / "r", spec="torchvision:resnet18")
    meta = json.loads((tmp_path / "r" / "prunekit.json").read_text())
    assert meta["base"]["spec"] == "torchvision:resnet18"
    m2 = load(tmp_path / "r")
    assert isinstance(m2.layer3[1], nn.Identity)
    assert m2.layer1[0].conv1.out_channels == 22 and m2.layer1[0].bn1.num_features == 22
    assert torch.equal(m(x), m2(x))


@pytest.mark.slow
def test_resnet_onnx_export(pruned_resnet, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m, x = pruned_resnet
    path = tmp_path / "r.onnx"
    torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"])
    sess = ort.InferenceSession(str(path))
    y = sess.run(None, {"x": x.numpy()})[0]
    assert abs(y - m(x).detach().numpy()).max() < 1e-4


def _llama(layers=2):
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=layers, num_attention_heads=4,
                                   num_key_value_heads=2)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def test_hf_uniform_goes_through_save_pretrained(tmp_path):
    m = _llama(3)
    ids = torch.randint(0, 64, (2, 6))
    drop_layers(m, ids, n=1)
    for layer in m.model.layers:
        get_handler(layer.self_attn).internal_groups(layer.self_attn)[0].prune(torch.tensor([1]))
    ref = m(ids).logits
    save(m, tmp_path / "u")
    assert (tmp_path / "u" / "config.json").exists()
    assert m.config.num_key_value_heads == 1 and m.config.num_hidden_layers == 2
    plain = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "u").eval()
    assert torch.allclose(plain(ids).logits, ref, atol=1e-5)
    assert torch.allclose(load(tmp_path / "u")(ids).logits, ref, atol=1e-5)


def test_hf_nonuniform_prunekit_loader(tmp_path):
    m = _llama(2)
    ids = torch.randint(0, 64, (2, 6))
    attn = m.model.layers[1].self_attn
    get_handler(attn).internal_groups(attn)[0].prune(torch.tensor([0]))
    ref = m(ids).logits
    save(m, tmp_path / "n")
    meta = json.loads((tmp_path / "n" / "prunekit.json").read_text())
    assert meta["base"]["kind"] == "hf_config"
    m2 = load(tmp_path / "n")
    assert m2.model.layers[1].self_attn.k_proj.out_features == 8
    assert m2.model.layers[0].self_attn.k_proj.out_features == 16
    assert torch.equal(m2(ids).logits, ref)


def _pruned_bert():
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=48)
    torch.manual_seed(0)
    m = transformers.BertModel(cfg).eval()
    keep = torch.tensor([i for i in range(32) if not 8 <= i < 16])
    for layer in m.encoder.layer:
        get_handler(layer.attention.self).prune_out(layer.attention.self, keep)
        dense = layer.attention.output.dense
        dense.weight = nn.Parameter(dense.weight[:, keep].detach().clone())
        dense.in_features = 24
    return m


@pytest.mark.slow
def test_bert_round_trip_and_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _pruned_bert()
    ids = torch.randint(0, 64, (2, 6))
    ref = m(input_ids=ids).last_hidden_state
    save(m, tmp_path / "b")
    m2 = load(tmp_path / "b")
    assert m2.encoder.layer[0].attention.self.num_attention_heads == 3
    assert torch.equal(m2(input_ids=ids).last_hidden_state, ref)
    path = tmp_path / "b.onnx"

    class Wrap(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids).last_hidden_state

    torch.onnx.export(Wrap(m), (ids,), str(path), dynamo=False, input_names=["ids"])
    sess = ort.InferenceSession(str(path))
    y = sess.run(None, {"ids": ids.numpy()})[0]
    assert abs(y - ref.detach().numpy()).max() < 1e-4


def test_save_needs_spec_for_unknown_model(tmp_path):
    with pytest.raises(ValueError, match="spec="):
        save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "x")


def test_mha_and_lstm_round_trip_module_spec(tmp_path):
    from structural_factories import self_attention, tagger

    torch.manual_seed(0)
    m = self_attention().eval()
    x = torch.randn(2, 5, 16)
    get_handler(m.mha).internal_groups(m.mha)[0].prune(torch.tensor([0, 3]))
    ref = m(x)
    save(m, tmp_path / "mha", spec="module:structural_factories:self_attention")
    m2 = load(tmp_path / "mha")
    assert m2.mha.num_heads == 2 and type(m2.mha).__name__ == "PrunedMultiheadAttention"
    assert torch.equal(m2(x), ref)

    t = tagger().eval()
    ids = torch.randint(0, 20, (2, 7))
    h = get_handler(t.rnn)
    keep = torch.tensor([0, 3, 4, 9, 11])
    h.prune_out(t.rnn, torch.cat([keep, keep + 12]))
    both = torch.cat([keep, keep + 12])
    t.head.weight = nn.Parameter(t.head.weight[:, both].detach().clone())
    t.head.in_features = 10
    ref = t(ids)
    save(t, tmp_path / "lstm", spec="module:structural_factories:tagger")
    t2 = load(tmp_path / "lstm")
    assert t2.rnn.hidden_size == 5
    assert torch.equal(t2(ids), ref)


@pytest.mark.slow
def test_timm_spec_inferred_with_builder_kwargs(tmp_path):
    timm = pytest.importorskip("timm")
    import prunekit as pk

    torch.manual_seed(0)
    kw = {"img_size": 32, "depth": 2}
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kw).eval()
    x = torch.randn(1, 3, 32, 32)
    pruned = pk.plan_structured(m, x, ratio=0.5).apply()
    save(pruned, tmp_path / "t", spec_kwargs=kw)
    meta = json.loads((tmp_path / "t" / "prunekit.json").read_text())
    assert meta["base"] == {"kind": "spec", "spec": "timm:vit_tiny_patch16_224", "kwargs": kw}
    assert torch.equal(load(tmp_path / "t")(x), pruned(x))


@pytest.mark.slow
def test_pruned_mha_and_lstm_export_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from structural_factories import self_attention, tagger

    import prunekit as pk

    torch.manual_seed(0)
    for build, x in ((self_attention, torch.randn(2, 5, 16)),
                     (tagger, torch.randint(0, 20, (2, 7)))):
        model = build().eval()
        pruned = pk.plan_structured(model, x, ratio=0.5).apply()
        path = tmp_path / f"{build.__name__}.onnx"
        torch.onnx.export(pruned, (x,), str(path), dynamo=False, input_names=["x"])
        sess = ort.InferenceSession(str(path))
        y = sess.run(None, {"x": x.numpy()})[0]
        assert abs(y - pruned(x).detach().numpy()).max() < 1e-4


def test_resize_to_a_pruned_state_dict_keeps_groupnorm_groups():
    from prunekit.structural.plan import plan_structured
    from prunekit.structural.resize import resize_to_state_dict

    def build():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8), nn.ReLU(), nn.Conv2d(8, 2, 1))

    torch.manual_seed(0)
    model, x = build().eval(), torch.randn(2, 3, 6, 6)
    pruned = plan_structured(model, x, ratio=0.5).apply(copy=True).eval()
    assert (pruned[1].num_groups, pruned[1].num_channels) == (2, 4)
    fresh = build().eval()
    resize_to_state_dict(fresh, pruned.state_dict())
    fresh.load_state_dict(pruned.state_dict())
    assert (fresh[1].num_groups, fresh[1].num_channels) == (2, 4)
    assert torch.equal(fresh(x), pruned(x))
