"""``deploy``: every candidate measured like-for-like, the winner written, reloaded, matched."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from prunekit.bench.deploy import DeployConfig, deploy, load_artifact


class NoOnnx(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 8)

    def forward(self, x):
        return self.lin(x)


class Steady:
    """Fake clock: every sample takes 1 ms (the choice then follows candidate order)."""

    def time_call(self, fn):
        fn()
        return 1.0


def _cfg(**kw):
    kw = {"repeats": 5, "max_repeats": 5, "budget_s": 1.0, **kw}
    return DeployConfig(**kw)


def _net(width=32):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4)).eval()


def test_deploy_writes_a_reloadable_matching_artifact_and_reports_all(tmp_path):
    pytest.importorskip("onnxruntime")
    dense, pruned = _net(32), _net(8)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    x = torch.randn(1, 3, 16, 16)
    res = deploy(pruned, x, tmp_path, dense=dense,
                 config=_cfg(runtimes=("eager", "onnxruntime"), threads=(1,), clock=Steady()))
    # eager in both memory formats; ONNX Runtime's layout is the exported graph's
    assert [(c.runtime, c.channels_last) for c in res.candidates] == [
        ("eager", False), ("onnxruntime", False), ("eager", True)]
    assert res.winner is not None and res.artifact.exists()
    assert res.winner.pruned_ms == min(c.pruned_ms for c in res.candidates if not c.error)
    assert all(c.speedup is not None and c.ci_low <= c.speedup <= c.ci_high
               for c in res.candidates)
    assert res.best_vs_best is not None
    run = load_artifact(res.artifact)
    got = run(x)
    got = torch.as_tensor(got[0] if isinstance(got, list) else got)
    with torch.no_grad():
        torch.testing.assert_close(got, pruned(x), atol=1e-3, rtol=1e-3)
    report = json.loads(res.report.read_text())
    assert len(report["candidates"]) == 3 and report["best_vs_best_speedup"] > 0
    kinds = {c["kind"] for c in report["comparisons"]}
    assert {"like-for-like", "best vs best", "runtime eager", "runtime onnxruntime"} <= kinds
    assert all(torch.equal(before[k], v) for k, v in pruned.state_dict().items())
    assert isinstance(pruned[1], nn.BatchNorm2d)  # the user's model keeps its BatchNorm


def test_failed_candidate_is_skipped_and_named(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")

    def no_export(*a, **k):  # like a model with an op ONNX lacks
        raise NotImplementedError("op without an ONNX symbolic")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    res = deploy(NoOnnx(), torch.randn(1, 16), tmp_path, dense=NoOnnx(),
                 config=_cfg(runtimes=("onnxruntime", "eager"), clock=Steady()))
    (bad,) = [c for c in res.candidates if c.runtime == "onnxruntime"]
    assert bad.error and "ONNX export of NoOnnx failed" in bad.error
    assert res.skipped == [bad]
    assert res.winner.runtime == "eager" and res.artifact.name == "model.pt2"
    assert "channels_last not tried" in " ".join(res.notes)
    out = load_artifact(res.artifact)(torch.ones(1, 16))
    assert out.shape == (1, 8)


def test_config_and_artifact_validation(tmp_path):
    with pytest.raises(ValueError, match="runtime"):
        DeployConfig(runtimes=("tensorrt",))
    with pytest.raises(ValueError, match="threads"):
        DeployConfig(threads=(0,))
    with pytest.raises(ValueError, match=r"\.onnx, \.xml or \.pt2"):
        load_artifact(tmp_path / "model.bin")


@pytest.mark.slow
def test_deploy_cli_from_a_saved_directory(tmp_path):
    pytest.importorskip("torchvision")
    from typer.testing import CliRunner

    from prunekit.cli import app
    from prunekit.io import load_model_spec
    from prunekit.serialize import save
    from prunekit.structural import plan_structured

    dense = load_model_spec("torchvision:squeezenet1_1").eval()
    x = torch.randn(1, 3, 32, 32)
    pruned = plan_structured(dense, x, ratio=0.3).apply(copy=True).eval()
    save(pruned, tmp_path / "pruned", spec="torchvision:squeezenet1_1")
    r = CliRunner().invoke(app, ["deploy", str(tmp_path / "pruned"), "--device", "cpu",
                                 "--input-shape", "1,3,32,32", "--runtime", "eager,nosuch",
                                 "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "nosuch" in r.output  # unknown runtime: one clear line
    r = CliRunner().invoke(app, ["deploy", str(tmp_path / "pruned"), "--device", "cpu",
                                 "--input-shape", "1,3,32,32", "--runtime", "eager",
                                 "--channels-last", "off", "--budget", "0.5",
                                 "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "winner: eager" in r.output and "like-for-like" in r.output
    assert (tmp_path / "out" / "model.pt2").exists()


@pytest.mark.parametrize("runtime,suffix", [("openvino", ".xml"),
                                            ("onnxruntime-nospin", ".onnx")])
def test_exported_runtime_artifact_reloads_and_matches(tmp_path, runtime, suffix):
    pytest.importorskip("openvino" if runtime == "openvino" else "onnxruntime")
    pruned = _net(8)
    x = torch.randn(1, 3, 16, 16)
    res = deploy(pruned, x, tmp_path, dense=_net(32),
                 config=_cfg(runtimes=(runtime,), threads=(1,), clock=Steady()))
    assert res.winner.runtime == runtime and res.artifact.suffix == suffix
    assert [c.channels_last for c in res.candidates] == [False]  # layout is the graph's
    assert "channels_last not tried in " + runtime in " ".join(res.notes)
    got = load_artifact(res.artifact, 1, runtime)(x)
    with torch.no_grad():
        torch.testing.assert_close(torch.as_tensor(got[0]), pruned(x), atol=1e-4, rtol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        {".xml": ["model.bin", "model.xml"], ".onnx": ["model.onnx"]}[suffix]
        + ["deploy_report.json"])


LAST = ["dense"]


class Tagged(nn.Module):
    """Records which model ran last (outside tracing), for a clock that times by model."""

    def __init__(self, tag, width):
        super().__init__()
        self.tag, self.lin = tag, nn.Linear(16, width)

    def forward(self, x):
        if not torch.compiler.is_compiling():
            LAST[0] = self.tag
        return self.lin(x)


class ByModelAndThreads:
    """Dense is fastest at 1 thread, pruned at 2: their best settings differ."""

    ms = {("dense", 1): 40.0, ("dense", 2): 80.0, ("pruned", 1): 40.0, ("pruned", 2): 10.0}

    def time_call(self, fn):
        fn()
        return self.ms[(LAST[0], torch.get_num_threads())]


def test_best_vs_best_is_a_fresh_paired_run_across_settings(tmp_path):
    dense, pruned = Tagged("dense", 8), Tagged("pruned", 8)
    threads = torch.get_num_threads()
    res = deploy(pruned, torch.randn(1, 16), tmp_path, dense=dense,
                 config=_cfg(runtimes=("eager",), threads=(1, 2), clock=ByModelAndThreads()))
    assert torch.get_num_threads() == threads
    assert (res.winner.threads, res.winner.speedup) == (2, 8.0)  # like-for-like at 2 threads
    bvb = res.comparison("best vs best")
    assert bvb.paired and "1 threads" in bvb.dense and "2 threads" in bvb.pruned
    assert (bvb.ci_low, bvb.speedup, bvb.ci_high) == (4.0, 4.0, 4.0)
    assert res.best_vs_best == 4.0
    per_rt = res.comparison("runtime eager")
    assert not per_rt.paired and per_rt.speedup == 4.0 and per_rt.ci_low is None
    report = json.loads(res.report.read_text())
    assert report["best_vs_best_speedup"] == 4.0


def test_missing_openvino_is_a_named_skip(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    res = deploy(NoOnnx(), torch.randn(1, 16), tmp_path, dense=NoOnnx(),
                 config=_cfg(runtimes=("openvino", "eager"), threads=(1,), clock=Steady()))
    (bad,) = res.skipped
    assert bad.runtime == "openvino" and "pip install 'prunekit[openvino]'" in bad.error
    assert res.winner.runtime == "eager"


@pytest.mark.parametrize("spinning", [True, False])
def test_onnx_sessions_never_spin_after_a_run(tmp_path, spinning):
    pytest.importorskip("onnxruntime")
    from prunekit.bench.onnx_runtime import export_onnx, onnx_session

    path = str(tmp_path / "m.onnx")
    export_onnx(NoOnnx().eval(), torch.randn(1, 16), path)
    opts = onnx_session(path, torch.device("cpu"), 2, spinning=spinning).get_session_options()
    assert opts.get_session_config_entry("session.force_spinning_stop") == "1"
    assert opts.intra_op_num_threads == 2
    if not spinning:
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
