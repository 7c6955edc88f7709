"""Outputs whose sizes depend on data (detections) are compared on their static dims only."""

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit.graph.ragged import RaggedTracker, is_data_dependent, same_shapes
from prunekit.handlers.base import PruneError
from prunekit.structural.apply import _check_forward


class _Detector(nn.Module):
    """Backbone + 4-channel box head; keeps the positions scoring above the median."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.box = nn.Conv2d(16, 4, 1)
        self.score = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        f = self.body(x)
        boxes = self.box(f).flatten(2)[0].t()  # (HW, 4)
        scores = self.score(f).flatten()  # (HW,)
        keep = torch.nonzero(scores > scores.median()).squeeze(1)  # data-dependent count
        top = keep[:10]
        return boxes[keep], scores[keep], boxes[top].reshape(-1, 2, 2), scores.mean()


def test_data_dependent_ops_detected():
    aten = torch.ops.aten
    x = torch.randn(3, 2)
    assert is_data_dependent(aten.nonzero.default, (x,))
    assert is_data_dependent(aten.index.Tensor, (x, [x[:, 0] > 0]))
    assert not is_data_dependent(aten.index.Tensor, (x, [torch.tensor([0, 2])]))
    assert not is_data_dependent(aten.add.Tensor, (x, x))


def test_same_shapes_ignores_ragged_dims_only():
    want = [(100, 4), (100,), ()]
    ragged = [(0,), (0,), ()]
    assert same_shapes([(7, 4), (7,), ()], want, ragged)
    assert not same_shapes([(7, 5), (7,), ()], want, ragged)  # static dim changed
    assert not same_shapes([(7, 4, 1), (7,), ()], want, ragged)  # rank changed
    assert not same_shapes([(7, 4), (7,)], want, ragged)  # an output missing
    assert not same_shapes([(7, 4), (7,), ()], want, None)  # nothing ragged: strict


def test_tracker_marks_derived_dims():
    from prunekit.graph.trace import _Mode, Tracer

    m = _Detector().eval()
    tracer = Tracer(m)
    with torch.no_grad(), _Mode(tracer):
        out = m(torch.randn(1, 3, 8, 8))
    dims = tracer.ragged.output_dims(out)
    assert dims[0] == (0,) and dims[1] == (0,) and dims[3] == ()
    assert 0 in dims[2]  # keep[:10] of a data-dependent count
    assert isinstance(tracer.ragged, RaggedTracker)


def test_plan_records_ragged_dims_and_check_uses_them():
    torch.manual_seed(0)
    m = _Detector().eval()
    x = torch.randn(1, 3, 8, 8)
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert plan.output_ragged[:2] == [(0,), (0,)] and plan.output_ragged[3] == ()
    assert pk.verify(m, plan).ok
    pruned = plan.apply(copy=True)
    n = plan.output_shapes[0][0]
    plan.output_shapes = [(n + 5, 4), (n + 5,), *plan.output_shapes[2:]]  # other count: fine
    _check_forward(plan, pruned)
    plan.output_shapes = [(n, 5), *plan.output_shapes[1:]]  # a static dim differs: refused
    with pytest.raises(PruneError, match="data-dependent dims"):
        _check_forward(plan, pruned)


def test_tiny_faster_rcnn_prunes_with_changing_detection_count():
    tv = pytest.importorskip("torchvision")
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    torch.manual_seed(0)
    bb = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                       nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
    bb.out_channels = 32
    m = FasterRCNN(bb, num_classes=3, min_size=64, max_size=64, representation_size=32,
                   rpn_anchor_generator=AnchorGenerator(((16,),), ((0.5, 1.0, 2.0),)),
                   box_roi_pool=tv.ops.MultiScaleRoIAlign(["0"], 7, 2),
                   box_score_thresh=0.34, box_detections_per_img=300).eval()
    x = ([torch.rand(3, 64, 64)],)
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert plan.output_ragged[0] == (0,)
    edits = {e.name: e for e in plan.edits}  # roi_align keeps the backbone channels prunable
    assert edits["backbone.3"].keep_out is not None
    pruned = plan.apply(copy=True)
    with torch.no_grad():
        got = pruned(*x)[0]
    assert got["boxes"].dim() == 2 and got["boxes"].shape[1] == 4
    assert got["boxes"].shape[0] == got["scores"].shape[0]
    assert got["boxes"].shape[0] != plan.output_shapes[0][0]  # a strict shape check would refuse
    assert pk.verify(m, plan).ok


def test_stacked_coordinates_stay_static():
    from prunekit.graph.trace import _Mode, Tracer

    class Boxes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            b = self.conv(x).flatten(2)[0].t()  # (HW, 4)
            b = b[b[:, 0] > 0]  # boolean index: data-dependent rows
            x0, y0, x1, y1 = b.unbind(1)
            return torch.stack((x0 * 2, y0, x1, y1), dim=1)

    m = Boxes().eval()
    tracer = Tracer(m)
    with torch.no_grad(), _Mode(tracer):
        out = m(torch.randn(1, 3, 6, 6))
    assert tracer.ragged.output_dims(out) == [(0,)]
