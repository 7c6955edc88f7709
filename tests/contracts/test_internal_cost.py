"""Handlers with internal groups (heads, LSTM cell units) account exactly: the parameters the
planner predicts for a plan are the parameters the pruned model has (``internal_cost``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.handlers import get_handler
from prunekit.structural.plan import plan_structured


class _LSTMProj(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.rnn = nn.LSTM(8, 10, proj_size=4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.rnn(torch.relu(self.a(x)))[0])


class _MaxViTAttention(nn.Module):
    def __init__(self) -> None:
        from torchvision.models.maxvit import RelativePositionalMultiHeadAttention

        super().__init__()
        self.a = nn.Linear(8, 32)
        self.attn = RelativePositionalMultiHeadAttention(32, 8, 16)  # 4 heads, 4x4 window
        self.head = nn.Linear(32, 3)

    def forward(self, x):  # (B, G, P, 8)
        y = self.a(x)
        return self.head(y + self.attn(y))


class _MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        y = self.a(x)
        return self.head(y + self.mha(y, y, y, need_weights=False)[0])


def _swin(v2: bool) -> nn.Module:
    from torchvision.models.swin_transformer import (
        PatchMergingV2,
        SwinTransformer,
        SwinTransformerBlockV2,
    )

    kw = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if v2 else {}
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                           window_size=[4, 4], num_classes=3, **kw)


MODELS = {
    "lstm_projection": (_LSTMProj, lambda: torch.randn(2, 5, 6)),
    "maxvit_attention": (_MaxViTAttention, lambda: torch.randn(2, 3, 16, 8)),
    "swin_v1": (lambda: _swin(False), lambda: torch.randn(1, 3, 32, 32)),
    "swin_v2": (lambda: _swin(True), lambda: torch.randn(1, 3, 32, 32)),
    "multihead_attention": (_MHA, lambda: torch.randn(2, 5, 8)),
}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_planned_params_equal_counted(name):
    pytest.importorskip("torchvision")
    build, inputs = MODELS[name]
    torch.manual_seed(0)
    model, x = build().eval(), inputs()
    plan = plan_structured(model, x, ratio=0.5)
    assert any(e.internal for e in plan.edits), "no internal group was pruned"
    internal = {e.name for e in plan.edits if e.internal}
    mods = dict(model.named_modules())
    assert all(get_handler(mods[n]).internal_cost(mods[n], None, None, {}) is not None
               for n in internal)  # an exact formula, not the proportional fallback
    pruned = plan.apply(copy=True)
    assert plan.params == (_count(model), _count(pruned)), (plan.params, _count(pruned))
    assert plan.macs[1] < plan.macs[0]
