"""Device-aware global selection: measured time per unit weighs the planner's ranking."""

import pytest
import torch
from torch import nn

from prunekit.bench.latency_target import prune_for_latency
from prunekit.bench.metrics import count_macs
from prunekit.bench.reliability import SpeedupEstimate
from prunekit.bench.width_tables import module_time_weights
from prunekit.config import TargetSpec
from prunekit.structural import plan_structured


@pytest.fixture
def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 8, 3, padding=1)).eval()


X = torch.randn(1, 3, 8, 8)


def removed(plan, name):
    edit = next((e for e in plan.edits if e.name == name), None)
    if edit is None or edit.keep_out is None:
        return 0
    return edit.out_full - int(edit.keep_out.numel())


def test_weights_move_the_cut_to_cheaper_per_mac_groups(net):
    base = plan_structured(net, X, scope="global", ratio=0.25, check=False)
    fake = {"0": 10.0, "2": 0.1}  # removing from layer 0 saves 100x more time per unit
    weighted = plan_structured(net, X, scope="global", ratio=0.25, check=False, time_weights=fake)
    assert removed(weighted, "0") > removed(base, "0")
    assert removed(weighted, "0") + removed(weighted, "2") == removed(base, "0") + removed(base, "2")
    assert removed(weighted, "2") == 0
    reverse = plan_structured(net, X, scope="global", ratio=0.25, check=False,
                              time_weights=lambda names: 10.0 if names[0] == "2" else 0.1)
    assert removed(reverse, "0") == 0 and removed(reverse, "2") > removed(base, "2")


def test_none_and_unit_weights_give_the_macs_only_plan(net):
    kw = dict(scope="global", target=TargetSpec(macs=0.5), round_to=2)
    b = plan_structured(net, X, time_weights=None, **kw)
    c = plan_structured(net, X, time_weights=lambda names: 1.0, **kw)
    counts = [(p.apply(copy=True), p) for p in (b, c)]
    params = [sum(q.numel() for q in m.parameters()) for m, _ in counts]
    assert params[0] == params[1]
    for name in ("0", "2"):
        assert removed(b, name) == removed(c, name)
    default = plan_structured(net, X, **kw)  # the analytic estimate
    explicit = plan_structured(net, X, time_weights="estimate", **kw)
    for name in ("0", "2"):
        assert removed(default, name) == removed(explicit, name)


def test_bad_time_weights_raise_and_leave_the_model(net):
    with pytest.raises(ValueError, match="scope='global'"):
        plan_structured(net, X, scope="local", time_weights={"0": 1.0})
    with pytest.raises(ValueError, match="> 0"):
        plan_structured(net, X, scope="global", time_weights=lambda names: 0.0)
    with pytest.raises(ValueError, match="callable, a mapping"):
        plan_structured(net, X, scope="global", time_weights=3.0)
    assert net[0].out_channels == 16 and net[2].out_channels == 16


def test_module_time_weights_measures_each_layer_family():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1, groups=16),
                          nn.Conv2d(16, 16, 1, groups=4), nn.Flatten(1), nn.Linear(16 * 36, 8)).eval()
    w = module_time_weights(model, torch.randn(1, 3, 6, 6))
    assert set(w) == {"0", "1", "2", "4"}
    assert all(0.05 <= v <= 20.0 for v in w.values())
    assert model[1].out_channels == 16  # untouched


def test_prune_for_latency_device_aware_uses_measured_weights(net, monkeypatch):
    import prunekit.bench.latency_target as lt

    seen = {}

    def fake_weights(model, x, cfg):
        seen["called"] = True
        return {"0": 5.0, "2": 0.2}

    monkeypatch.setattr(lt, "_measured_time_weights", fake_weights)
    dense = count_macs(net, X)[0]
    rel = lambda m: count_macs(m, X)[0] / dense  # noqa: E731
    res = prune_for_latency(net, X, 0.7, round_to=1, max_iters=4, rel_latency=rel,
                            device_aware=True,
                            verify=lambda m: SpeedupEstimate(1 / rel(m), 1 / rel(m), 1 / rel(m),
                                                             1 / rel(m), rounds=30))
    assert seen and any("time per unit" in n for n in res.notes)
    assert res.model[2].out_channels == 16  # the cut went to the layer that saves more time


@pytest.mark.slow
def test_cli_device_aware(tmp_path):
    from typer.testing import CliRunner

    from prunekit.cli import app
    from prunekit.serialize import load

    runner = CliRunner()
    r = runner.invoke(app, ["prune", "structured", "torchvision:resnet18", "--scope", "global",
                            "--target-macs", "0.5", "--device-aware", "--round-to", "8",
                            "--input-shape", "1,3,32,32", "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    m = load(tmp_path / "s")
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    r = runner.invoke(app, ["prune", "structured", "torchvision:resnet18", "--device-aware",
                            "--input-shape", "1,3,32,32", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--scope global" in r.output
