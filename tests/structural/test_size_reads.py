"""Channel sizes read as Python numbers: used in arithmetic -> those channels are fixed (with the
reason); used as shapes (flatten, head reshapes, split sizes) -> still prunable."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from masked_reference import zero_reference
from torch import nn

from prunekit.structural.plan import plan_structured


class Scaled(nn.Module):
    """``how`` decides how the size of ``a``'s output channels is used."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8 * 16 if how == "flatten" else 8, 3)

    def forward(self, x):
        y = F.relu(self.a(F.relu(self.stem(x))))
        c = y.shape[1]
        if self.how == "pow":
            y = y * c ** -0.5
        elif self.how == "sqrt":
            y = y / math.sqrt(y.size(1))
        elif self.how == "divide":
            y = y / y.size(1)
        elif self.how == "int_times":
            y = y * (c // 2)
        elif self.how == "arange":
            y = y * torch.arange(c).view(1, c, 1, 1)
        elif self.how == "numel":
            y = y / y.numel()
        elif self.how == "flatten":
            return self.head(y.view(y.size(0), -1))
        elif self.how == "split":
            p, q = torch.split(y, [c // 2, c - c // 2], 1)
            y = torch.cat([q, p], 1)
        return self.head(y.mean((2, 3)))


ARITHMETIC = ["pow", "sqrt", "divide", "int_times", "arange", "numel"]
SHAPES = ["flatten", "split"]


def _plan(how: str):
    torch.manual_seed(0)
    model = Scaled(how).eval()
    x = torch.randn(2, 3, 4, 4)
    return model, x, plan_structured(model, x, ratio=0.5, check=False)


@pytest.mark.parametrize("how", ARITHMETIC)
def test_size_in_arithmetic_fixes_those_channels(how):
    model, x, plan = _plan(how)
    fixed = {name: why for name, _, why in plan.fixed}
    assert "a.out" in fixed and "size is read as a number" in fixed["a.out"], plan.fixed
    assert all(e.name != "a" or e.keep_out is None for e in plan.edits)
    assert any(e.name == "stem" for e in plan.edits)  # the other channels stay prunable


@pytest.mark.parametrize("how", SHAPES)
def test_size_used_as_a_shape_stays_prunable(how):
    model, x, plan = _plan(how)
    assert any(e.name == "a" and e.keep_out is not None for e in plan.edits), plan.fixed
    assert not any("size is read" in why for _, _, why in plan.fixed)


@pytest.mark.parametrize("how", ["pow", "sqrt", "flatten"])
def test_pruned_equals_masked_reference(how):
    """Even with the value trial off, a size read in arithmetic cannot give a wrong model."""
    model, x, plan = _plan(how)
    pruned = plan.apply(copy=True)
    ref = zero_reference(copy.deepcopy(model).double(), plan)
    with torch.no_grad():
        for inp in (x, torch.randn(3, 3, 4, 4)):
            a, b = ref(inp.double()), copy.deepcopy(pruned).double()(inp.double())
            assert torch.allclose(a, b, atol=1e-9), (how, float((a - b).abs().max()))


def test_size_reads_leave_the_model_and_sizes_plain():
    model, x, plan = _plan("pow")
    with torch.no_grad():
        y = model.stem(x)
    assert type(y.shape[1]) is int and type(model(x).shape[0]) is int
