"""Distillation loss on a hand-computed example; hidden-state matching; the teacher is frozen."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.recover.distill import Distiller, distill_loss, kd_loss
from prunekit.recover.recipe import Distill


def test_kd_golden_value_and_gradient():
    # teacher z/T = [ln 3, 0] -> p_t = [3/4, 1/4]; student [0, 0] -> p_s = [1/2, 1/2]
    T = 2.0
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    s = torch.zeros(1, 2, requires_grad=True)
    soft = kd_loss(s, t, T)
    expected = T**2 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))  # = 3 ln 1.5 - ln 2
    assert soft.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(3 * math.log(1.5) - math.log(2.0))
    soft.backward()  # d/dz_s T^2 KL = T (p_s - p_t) = 2 * ([.5, .5] - [.75, .25])
    assert s.grad[0].tolist() == pytest.approx([-0.5, 0.5], abs=1e-6)


def test_mixed_loss_golden_value():
    T, alpha = 2.0, 0.7
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    s = torch.zeros(1, 2)
    task = F.cross_entropy(s, torch.tensor([0]))  # ln 2
    loss = distill_loss(s, t, task, T, alpha)
    assert loss.item() == pytest.approx(2.1 * math.log(1.5) - 0.4 * math.log(2.0), abs=1e-6)


def test_identical_logits_give_zero_soft_loss_and_batch_mean():
    z = torch.randn(5, 7)
    assert kd_loss(z, z, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    a, b = torch.randn(1, 4), torch.randn(1, 4)
    two = kd_loss(torch.cat([a, a]), torch.cat([b, b]), 1.5)
    assert two.item() == pytest.approx(kd_loss(a, b, 1.5).item(), rel=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)


def test_hidden_matching_with_learnable_projection():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(8 * 16, 3))
    student = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(4 * 16, 3))
    d = Distiller(teacher, student, Distill(temperature=1.0, alpha=0.0, hidden=(("0", "0"),),
                                            hidden_weight=1.0))
    x, y = torch.randn(6, 1, 4, 4), torch.randint(0, 3, (6,))
    d.prepare(x, student)
    proj = d.proj[0]
    assert isinstance(proj, nn.Conv2d) and (proj.in_channels, proj.out_channels) == (4, 8)
    out = student(x)
    tl = d.teacher_forward(x)
    task = F.cross_entropy(out, y)
    loss = d.loss(out, tl, task)
    with torch.no_grad():
        hidden = F.mse_loss(proj(student[0](x)), teacher[0](x))
    assert loss.item() == pytest.approx(task.item() + hidden.item(), rel=1e-5)
    loss.backward()
    assert proj.weight.grad is not None and student[0].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ValueError, match="distill.hidden\\[0\\]: no student module named 'zz'"):
        Distiller(teacher, student, Distill(hidden=(("zz", "0"),)))
