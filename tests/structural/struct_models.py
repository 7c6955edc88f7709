"""Small models exercising every handler and coupling rule (shared by the structural tests)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvChain(nn.Module):
    """conv -> BN -> ReLU -> conv -> pool -> flatten -> linear (flatten couples c with H*W)."""

    def __init__(self, dims: int = 2) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
        self.c1, self.b1 = conv(3, 8, 3, padding=1), bn(8)
        self.c2 = conv(8, 6, 3, padding=1, bias=False)
        self.pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dims](2)
        self.fc = nn.Linear(6 * 2 ** dims, 5)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        return self.fc(torch.flatten(self.pool(F.relu(self.c2(x))), 1))


class Residual(nn.Module):
    """Residual adds couple the stream; grouped + depthwise convs; GroupNorm and PReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.act = nn.PReLU(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grp = nn.Conv2d(16, 16, 1, groups=4)
        self.dwm = nn.Conv2d(16, 32, 3, padding=1, groups=16)  # depthwise, multiplier 2
        self.pw = nn.Conv2d(32, 16, 1)
        self.inorm = nn.InstanceNorm2d(16, affine=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.act(self.gn(self.stem(x)))
        x = x + self.grp(F.relu(self.dw(x)))
        x = x + self.inorm(self.pw(F.relu(self.dwm(x))))
        return self.head(x.mean((2, 3)))


class ConcatSplit(nn.Module):
    """Concat with offsets, chunk, channel shuffle (view/transpose/view), SE gate."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 10, 3, padding=1)
        self.c = nn.Conv2d(16, 8, 1)
        self.se1, self.se2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.d = nn.Conv2d(4, 4, 3, padding=1)
        self.e = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], 1)
        y = self.c(y)
        y = y * torch.sigmoid(self.se2(F.relu(self.se1(y.mean((2, 3), keepdim=True)))))
        p, q = y.chunk(2, dim=1)
        y = torch.cat([p, F.relu(self.d(q))], 1)
        b, c, h, w = y.shape
        y = y.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)  # channel shuffle
        return self.fc(self.e(y).amax((2, 3)))


class Transposed(nn.Module):
    """ConvTranspose (plain and grouped), a UNet-style concat skip and LayerNorm on tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.gup = nn.ConvTranspose2d(16, 16, 3, padding=1, groups=4)
        self.dec = nn.Conv2d(16, 8, 3, padding=1)
        self.ln = nn.LayerNorm(8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(e1))
        e2 = F.relu(self.gup(e2))
        d = self.dec(torch.cat([self.up(e2), e1], 1))
        d = self.ln(d.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.out(F.relu(d))


class MLPScale(nn.Module):
    """MLP on tokens with a layer-scale parameter and a position embedding (free params)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(5, 12)
        self.pos = nn.Parameter(torch.randn(1, 4, 12))
        self.fc1, self.fc2 = nn.Linear(12, 24), nn.Linear(24, 12)
        self.gamma = nn.Parameter(torch.rand(12))
        self.norm = nn.LayerNorm(12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):  # (B, 4, 5)
        h = self.inp(x) + self.pos
        h = h + self.gamma * self.fc2(F.gelu(self.fc1(h)))
        return self.head(self.norm(h).mean(1))


CASES = {
    "conv1d": (lambda: ConvChain(1), (2, 3, 8)),
    "conv2d": (lambda: ConvChain(2), (2, 3, 8, 8)),
    "conv3d": (lambda: ConvChain(3), (2, 3, 4, 4, 4)),
    "residual_grouped": (Residual, (2, 3, 8, 8)),
    "concat_split_shuffle": (ConcatSplit, (2, 3, 8, 8)),
    "transposed_unet": (Transposed, (2, 3, 8, 8)),
    "mlp_scale": (MLPScale, (2, 4, 5)),
}


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give norm layers non-trivial affine params and running stats (so masking bugs show)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(m, name, None)
            if isinstance(t, torch.Tensor) and t.dim() == 1 and not isinstance(
                    m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                with torch.no_grad():
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "var" in name or
                            name == "weight" else torch.randn(t.shape, generator=g))
    return model
