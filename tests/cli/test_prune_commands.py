"""`prunekit prune weights|structured|latency` on the tiny digits CNN; the old spelling warns."""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

from prunekit import cli
from prunekit.cli import app
from prunekit.io import load_weights
from prunekit.serialize import load

MODEL = "module:prunekit.datasets:DigitsCNN"
SHAPE = "1,1,8,8"
runner = CliRunner()


def _zeros(path) -> float:
    sd = load_weights(path)
    w = [t for k, t in sd.items() if k.endswith("weight") and t.dim() > 1]
    return sum(int((t == 0).sum()) for t in w) / sum(t.numel() for t in w)


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["prunekit", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return exc.value.code, out.out, out.err


def test_help_lists_modes_and_only_their_options():
    r = runner.invoke(app, ["prune", "--help"])
    assert r.exit_code == 0 and all(m in r.output for m in ("weights", "structured", "latency"))
    assert "_legacy" not in r.output
    w = runner.invoke(app, ["prune", "weights", "--help"], terminal_width=200).output
    s = runner.invoke(app, ["prune", "structured", "--help"], terminal_width=200).output
    assert "--sparsity" in w and "--ratio" not in w and "--target-latency" not in w
    assert "--ratio" in s and "--target-macs" in s and "--hybrid" in s
    assert "--target-latency" not in s and "--runtime" not in s


def test_weights(tmp_path):
    out = tmp_path / "w.safetensors"
    r = runner.invoke(app, ["prune", "weights", MODEL, "--sparsity", "0.6", "--scope", "global",
                            "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert _zeros(out) == pytest.approx(0.6, abs=1e-3)


def test_global_structured_macs_only(tmp_path):
    r = runner.invoke(app, ["prune", "structured", MODEL, "--scope", "global", "--target-macs",
                            "0.5", "--macs-only", "--input-shape", SHAPE, "-o", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    m = load(tmp_path / "g")
    assert m(torch.randn(1, 1, 8, 8)).shape == (1, 10)


def test_structured_and_hybrid(tmp_path):
    r = runner.invoke(app, ["prune", "structured", MODEL, "--ratio", "0.5", "--input-shape", SHAPE,
                            "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    m = load(tmp_path / "s")
    assert m.features[0].out_channels == 16 and m(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    r = runner.invoke(app, ["prune", "structured", MODEL, "--target-macs", "0.5", "--hybrid",
                            "--sparsity", "0.5", "--input-shape", SHAPE, "-o", str(tmp_path / "h")])
    assert r.exit_code == 0, r.output
    h = load(tmp_path / "h")
    assert (h.features[3].weight == 0).float().mean() > 0.4


def test_latency_is_prune_latency(tmp_path, monkeypatch):
    """`prune latency` and `prune-latency` run one implementation (the search is faked)."""
    import prunekit.commands.bench as cli_bench
    from prunekit.bench.latency_target import LatencySearchResult

    calls = []

    def fake(model, x, target, *, config, criterion, device_aware=False, **kw):
        calls.append((target, config.batches, device_aware))
        return LatencySearchResult(model=model, ratio=0.0, relative_latency=1.0, met=False,
                                   target=target, trace=[])

    monkeypatch.setattr(cli_bench, "prune_for_latency", fake)
    for i, cmd in enumerate((["prune", "latency"], ["prune-latency"])):
        r = runner.invoke(app, [*cmd, MODEL, "--target-latency", "0.7x", "--device-aware",
                                "--input-shape", SHAPE, "-o", str(tmp_path / f"l{i}")])
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"l{i}" / "latency_search.json").exists()
    assert calls == [(0.7, (1,), True)] * 2


@pytest.mark.parametrize("args, new", [
    (["--sparsity", "0.6"], "prunekit prune weights"),
    (["--structured", "--ratio", "0.5", "--input-shape", SHAPE], "prunekit prune structured"),
])
def test_old_spelling_works_and_warns(monkeypatch, capsys, tmp_path, args, new):
    out = tmp_path / ("w.safetensors" if "--sparsity" in args else "s")
    with pytest.warns(DeprecationWarning):
        code, _, err = _main(monkeypatch, capsys, "prune", MODEL, *args, "-o", str(out))
    assert not code and err.count("\n") == 1 and new in err and "deprecated" in err
    assert out.exists()


def test_old_latency_spelling_names_prune_latency(monkeypatch, capsys, tmp_path):
    import prunekit.commands.bench as cli_bench
    from prunekit.bench.latency_target import LatencySearchResult

    monkeypatch.setattr(cli_bench, "prune_for_latency", lambda m, x, t, **kw: LatencySearchResult(
        model=m, ratio=0.0, relative_latency=1.0, met=False, target=t, trace=[]))
    with pytest.warns(DeprecationWarning):
        code, _, err = _main(monkeypatch, capsys, "prune", MODEL, "--structured",
                             "--target-latency", "0.5x", "--input-shape", SHAPE,
                             "-o", str(tmp_path / "l"))
    assert not code and "prunekit prune-latency" in err and (tmp_path / "l").is_dir()


@pytest.mark.parametrize("args", [
    ["prune", "weights", MODEL, "--sparsity", "1.5", "-o", "OUT"],
    ["prune", "weights", MODEL, "--ratio", "0.5", "-o", "OUT"],           # not a weights option
    ["prune", "weights", MODEL, "--method", "taylor", "-o", "OUT"],       # needs calibration
    ["prune", "structured", MODEL, "-o", "OUT"],                          # no --input-shape
    ["prune", "structured", MODEL, "--input-shape", "1,3,8,8", "-o", "OUT"],
    ["prune", "structured", MODEL, "--device-aware", "--input-shape", SHAPE, "-o", "OUT"],
    ["prune", "structured", MODEL, "--scope", "global", "--device-aware", "--macs-only",
     "--input-shape", SHAPE, "-o", "OUT"],
    ["prune", "latency", MODEL, "--target-latency", "fast", "--input-shape", SHAPE, "-o", "OUT"],
    ["prune", MODEL, "--structured", "-o", "OUT"],                        # old spelling
])
def test_user_errors_are_one_line(monkeypatch, capsys, tmp_path, args):
    out = tmp_path / "out"
    code, _, err = _main(monkeypatch, capsys, *[str(out) if a == "OUT" else a for a in args])
    lines = [ln for ln in err.splitlines() if not ln.startswith("Deprecated:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error:"), err
    assert not out.exists()
