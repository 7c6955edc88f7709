"""Runtime registry: errors name the argument; eager/ONNX Runtime give the model's outputs."""

import pytest
import torch
from torch import nn

from prunekit.bench.config import BenchConfig
from prunekit.bench.harness import compare
from prunekit.bench.runtimes import RuntimeUnavailable, get_runtime, prepare_runtime, resolve_device


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def test_unknown_runtime_names_argument():
    with pytest.raises(ValueError, match="runtime='tensorrt' is unknown; known: .*eager"):
        get_runtime("tensorrt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="device='cuda'.*no usable CUDA"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device='cuda'"):
        compare({"m": _mlp()}, torch.randn(1, 16), BenchConfig(device="cuda"))


def test_bad_device_string():
    with pytest.raises(ValueError, match="device='gpu0'"):
        resolve_device("gpu0")


def test_cudagraph_on_cpu_is_unavailable():
    with pytest.raises(RuntimeUnavailable, match="runtime='cudagraph' needs device cuda"):
        prepare_runtime("cudagraph", _mlp(), torch.randn(1, 16), "cpu")


@pytest.mark.parametrize("rt", ["eager", "onnxruntime"])
def test_runtime_outputs_match_eager(rt):
    m, x = _mlp(), torch.randn(3, 16)
    run = prepare_runtime(rt, m, x, "cpu", threads=1)
    out = run(x)
    out = torch.as_tensor(out[0] if isinstance(out, list) else out)
    assert torch.allclose(out, m(x), atol=1e-5)


class _Unexportable(nn.Module):
    """Fails under any exporter (like a model with an op ONNX lacks), runs fine eagerly."""

    def forward(self, x):
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            raise NotImplementedError("op without an ONNX symbolic")
        return x * 2


def test_onnx_export_failure_is_clear_and_sweep_continues():
    with pytest.raises(RuntimeError, match="ONNX export of _Unexportable failed"):
        prepare_runtime("onnxruntime", _Unexportable(), torch.randn(1, 4), "cpu")
    res = compare({"ok": nn.Linear(4, 4), "bad": _Unexportable()}, torch.randn(1, 4),
                  BenchConfig(runtimes=("onnxruntime", "eager"), repeats=2, max_repeats=2, warmup=0, number=1))
    bad = res.cell("bad", "onnxruntime", 1)
    assert not bad.ok and "ONNX export" in bad.error
    assert res.cell("ok", "onnxruntime", 1).ok
    assert res.cell("bad", "eager", 1).ok
    row = [r for r in res.speedups() if r["runtime"] == "onnxruntime"][0]
    assert row["status"] == "failed"


@pytest.mark.gpu
@pytest.mark.parametrize("rt", ["eager", "cudagraph", "onnxruntime"])
def test_gpu_runtimes_match_eager(rt):
    m, x = _mlp().cuda(), torch.randn(3, 16, device="cuda")
    try:
        run = prepare_runtime(rt, m, x, "cuda", threads=1)
    except RuntimeUnavailable as e:
        pytest.skip(str(e))
    out = run(x)
    out = out[0].numpy() if isinstance(out, list) else out
    assert torch.allclose(torch.as_tensor(out, device="cuda"), m(x), atol=1e-3)


@pytest.mark.gpu
def test_gpu_compare_uses_events_memory_and_energy():
    res = compare({"a": _mlp(), "b": _mlp()}, torch.randn(1, 16),
                  BenchConfig(device="cuda", runtimes=("eager", "cudagraph"), repeats=3))
    c = res.cell("a", "cudagraph", 1)
    assert c.ok and c.peak_bytes is not None
    assert c.energy_j is not None or c.energy_note  # NVML optional; say why if missing


def test_compile_runtime_path(monkeypatch):
    """The compile runtime's code path with dynamo's eager backend (inductor is slow on CI)."""
    import prunekit.bench.runtimes as rts

    real = torch.compile
    monkeypatch.setattr(rts.torch, "compile", lambda m, **kw: real(m, backend="eager", **kw))
    m, x = _mlp(), torch.randn(3, 16)
    run = prepare_runtime("compile", m, x, "cpu")
    assert torch.allclose(run(x), m(x), atol=1e-6)


def test_compile_failure_is_clear(monkeypatch):
    import prunekit.bench.runtimes as rts

    def broken(m, **kw):
        def f(*a, **k):
            raise OSError("gcc: command not found")
        return f

    monkeypatch.setattr(rts.torch, "compile", broken)
    with pytest.raises(RuntimeError, match="runtime='compile' failed .*C\\+\\+ compiler"):
        prepare_runtime("compile", _mlp(), torch.randn(1, 16), "cpu")
