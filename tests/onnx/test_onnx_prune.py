"""prune_onnx: structural and weight pruning of ONNX graphs, checked with ONNX Runtime."""

import hashlib

import numpy as np
import pytest
import torch

from prunekit.onnx import OnnxPruneConfig, prune_onnx, unsupported_ops
from prunekit.onnx.reference import max_diff, run_ort

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
pytest.importorskip("onnxruntime")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _feed(shape=(1, 3, 16, 16), seed=1):
    return {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def _weights(model):
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_structured_removes_channels_and_matches_masked_reference(small_cnn_onnx, tmp_path):
    before = _digest(small_cnn_onnx)
    out = tmp_path / "pruned.onnx"
    res = prune_onnx(small_cnn_onnx, ratio=0.5, structured=True, output=out)
    assert res.ok and res.ort_diff <= res.tolerance and res.torch_diff < 1e-4
    assert res.params[1] < 0.5 * res.params[0]
    assert _digest(small_cnn_onnx) == before  # the user's file is untouched
    pruned = onnx.load(str(out))
    onnx.checker.check_model(pruned)
    conv_out = sorted(int(t.dims[0]) for t in pruned.graph.initializer if len(t.dims) == 4)
    assert max(conv_out) <= 12  # 16/24 output channels halved
    # the pruned graph answers differently from the dense one (the check is not trivial) ...
    dense_y = run_ort(onnx.load(str(small_cnn_onnx)), _feed())[0]
    pruned_y = run_ort(pruned, _feed())[0]
    assert pruned_y.shape == dense_y.shape == (1, 10)
    assert max_diff([dense_y], [pruned_y]) > 1e-3
    # ... and the output layer is reported as frozen
    assert any("model output" in why for _, _, _, why in res.frozen)
    assert "frozen channels" in res.summary()


def test_weight_pruning_keeps_the_graph_and_zeroes_initializers(small_cnn_onnx):
    src = onnx.load(str(small_cnn_onnx))
    res = prune_onnx(src, ratio=0.7, structured=False)
    assert res.ok
    assert [n.op_type for n in res.model.graph.node] == [n.op_type for n in src.graph.node]
    w = _weights(res.model)
    big = [v for v in w.values() if v.ndim >= 2]
    sparsity = sum(int((v == 0).sum()) for v in big) / sum(v.size for v in big)
    assert 0.68 <= sparsity <= 0.72
    assert all(float((v == 0).mean()) == 0.0 for v in _weights(src).values() if v.ndim >= 2)


@pytest.mark.slow
def test_dynamic_batch_needs_shape_and_stays_dynamic(make_small_cnn_onnx):
    path = make_small_cnn_onnx(dynamic=True, name="dyn.onnx")
    with pytest.raises(ValueError, match="input_shape"):
        prune_onnx(path, ratio=0.5)
    res = prune_onnx(path, ratio=0.5, input_shape=(2, 3, 16, 16))
    assert res.ok
    dims = res.model.graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value")  # batch still symbolic
    assert run_ort(res.model, _feed((5, 3, 16, 16)))[0].shape == (5, 10)


def test_ort_reference_catches_a_wrong_graph(small_cnn_onnx):
    res = prune_onnx(small_cnn_onnx, ratio=0.5, structured=True)
    broken = onnx.ModelProto()
    broken.CopyFrom(res.model)
    from onnx import numpy_helper

    t = max(broken.graph.initializer, key=lambda t: len(t.dims))
    arr = numpy_helper.to_array(t).copy()
    arr[0] += 1.0
    t.CopyFrom(numpy_helper.from_array(arr, t.name))
    good = run_ort(res.model, {"x": _feed()["x"]})
    bad = run_ort(broken, {"x": _feed()["x"]})
    assert max_diff(good, bad) > res.tolerance


def test_unsupported_op_is_named_and_input_untouched(small_cnn_onnx):
    from onnx import helper

    model = onnx.load(str(small_cnn_onnx))
    last = model.graph.output[0].name
    node = helper.make_node("MysteryOp", [last], ["mystery_out"], domain="com.example",
                            name="odd_node")
    model.graph.node.append(node)
    model.graph.output[0].name = "mystery_out"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    snapshot = model.SerializeToString()
    assert ("MysteryOp", "odd_node") in unsupported_ops(model)
    with pytest.raises(ValueError, match="MysteryOp.*odd_node"):
        prune_onnx(model, ratio=0.5)
    assert model.SerializeToString() == snapshot


@pytest.mark.parametrize("kwargs, word", [
    ({"ratio": 1.5}, "ratio"), ({"ratio": 0.5, "criterion": "nope"}, "nope"),
    ({"ratio": 0.5, "structured": "yes"}, "structured"), ({"ratio": 0.5, "atol": 0}, "atol"),
])
def test_config_rejects_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        OnnxPruneConfig(**kwargs)


def test_bad_paths_and_shapes(small_cnn_onnx, tmp_path):
    with pytest.raises(ValueError, match="path_or_model"):
        prune_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        prune_onnx(junk)
    with pytest.raises(ValueError, match="input_shape"):
        prune_onnx(small_cnn_onnx, input_shape=(1, 3, 8))
    with pytest.raises(ValueError, match="exclude"):
        prune_onnx(small_cnn_onnx, exclude=("no_such_node",))


def test_depthwise_separable_block_is_coupled_and_verified(tmp_path):
    pytest.importorskip("onnxscript")
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(32, 5)).eval()
    with torch.no_grad():
        net[3].running_mean.uniform_(-0.5, 0.5)
        net[3].bias.uniform_(-0.5, 0.5)
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 12, 12),), buf, dynamo=False,
                          input_names=["x"])
    res = prune_onnx(onnx.load_from_string(buf.getvalue()), ratio=0.5)
    assert res.ok and res.params[1] < res.params[0]
    assert not res.notes  # compared with the masked ONNX graph, not a torch fallback
    w = [t for t in res.model.graph.initializer if len(t.dims) == 4]
    assert sorted(int(t.dims[0]) for t in w) == [8, 8, 16]  # depthwise follows its input


@pytest.mark.slow
def test_newest_opset_channel_shuffle_is_frozen_and_named():
    """A default (opset 20) export with a channel shuffle: converted down for onnx2torch, the
    shuffled channels frozen and named in the summary."""
    import io
    import warnings

    from torch import nn

    class Shuffle(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.b = nn.Conv2d(8, 8, 3, padding=1)
            self.c = nn.Conv2d(8, 12, 3, padding=1)
            self.fc = nn.Linear(12, 4)

        def forward(self, x):
            x = torch.relu(self.b(torch.relu(self.a(x))))
            n, c, h, w = x.shape
            x = x.reshape(n, 2, 4, h, w).transpose(1, 2).reshape(n, 8, h, w)
            return self.fc(torch.relu(self.c(x)).mean((2, 3)))

    torch.manual_seed(0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Shuffle().eval(), (torch.randn(1, 3, 8, 8),), buf, dynamo=False,
                          input_names=["x"])
    src = onnx.load_from_string(buf.getvalue())
    res = prune_onnx(src, ratio=0.5)
    assert res.ok and res.params[1] < res.params[0]
    assert any("opset" in n for n in res.notes)
    frozen = {node: why for node, _, _, why in res.frozen}
    assert "reshaped" in frozen["/b/Conv"]
    assert "frozen channels" in res.summary() and "/b/Conv" in res.summary()
