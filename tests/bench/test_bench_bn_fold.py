"""BatchNorm folding keeps outputs (inference) and reports what it did."""

import torch
import torchvision
from torch import nn

from prunekit.bench.bn_fold import fold_batchnorm


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 6)
        self.bn1d = nn.BatchNorm1d(6)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.bn1d(self.fc(y))


def test_fold_conv_and_linear_equivalent():
    m = _randomize_bn(ConvBN())
    x = torch.randn(4, 3, 10, 10)
    ref = m(x)
    rep = fold_batchnorm(m)
    assert rep.method == "fx"
    assert sorted(rep.folded) == [("conv", "bn"), ("fc", "bn1d")]
    assert isinstance(m.bn, nn.Identity) and isinstance(m.bn1d, nn.Identity)
    assert m.conv.bias is not None
    assert torch.allclose(m(x), ref, atol=1e-5)


def test_fold_resnet18_equivalent():
    m = _randomize_bn(torchvision.models.resnet18(weights=None))
    x = torch.randn(2, 3, 64, 64)
    ref = m(x)
    rep = fold_batchnorm(m)
    assert len(rep.folded) == 20 and not rep.skipped
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    assert torch.allclose(m(x), ref, atol=1e-4, rtol=1e-4)


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        if x.sum() > 1e9:  # data-dependent control flow: fx cannot trace
            return x
        return self.body(x)


def test_sequential_fallback():
    m = _randomize_bn(Untraceable())
    x = torch.randn(2, 3, 5, 5)
    ref = m(x)
    rep = fold_batchnorm(m)
    assert rep.method == "sequential" and rep.folded == [("body.0", "body.1")]
    assert torch.allclose(m(x), ref, atol=1e-5)


def test_skip_without_running_stats_and_shared_conv():
    m = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    rep = fold_batchnorm(m)
    assert not rep.folded and "running statistics" in rep.skipped[0][1]

    class Shared(nn.Module):  # conv output also used elsewhere: folding would change it
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    s = _randomize_bn(Shared())
    x = torch.randn(1, 3, 4, 4)
    ref = s(x)
    assert not fold_batchnorm(s).folded
    assert torch.allclose(s(x), ref)
