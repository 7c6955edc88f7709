"""Sparse backends: CSR correctness on CPU; selection never picks a slower backend (fake timer)."""

import random

import pytest
import torch
from torch import nn

from prunekit.bench.sparse import CSRLinear, SemiStructuredLinear, choose_sparse_backends
from prunekit.masks.select import nm_mask, unstructured_mask


def _sparse_linear(i, o, sparsity, bias=True):
    lin = nn.Linear(i, o, bias=bias)
    with torch.no_grad():
        lin.weight.mul_(unstructured_mask(lin.weight.abs(), sparsity))
    return lin


@pytest.mark.parametrize("bias", [True, False])
def test_csr_linear_matches_dense(bias):
    lin = _sparse_linear(32, 24, 0.9, bias)
    csr = CSRLinear(lin)
    for shape in [(5, 32), (2, 3, 32)]:
        x = torch.randn(shape)
        assert torch.allclose(csr(x), lin(x), atol=1e-5)
    assert "density=0.1" in repr(csr)


class FakeTimer:
    """Scripted per-layer, per-backend latencies (ms); records what it was asked to time."""

    def __init__(self, table):
        self.table, self.asked = table, []

    def __call__(self, mods, x):
        self.asked.append(sorted(mods))
        layer = {32: "a", 48: "b"}[x.shape[-1]]
        return {name: self.table[layer][name] for name in mods}


def _model():
    torch.manual_seed(0)
    return nn.Sequential(_sparse_linear(32, 48, 0.95), nn.ReLU(), _sparse_linear(48, 8, 0.5))


def test_selection_picks_only_faster_backend():
    m = _model()
    timer = FakeTimer({"a": {"dense": 1.0, "csr": 0.4}, "b": {"dense": 1.0, "csr": 1.5}})
    decisions = choose_sparse_backends(m, torch.randn(4, 32), timer=timer, apply=True)
    by = {d.layer: d for d in decisions}
    assert by["0"].backend == "csr" and by["0"].timings_ms == {"dense": 1.0, "csr": 0.4}
    assert by["2"].backend == "dense" and by["2"].timings_ms["csr"] == 1.5
    assert isinstance(m[0], CSRLinear) and isinstance(m[2], nn.Linear)
    assert "2:4 kernels need CUDA" in by["0"].notes["2:4"] or torch.cuda.is_available()
    assert by["0"].to_dict()["shape"] == [48, 32]


def test_margin_and_never_slower_random():
    rng = random.Random(0)
    for _ in range(30):
        table = {k: {"dense": rng.uniform(0.5, 2), "csr": rng.uniform(0.5, 2)} for k in "ab"}
        m = _model()
        x = torch.randn(2, 32)
        ref = m(x)
        for d in choose_sparse_backends(m, x, timer=FakeTimer(table), margin=0.05, apply=True):
            t = d.timings_ms
            if d.backend == "csr":
                assert t["csr"] < 0.95 * t["dense"]
            else:
                assert t["csr"] >= 0.95 * t["dense"]
        assert torch.allclose(m(x), ref, atol=1e-5)  # swapped model computes the same


def test_dense_layers_are_not_timed_and_errors():
    m = nn.Sequential(nn.Linear(8, 8))
    timer = FakeTimer({})
    assert choose_sparse_backends(m, torch.randn(1, 8), timer=timer) == []
    assert timer.asked == []
    with pytest.raises(ValueError, match="unknown sparse backend 'bsr'"):
        choose_sparse_backends(m, torch.randn(1, 8), candidates=("bsr",))
    with pytest.raises(ValueError, match="margin"):
        choose_sparse_backends(m, torch.randn(1, 8), margin=1.5)


def test_default_timer_runs_on_cpu():
    m = nn.Sequential(_sparse_linear(64, 64, 0.9))
    d = choose_sparse_backends(m, torch.randn(2, 64))[0]
    assert d.timings_ms["dense"] > 0 and d.timings_ms["csr"] > 0
    assert d.backend in ("dense", "csr")


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["cusparselt", "cutlass"])
def test_semi_structured_matches_dense(kernel):
    lin = nn.Linear(256, 128).half().cuda()
    with torch.no_grad():
        lin.weight.mul_(nm_mask(lin.weight.abs().float(), 2, 4).to(lin.weight.dtype))
    x = torch.randn(64, 256, device="cuda", dtype=torch.half)
    try:
        mod = SemiStructuredLinear(lin, kernel)
    except (RuntimeError, NotImplementedError) as e:
        pytest.skip(f"{kernel} 2:4 kernels unavailable here: {e}")
    assert torch.allclose(mod(x).float(), lin(x).float(), atol=2e-2, rtol=1e-2)


@pytest.mark.gpu
def test_gpu_selection_with_real_timer():
    lin = nn.Linear(512, 512).half().cuda()
    with torch.no_grad():
        lin.weight.mul_(nm_mask(lin.weight.abs().float(), 2, 4).to(lin.weight.dtype))
    m = nn.Sequential(lin)
    ds = choose_sparse_backends(m, torch.randn(128, 512, device="cuda", dtype=torch.half),
                                atol=5e-2)
    d = ds[0]
    assert d.timings_ms["dense"] > 0
    if d.backend != "dense":
        assert d.timings_ms[d.backend] < d.timings_ms["dense"]
