"""Region pooling and index_put keep channels in place: the features feeding them stay prunable."""

import torch
from torch import nn

import prunekit as pk


class _Scatter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        f = self.conv(x)  # (1, C, H, W)
        out = torch.zeros(3, f.shape[1], *f.shape[2:])  # a fresh buffer sized from f
        out[torch.tensor([0, 2])] = f.expand(2, -1, -1, -1)
        return self.head(out)


class _RoI(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        from torchvision.ops import roi_align

        f = self.conv(x).relu()
        rois = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0], [0, 2.0, 1.0, 7.0, 6.0]])
        return self.fc(roi_align(f, rois, (2, 2), 1.0, 2).flatten(1))


def _pruned_conv(model, x):
    plan = pk.plan_structured(model, x, ratio=0.5)
    edits = {e.name: e for e in plan.edits}
    assert "conv" in edits and len(edits["conv"].keep_out) == 4
    assert pk.verify(model, plan).ok
    return plan


def test_index_put_into_fresh_buffer_keeps_channels_prunable():
    plan = _pruned_conv(_Scatter().eval(), torch.randn(1, 3, 4, 4))
    assert plan.apply(copy=True).head.in_channels == 4


def test_roi_align_keeps_channels_prunable():
    plan = _pruned_conv(_RoI().eval(), torch.randn(1, 3, 8, 8))
    assert plan.apply(copy=True).fc.in_features == 16  # 4 channels x 2 x 2 bins


def test_index_put_into_a_parameter_stays_consistent():
    class Into(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)
            self.table = nn.Parameter(torch.randn(3, 8, 4, 4))

        def forward(self, x):
            t = self.table.clone()
            t[torch.tensor([1])] = self.conv(x)
            return t.sum()

    torch.manual_seed(0)
    m = Into().eval()
    x = torch.randn(1, 3, 4, 4)
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert pk.verify(m, plan).ok  # sliced together with the conv, or fixed: never inconsistent
    pruned = plan.apply(copy=True)
    assert pruned.table.shape[1] == pruned.conv.out_channels
