import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

import prunekit as pk
from prunekit.masks import get_mask, is_nm_valid, layout_for
from prunekit.masks.select import n_to_prune


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8),
    )


def weight_layers(m):
    return {n: mod for n, mod in m.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))}


def state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("criterion", ["l1", "l2", "random", "magnitude"])
def test_layerwise_exact_sparsity(criterion):
    m = small_cnn()
    rep = pk.prune_weights(m, 0.7, criterion, "layer")
    for name, mod in weight_layers(m).items():
        assert int((mod.weight == 0).sum()) == n_to_prune(mod.weight.numel(), 0.7), name
    assert len(rep.layers) == 4


def test_global_exact_sparsity_and_threshold():
    m = small_cnn()
    ref = {n: mod.weight.detach().abs().clone() for n, mod in weight_layers(m).items()}
    rep = pk.prune_weights(m, 0.6, "l1", "global")
    total = sum(v.numel() for v in ref.values())
    assert rep.zeros == n_to_prune(total, 0.6)
    kept = min(ref[n][get_mask(mod)].min() for n, mod in weight_layers(m).items())
    pruned = max(ref[n][~get_mask(mod)].max() for n, mod in weight_layers(m).items())
    assert pruned <= kept


def test_global_differs_from_layerwise():
    m = small_cnn()
    rep = pk.prune_weights(m, 0.6, "l1", "global")
    assert len({round(r.sparsity, 2) for r in rep.layers}) > 1


@pytest.mark.parametrize("pattern,n,m_", [("2:4", 2, 4), ("4:8", 4, 8)])
def test_nm_every_group_valid(pattern, n, m_):
    m = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(16 * 4, 24), nn.Linear(24, 8))
    pk.prune_weights(m, pattern=pattern)
    for mod in weight_layers(m).values():
        rows = layout_for(mod).to_rows(mod.weight.detach() != 0)
        assert is_nm_valid(rows, n, m_)
        assert int(rows.sum()) == rows.numel() * n // m_


def test_nm_conv_groups_run_along_input_channels():
    conv = nn.Conv2d(8, 2, 3)
    pk.prune_weights(nn.Sequential(conv), pattern="2:4")
    nz = (conv.weight != 0)  # (O, I, kh, kw): groups of 4 consecutive input channels
    assert torch.all(nz.reshape(2, 2, 4, 3, 3).sum(2) == 2)


def test_nm_indivisible_layer_named_and_model_untouched():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4, 8))
    before = state(m)
    with pytest.raises(ValueError, match=r"layer '0'.*not divisible by M=4"):
        pk.prune_weights(m, pattern="2:4")
    assert same_state(before, state(m))
    rep = pk.prune_weights(m, pattern="2:4", skip_incompatible=True)
    assert [n for n, _ in rep.skipped] == ["0"]
    assert get_mask(m[0]) is None and get_mask(m[2]) is not None


def test_overrides_and_exclude():
    m = small_cnn()
    rep = pk.prune_weights(m, 0.5, overrides={"7": 0.9}, exclude=["9", "Conv2d"])
    names = {r.name: r for r in rep.layers}
    assert set(names) == {"7"}
    assert names["7"].zeros == n_to_prune(names["7"].numel, 0.9)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sparsity=1.0), "sparsity"),
    (dict(sparsity=-0.2), "sparsity"),
    (dict(pattern="4:2"), "N < M"),
    (dict(exclude=["nope"]), "exclude entry 'nope'"),
    (dict(overrides={"missing*": 0.5}), "overrides entry 'missing\\*'"),
    (dict(overrides={"7": 1.2}), "overrides"),
    (dict(criterion="bogus"), "unknown criterion 'bogus'"),
    (dict(scope="row"), "row"),
    (dict(criterion="taylor"), "calib_data"),
    (dict(example_inputs=torch.randn(2, 3, 8, 8)), "example_inputs shape \\(2, 3, 8, 8\\)"),
])
def test_bad_input_clear_error_model_untouched(kwargs, match):
    m = small_cnn()
    before = state(m)
    with pytest.raises(ValueError, match=match):
        pk.prune_weights(m, **kwargs)
    assert same_state(before, state(m))
    assert all(get_mask(mod) is None for mod in m.modules())


