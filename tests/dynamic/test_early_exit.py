"""Early exit: threshold 1.0 is the full model, batch 1 really stops, bad input."""

import pytest
import torch
from torch import nn

from prunekit.dynamic import EarlyExitConfig, early_exit, exit_curve


def _cnn():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3)),
    ).eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = torch.randn(96, 1, 8, 8, generator=g) * 0.3
    x[:, 0, :, :] += y.view(-1, 1, 1).float()  # class is the mean brightness: easy early
    return x, y


FAST = EarlyExitConfig(epochs=30, batch_size=48, lr=2e-2)


def test_threshold_one_equals_full_model(data):
    model = _cnn()
    ee = early_exit(model, ["0", "1"], data, 1.0, config=FAST)
    x = data[0][:8]
    with torch.no_grad():
        full = model(x)
        torch.testing.assert_close(ee(x), full)
        for i in range(4):
            torch.testing.assert_close(ee(x[i:i + 1]), full[i:i + 1])
    assert ee.exit_counts[-1] == 12 and sum(ee.exit_counts[:-1]) == 0


def test_batch_one_really_stops_and_batches_agree(data):
    model = _cnn()
    ee = early_exit(model, ["1"], data, 0.45, config=FAST)
    calls = []
    model[2].register_forward_hook(lambda *a: calls.append(1))
    x = data[0][:32]
    with torch.no_grad():
        singles = torch.cat([ee(x[i:i + 1]) for i in range(32)])
        early = ee.exit_counts[0]
        assert early > 0 and len(calls) == 32 - early
        torch.testing.assert_close(ee(x), singles)


def test_heads_trained_and_curve(data):
    model = _cnn()
    ee = early_exit(model, ["0", "1"], data, 0.9, config=FAST)
    with torch.no_grad():
        outs = ee.all_exits(data[0])
    acc = (outs[1].argmax(-1) == data[1]).float().mean()
    assert acc > 0.8
    pts = exit_curve(ee, data[0][:8], data[1][:8], [1.0, 0.6], repeats=1)
    assert pts[0].exit_rates[-1] == 1.0 and pts[1].exit_rates[-1] < 1.0
    assert all(p.mean_ms > 0 and p.full_ms > 0 for p in pts)


def test_bad_input_leaves_model_alone(data):
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="'nope'"):
        early_exit(model, ["0", "nope"], data)
    with pytest.raises(ValueError, match="at:"):
        early_exit(model, [], data)
    with pytest.raises(ValueError, match="threshold"):
        early_exit(model, ["0"], data, 1.5)
    early_exit(model, ["0"], data, 0.9, config=FAST)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())


def test_entropy_criterion(data):
    ee = early_exit(_cnn(), ["1"], data, 0.0, config=EarlyExitConfig(
        criterion="entropy", epochs=5))
    with torch.no_grad():
        ee(data[0][:1])
    assert ee.exit_counts[0] == 1


def test_one_dimensional_feature_maps_get_a_pooled_head():
    """(B, C, L) maps of a Conv1d stage are pooled along L, not averaged over channels."""
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Sequential(nn.Conv1d(1, 6, 3, padding=1), nn.ReLU()),
                        nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(6, 3)))
    x, y = torch.randn(32, 1, 16), torch.randint(0, 3, (32,))
    ee = early_exit(cnn, ["0"], (x, y), config=EarlyExitConfig(epochs=1))
    linear = [m for m in ee.heads[0].modules() if isinstance(m, nn.Linear)][0]
    assert linear.in_features == 6 * 8
