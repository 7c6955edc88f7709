import os

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit._compressed import load_compressed, save_compressed
from prunekit.io import UnsafeFileError, atomic_path, load_model_spec, load_weights, save_weights
from prunekit.stats import stats


def test_macs_hand_computed_conv_linear():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 10))
    x = torch.randn(2, 3, 4, 4)
    st = stats(m, x)
    conv = 2 * 8 * 4 * 4 * (3 * 3 * 3)  # batch * Cout * H * W * (Cin * kh * kw)
    lin = 2 * 10 * 128
    assert {lay.name: lay.macs for lay in st.layers} == {"0": conv, "3": lin}
    assert st.macs == conv + lin and st.flops == 2 * (conv + lin)
    assert st.params == 8 * 27 + 8 + 10 * 128 + 10 and st.nonzero == st.params


def test_grouped_conv_macs():
    m = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False))
    st = stats(m, torch.randn(1, 8, 5, 5))
    assert st.macs == 8 * 5 * 5 * (2 * 9)


def test_effective_macs_and_sizes_after_pruning():
    m = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 16))
    x = torch.randn(1, 256)
    dense = stats(m, x)
    pk.prune_weights(m, 0.9, "l1", "layer")
    st = stats(m, x)
    assert st.macs == dense.macs
    assert st.effective_macs == pytest.approx(dense.macs * 0.1, rel=0.01)
    assert st.nonzero < 0.12 * st.params
    assert st.size_dense_bytes == pytest.approx(dense.size_dense_bytes, rel=0.01)
    assert st.size_compressed_bytes < 0.3 * st.size_dense_bytes
    assert st.peak_memory_bytes > 0 and st.layers[0].type == "Linear"
    d = st.to_dict()
    assert d["sparsity"] == pytest.approx(st.sparsity) and len(d["layers"]) == 2


def test_compressed_roundtrip_exact(tmp_path):
    sd = {"a": torch.randn(64, 64), "b": torch.randn(10), "c": torch.zeros(3, 3), "h": torch.randn(32, 8).half()}
    sd["a"][torch.rand(64, 64) < 0.8] = 0
    sd["h"][torch.rand(32, 8) < 0.5] = 0
    n = save_compressed(sd, tmp_path / "x.safetensors")
    assert n == os.path.getsize(tmp_path / "x.safetensors")
    back = load_compressed(tmp_path / "x.safetensors")
    assert back.keys() == sd.keys()
    for k in sd:
        assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k])


def test_save_load_weights_roundtrip_plain_keys(tmp_path):
    m = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    pk.prune_weights(m, 0.5)
    p = save_weights(m, tmp_path / "w.safetensors")
    sd = load_weights(p)
    assert set(sd) == set(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).state_dict())
    fresh = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    fresh.load_state_dict(sd)
    m.eval(), fresh.eval()
    x = torch.randn(4, 8)
    assert torch.equal(m(x), fresh(x))


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_corrupt_and_unsafe_files_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_weights(bad)
    model_file = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 2), model_file)
    with pytest.raises(UnsafeFileError, match="trust"):
        load_model_spec(model_file)
    with pytest.raises(UnsafeFileError, match="trust"):
        load_weights(model_file)
    assert isinstance(load_model_spec(model_file, trust=True), nn.Linear)
    sd_file = tmp_path / "sd.pt"
    torch.save(nn.Linear(2, 2).state_dict(), sd_file)
    assert set(load_weights(sd_file)) == {"weight", "bias"}


def test_model_specs():
    m = load_model_spec("module:prunekit.demo:DigitsCNN")
    assert m(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    with pytest.raises(ValueError, match="no such file"):
        load_model_spec("does/not/exist.pt")
    with pytest.raises(ValueError, match="module:pkg.mod:factory"):
        load_model_spec("module:nonexistent_pkg_xyz:make")


def test_wrong_input_shape_error():
    with pytest.raises(ValueError, match=r"shape \(1, 3\).*module 0 \(Linear\)"):
        stats(nn.Sequential(nn.Linear(4, 2)), torch.randn(1, 3))
