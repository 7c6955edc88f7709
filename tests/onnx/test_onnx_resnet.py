"""torchvision ResNet-18 through ONNX: structural pruning verified by ONNX Runtime."""

import warnings

import pytest
import torch

from prunekit.onnx import prune_onnx
from prunekit.onnx.reference import run_ort

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
pytest.importorskip("onnxscript")
torchvision = pytest.importorskip("torchvision")


@pytest.mark.slow
def test_resnet18_onnx_structured_half(tmp_path):
    model = torchvision.models.resnet18(num_classes=100).eval()
    path = tmp_path / "resnet18.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=False,
                          opset_version=17, input_names=["image"])
    res = prune_onnx(path, ratio=0.5, structured=True, output=tmp_path / "pruned.onnx")
    assert res.ok and res.torch_diff < 1e-4
    assert res.params[1] < 0.35 * res.params[0]
    pruned = onnx.load(str(tmp_path / "pruned.onnx"))
    assert pruned.graph.input[0].name == "image"
    x = torch.randn(1, 3, 64, 64)
    assert run_ort(pruned, {"image": x.numpy()})[0].shape == (1, 100)
