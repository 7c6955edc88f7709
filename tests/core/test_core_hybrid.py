"""Hybrid pruning: structural then N:M on the slimmer model, transactional, via API and CLI."""

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import prunekit as pk
from prunekit.cli import app
from prunekit.masks import get_mask, is_nm_valid, layout_for


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.Conv2d(24, 40, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(40, 10)).eval()


def test_hybrid_nm_aligns_channels_and_leaves_input_model():
    m, x = net(), torch.randn(2, 3, 16, 16)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out, rep = pk.prune_hybrid(m, x, structured={"ratio": 0.3},
                               weights={"pattern": "2:4", "skip_incompatible": True})
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in before.items()}
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    convs = [mod for mod in out.modules() if isinstance(mod, nn.Conv2d)]
    assert convs[1].in_channels % 4 == 0 and convs[1].in_channels < 24
    mask = get_mask(convs[1])
    assert mask is not None and is_nm_valid(layout_for(convs[1]).to_rows(mask), 2, 4)
    assert rep.params_dense > rep.params_after_structured > rep.nonzero_after_weights
    assert out(x).shape == (2, 10)


def test_hybrid_bad_weight_option_fails_before_any_change():
    m, x = net(), torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="sparsity"):
        pk.prune_hybrid(m, x, structured={"ratio": 0.3}, weights={"sparsity": 1.5})
    assert m[0].out_channels == 24


@pytest.mark.slow
def test_cli_structured_and_hybrid(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["prune", "structured", "torchvision:resnet18", "--ratio", "0.5",
                            "--input-shape", "1,3,32,32", "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    m = pk.load(tmp_path / "s")
    assert m.conv1.out_channels == 32 and m(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    r = runner.invoke(app, ["prune", "structured", "torchvision:resnet18", "--input-shape", "1,3,32,32",
                            "--hybrid", "--pattern", "2:4", "--skip-incompatible", "-o", str(tmp_path / "h")])
    assert r.exit_code == 0, r.output
    h = pk.load(tmp_path / "h")
    w = h.layer1[0].conv1.weight
    assert is_nm_valid(layout_for(h.layer1[0].conv1).to_rows(w != 0), 2, 4)
    r = runner.invoke(app, ["prune", "structured", "torchvision:resnet18", "-o", str(tmp_path / "x")])
    assert r.exit_code != 0 and "input-shape" in r.output


def test_cli_target_latency_glue(tmp_path, monkeypatch):
    """The CLI hands device/runtime/batch/target to prune_for_latency and saves its model."""
    import prunekit.bench.latency_target as lt
    import prunekit.commands.bench as cli_bench

    seen = {}

    def fake(model, x, target, *, config, criterion, **kw):
        seen.update(target=target, batch=config.batches, runtime=config.runtimes, criterion=criterion)
        return lt.LatencySearchResult(model=model, ratio=0.0, relative_latency=1.0, met=False,
                                      target=target, trace=[])

    monkeypatch.setattr(cli_bench, "prune_for_latency", fake)  # where the CLI looks it up
    r = CliRunner().invoke(app, ["prune", "latency", "torchvision:resnet18", "--target-latency", "0.5x",
                                 "--runtime", "onnxruntime", "--input-shape", "2,3,32,32",
                                 "-o", str(tmp_path / "l")])
    assert r.exit_code == 0, r.output
    assert seen == {"target": 0.5, "batch": (2,), "runtime": ("onnxruntime",), "criterion": "l1"}
    assert "NOT met" in r.output and (tmp_path / "l" / "prunekit.json").exists()
