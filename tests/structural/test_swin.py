"""torchvision Swin attention (V1 / V2): whole heads and the embedding width are removed."""

import copy
import pickle

import pytest
import torch
from structural_factories import tiny_swin
from torchvision.models.swin_transformer import ShiftedWindowAttention, ShiftedWindowAttentionV2
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

import prunekit as pk
from prunekit.handlers import get_handler
from prunekit.handlers import tv_swin

CLASSES = {"v1": ShiftedWindowAttention, "v2": ShiftedWindowAttentionV2,
           "3d": ShiftedWindowAttention3d}


def _attn(kind: str, shift=(2, 2), heads=4):
    window = [4, 4] if kind != "3d" else [2, 4, 4]
    shift = list(shift) if kind != "3d" else [1, *shift]
    m = CLASSES[kind](32, window, shift, heads).eval()
    with torch.no_grad():
        m.qkv.bias.normal_()  # V2 must ignore the key third at run time
        m.proj.bias.normal_()
    return m


def _input(kind: str, hw) -> torch.Tensor:
    return torch.randn(2, *hw, 32) if kind != "3d" else torch.randn(2, 3, *hw, 32)


@pytest.mark.parametrize("kind", ["v1", "v2", "3d"])
@pytest.mark.parametrize("shift,hw", [((0, 0), (8, 8)), ((2, 2), (10, 7)), ((0, 2), (9, 8)),
                                      ((2, 2), (4, 4))])
def test_rewritten_forward_matches_torchvision(kind, shift, hw):
    m = _attn(kind, shift)
    p = copy.deepcopy(m)
    tv_swin._swap(p)
    assert type(p).__name__.startswith("Pruned") and isinstance(p, CLASSES[kind])
    x = _input(kind, hw)
    assert torch.allclose(m(x), p(x), atol=1e-6)


@pytest.mark.parametrize("kind", ["v1", "v2", "3d"])
def test_zeroed_heads_equal_removed_heads(kind):
    m = _attn(kind)
    v2 = kind == "v2"
    x = _input(kind, (8, 8))
    z = copy.deepcopy(m)
    with torch.no_grad():  # head 1 silenced: its value rows and proj columns are zero
        z.qkv.weight[64 + 8:64 + 16] = 0
        z.qkv.bias[64 + 8:64 + 16] = 0
        z.qkv.weight[:, 5] = 0
    x0 = x.clone()
    x0[..., 5] = 0
    ref = z(x0)[..., :20]
    h = get_handler(m)
    (g,) = h.internal_groups(m)
    assert g.name == "heads" and g.size == 4 and g.granularity == 8
    g.prune(torch.tensor([0, 2, 3]))
    keep = torch.tensor([i for i in range(32) if i != 5])
    h.prune_in(m, keep)
    h.prune_out(m, torch.arange(20))
    assert m.num_heads == 3 and m.qkv.weight.shape == (72, 31) and m.proj.weight.shape == (20, 24)
    assert type(m).__name__ == "Pruned" + CLASSES[kind].__name__
    if v2:
        assert m.logit_scale.shape == (3, 1, 1) and m.cpb_mlp[-1].out_features == 3
    else:
        assert m.relative_position_bias_table.shape[1] == 3
    assert (m(x[..., keep]) - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("v2", [False, True])
def test_tiny_swin_plan_prunes_heads_and_verifies(v2):
    model = tiny_swin(v2).eval()
    x = torch.randn(1, 3, 64, 64)
    plan = pk.plan_structured(model, x, ratio=0.5)
    heads = {e.name: len(e.internal["heads"]) for e in plan.edits if "heads" in e.internal}
    assert len(heads) == 4 and all(n < 4 for n in heads.values())
    res = pk.verify(model, plan)
    assert res.ok, res
    dense = sum(p.numel() for p in model.parameters())
    pruned = plan.apply(copy=True)
    assert sum(p.numel() for p in pruned.parameters()) < 0.6 * dense
    attn = pruned.features[3][0].attn
    assert attn.num_heads == heads["features.3.0.attn"] and attn.qkv.in_features < 32
    assert pruned(x).shape == (1, 5)
    pruned.train()
    pruned(x).sum().backward()  # trains after surgery


@pytest.mark.parametrize("v2", [False, True])
def test_tiny_swin_save_load_round_trip(v2, tmp_path):
    model = tiny_swin(v2).eval()
    x = torch.randn(1, 3, 64, 64)
    pruned = pk.plan_structured(model, x, ratio=0.5).apply()
    ref = pruned(x)
    pk.save(pruned, tmp_path / "swin", spec="module:structural_factories:tiny_swin",
            spec_kwargs={"v2": v2})
    back = pk.load(tmp_path / "swin")
    a, b = pruned.features[1][0].attn, back.features[1][0].attn
    assert type(a) is type(b) and a.num_heads == b.num_heads
    assert torch.allclose(back(x), ref, atol=1e-6)
    again = pickle.loads(pickle.dumps(pruned))  # the pruned classes are importable by name
    assert type(again.features[1][0].attn) is type(a) and torch.allclose(again(x), ref)


def test_failed_apply_restores_swapped_attention_class(monkeypatch):
    import prunekit.structural.apply as ap

    model = tiny_swin(False).eval()
    x = torch.randn(1, 3, 64, 64)
    plan = pk.plan_structured(model, x, ratio=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def boom(_):
        raise RuntimeError("injected")

    monkeypatch.setattr(ap, "sync_model_attributes", boom)
    with pytest.raises(RuntimeError, match="injected"):
        plan.apply()
    assert type(model.features[1][0].attn) is ShiftedWindowAttention
    assert model.features[1][0].attn.num_heads == 2
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_tiny_video_swin_plan_prunes_heads_and_verifies():
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    model = SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                              window_size=[2, 4, 4], num_classes=5).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    plan = pk.plan_structured(model, x, ratio=0.5)
    assert sum("heads" in e.internal for e in plan.edits) == 4
    assert pk.verify(model, plan).ok
    assert plan.apply(copy=True)(x).shape == (1, 5)
