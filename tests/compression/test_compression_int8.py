"""Int8 through ONNX Runtime: outputs within tolerance of fp32; float leftovers named."""

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from prunekit.compression import quantize  # noqa: E402
from prunekit.compression.int8 import float_nodes  # noqa: E402


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10)).eval()


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_int8_outputs_within_tolerance(static, tmp_path):
    model = _cnn()
    calib = [torch.randn(8, 1, 8, 8) for _ in range(4)]
    kwargs = {"calib_data": calib} if static else {"example_inputs": calib[0]}
    q = quantize(model, "int8", runtime="onnxruntime", path=tmp_path / "q.onnx", **kwargs)
    assert q.mode == ("static" if static else "dynamic") and q.fp32_nodes == []
    x = torch.randn(5, 1, 8, 8)                  # another batch size: the batch axis is dynamic
    ref = model(x).detach()
    err = (q(x) - ref).abs().max()
    assert err <= 0.05 * ref.abs().max()         # stated tolerance: 5% of the output range
    assert (tmp_path / "q.onnx").is_file()


def test_float_nodes_names_unquantized_ops(tmp_path):
    from prunekit.compression.int8 import export_onnx

    export_onnx(_cnn(), torch.randn(2, 1, 8, 8), str(tmp_path / "f.onnx"))
    left = float_nodes(str(tmp_path / "f.onnx"))
    assert len(left) == 3                        # two Conv + one Gemm, all float


def test_bad_arguments():
    with pytest.raises(ValueError, match="int8"):
        quantize(_cnn(), "int4", example_inputs=torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="runtime"):
        quantize(_cnn(), "int8", runtime="tensorrt", example_inputs=torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="example_inputs"):
        quantize(_cnn(), "int8")


def test_dynamic_per_channel_tracks_channel_scales(tmp_path):
    """Rows of very different scale: per-channel int8 weights keep the small rows' precision."""
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    with torch.no_grad():
        lin.weight.mul_(torch.logspace(-3, 0, 32).unsqueeze(1))  # row scales 1e-3 .. 1
        lin.bias.zero_()
    model = nn.Sequential(lin).eval()
    x = torch.randn(16, 64)
    ref = model(x).detach()
    err = {}
    for pc in (True, False):
        q = quantize(model, example_inputs=x, per_channel=pc, path=tmp_path / f"q{pc}.onnx")
        err[pc] = ((q(x) - ref)[:, :8].norm() / ref[:, :8].norm()).item()  # the smallest rows
    assert err[True] < 0.05 < err[False]