def test_no_prunable_layers():
    with pytest.raises(ValueError, match="no prunable layers"):
        pk.prune_weights(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), 0.5)


def test_taylor_and_gradient_and_activation_use_calibration():
    m = small_cnn()
    x, y = torch.randn(6, 4, 8, 8), torch.randint(0, 8, (6,))
    data = [(x, y), (x.flip(0), y.flip(0))]
    loss = nn.functional.cross_entropy
    for crit in ("taylor", "gradient"):
        mm = copy.deepcopy(m)
        rep = pk.prune_weights(mm, 0.5, crit, calib_data=data, loss_fn=loss)
        assert abs(rep.sparsity - 0.5) < 0.01
        assert all(p.grad is None for p in mm.parameters())  # grads cleared
    # Taylor ranks by |w * g| averaged over batches: check against a manual computation
    mm = copy.deepcopy(m)
    mm.zero_grad()
    acc = {n: torch.zeros_like(mod.weight) for n, mod in weight_layers(mm).items()}
    mm.eval()
    for xb, yb in data:
        mm.zero_grad()
        loss(mm(xb), yb).backward()
        for n, mod in weight_layers(mm).items():
            acc[n] += (mod.weight.grad * mod.weight).abs()
    pk.prune_weights(mm, 0.5, "taylor", calib_data=data, loss_fn=loss)
    for n, mod in weight_layers(mm).items():
        expect = pk.masks.unstructured_mask(acc[n] / 2, 0.5)
        assert torch.equal(get_mask(mod), expect), n
    mm = copy.deepcopy(m)
    rep = pk.prune_weights(mm, 0.5, "activation", calib_data=[x])
    assert abs(rep.sparsity - 0.5) < 0.01


def test_masks_persist_through_training_then_finalize_plain_keys():
    m = small_cnn()
    pk.prune_weights(m, 0.8, "l1", "global")
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(4, 4, 8, 8)).sum().backward()
        opt.step()
    masks = {n: get_mask(mod).clone() for n, mod in weight_layers(m).items()}
    x = torch.randn(2, 4, 8, 8)
    m.eval()
    ref = m(x)
    pk.finalize(m)
    keys = list(m.state_dict())
    assert not any("parametrizations" in k or "mask" in k or "orig" in k for k in keys)
    assert set(keys) == set(small_cnn().state_dict())
    for n, mod in weight_layers(m).items():
        assert type(mod) in (nn.Conv2d, nn.Linear)
        assert torch.all(mod.weight[~masks[n]] == 0)
    assert torch.allclose(m(x), ref)


def test_torch_prune_interop_roundtrip():
    m = small_cnn()
    tprune.global_unstructured([(m[0], "weight"), (m[7], "weight")], tprune.L1Unstructured, amount=0.5)
    want0 = m[0].weight_mask.clone()
    assert pk.import_torch_prune(m) == 2
    assert "0.weight_mask" not in m.state_dict()
    assert torch.equal(get_mask(m[0]), want0.bool())
    x = torch.randn(2, 4, 8, 8)
    ref = m(x)
    assert pk.export_torch_prune(m) == 2
    assert "0.weight_orig" in m.state_dict() and "0.weight_mask" in m.state_dict()
    assert torch.allclose(m(x), ref)
    # and back again: prunekit masks from torch.nn.utils.prune
    pk.import_torch_prune(m)
    pk.finalize(m)
    assert set(m.state_dict()) == set(small_cnn().state_dict())


def test_prune_report_dict():
    m = small_cnn()
    d = pk.prune_weights(m, 0.5, pattern=None).to_dict()
    assert d["criterion"] == "l1" and d["pattern"] is None and len(d["layers"]) == 4
