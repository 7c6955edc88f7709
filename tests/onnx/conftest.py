"""Small ONNX graphs written by the TorchScript exporter (fast, no onnxscript needed)."""

import io
import warnings

import pytest
import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv-bn-relu, a residual block, flatten -> linear: coupled channels and a flatten."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Sequential(nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(96, 10))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.b(torch.relu(self.a(x)))
        return self.head(x)


def to_onnx(model, x, dynamic=False):
    import onnx

    model.eval()
    buf = io.BytesIO()
    kw = {"dynamic_axes": {"x": {0: "batch"}}} if dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"], **kw)
    return onnx.load_from_string(buf.getvalue())


@pytest.fixture
def make_small_cnn_onnx(tmp_path):
    """Factory: write the small CNN as ONNX (optionally with a dynamic batch); return the path."""
    pytest.importorskip("onnx2torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    def make(dynamic=False, name="small.onnx"):
        torch.manual_seed(0)
        model = SmallCNN()
        with torch.no_grad():  # non-trivial BN statistics so folding matters
            bn = model.stem[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
        path = tmp_path / name
        onnx.save(to_onnx(model, torch.randn(1, 3, 16, 16), dynamic), str(path))
        return path

    return make


@pytest.fixture
def small_cnn_onnx(make_small_cnn_onnx):
    return make_small_cnn_onnx()
