"""Network Slimming's gamma penalty, progressive layer order, sensitivity-driven ratios."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import prunekit.recover.recipe as R
from prunekit.recover.progressive import forward_order
from prunekit.recover.slimming import (
    add_bn_subgradient, bn_l1_penalty, gamma_values, plot_gamma,
)
from prunekit.recover.training import LoopState, Phase
from prunekit.recover.loop import TrainLoop
from prunekit.recover.sensitivity import SensitivityResult, choose_ratios, sensitivity
from prunekit.recover.tasks import load_task, mlp, small_cnn


def test_bn_l1_penalty_value_and_subgradient():
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1),
                          nn.BatchNorm2d(2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -2.0, 0.0]))
        model[3].weight.copy_(torch.tensor([1.0, -0.25]))
    assert bn_l1_penalty(model, 0.1).item() == pytest.approx(0.1 * 3.75)
    # the subgradient equals autograd's gradient of the penalty (sign(0) = 0)
    bn_l1_penalty(model, 0.1).backward()
    auto = [model[1].weight.grad.clone(), model[3].weight.grad.clone()]
    model.zero_grad(set_to_none=True)
    add_bn_subgradient(model, 0.1)
    assert torch.equal(model[1].weight.grad, auto[0]) and torch.equal(model[3].weight.grad, auto[1])
    assert model[1].weight.grad.tolist() == pytest.approx([0.1, -0.1, 0.0])
    with pytest.raises(ValueError, match="no BatchNorm"):
        bn_l1_penalty(nn.Linear(2, 2), 0.1)


def test_sparse_training_shrinks_gamma(tmp_path):
    tr, _ = load_task("digits", limit=128)

    def train(lam):
        torch.manual_seed(0)
        model = small_cnn(2, widths=(8, 8, 8))
        loader = DataLoader(tr, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
        hook = (lambda m: add_bn_subgradient(m, lam)) if lam else None
        before = gamma_values(model)
        TrainLoop(model, loader, nn.functional.cross_entropy).run_phase(
            Phase("sparse", R.Finetune(epochs=3, lr=0.05), grad_hook=hook), LoopState())
        return before, gamma_values(model)

    before, plain = train(0.0)
    _, sparse = train(0.5)
    assert (sparse < plain).all() and sparse.sum() < 0.8 * plain.sum()
    png = plot_gamma(before, sparse, tmp_path / "gamma.png")
    assert png.stat().st_size > 1000


def test_progressive_prunes_input_to_output():
    from prunekit.recover.run import run_recipe as run

    class Backwards(nn.Module):  # defined output-first, runs input-first
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(16, 10)
            self.body = nn.Linear(64, 16)

        def forward(self, x):
            return self.head(torch.relu(self.body(x.flatten(1))))

    model = Backwards()
    x = torch.randn(2, 1, 8, 8)
    assert forward_order(model, ["head", "body"], x) == ["body", "head"]
    tr, va = load_task("digits", limit=64)
    recipe = R.Recipe(method="progressive", target=R.TargetSpec(ratio=0.5),
                      finetune=R.Finetune(epochs=1, lr=0.05))
    res = run(recipe, model, DataLoader(tr, batch_size=32), DataLoader(va, batch_size=64))
    phases = [h["phase"] for h in res.history]
    assert phases == ["dense", "layer:body", "layer:head", "final"]
    assert res.history[1]["amount"] == 0.5
    for m in (model.body, model.head):
        assert int((m.weight == 0).sum()) == m.weight.numel() // 2


def test_choose_ratios_knapsack_is_optimal():
    # layer a is robust, b is fragile; both 100 weights; ratios 0.5 / 0.9
    res = SensitivityResult((0.5, 0.9), 90.0, {"a": [89.0, 85.0], "b": [80.0, 20.0]},
                            {"a": 100, "b": 100})
    assert choose_ratios(res, 0.45) == {"a": 0.9, "b": 0.0}
    assert choose_ratios(res, 0.6) == {"a": 0.9, "b": 0.5}  # drop 5 + 10 beats 1 + 70
    assert res.predicted_drop({"a": 0.9, "b": 0.5}) == pytest.approx(15.0)
    with pytest.raises(ValueError, match="unreachable"):
        choose_ratios(res, 0.95)


def test_sensitivity_sweep_measures_each_layer(tmp_path):
    torch.manual_seed(0)
    model = mlp(hidden=16)
    _, va = load_task("digits", limit=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = sensitivity(model, DataLoader(va, batch_size=64), ratios=(0.5, 0.9))
    assert set(res.curves) == {"1", "3", "5"} and all(len(c) == 2 for c in res.curves.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    chosen = res.choose(0.3)
    removed = sum(r * res.numel[n] for n, r in chosen.items())
    assert removed >= 0.3 * sum(res.numel.values())
    assert res.plot(tmp_path / "s.png", chosen).exists()


def test_sensitivity_cli(tmp_path):
    import json

    from typer.testing import CliRunner

    from prunekit.cli import app

    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["sensitivity", "prunekit:mlp", "--data", "digits", "--limit", "64",
                                 "--ratios", "0.5,0.9", "--target", "0.4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    payload = json.loads((out / "sensitivity.json").read_text())
    assert set(payload["chosen"]) == {"1", "3", "5"} and (out / "sensitivity.png").exists()
    bad = CliRunner().invoke(app, ["sensitivity", "prunekit:mlp", "--data", "imagenet"])
    assert bad.exit_code == 2 and "unknown data 'imagenet'" in bad.output
