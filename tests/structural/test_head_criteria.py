"""Every structural criterion is honoured for units inside a module (attention heads) or
refused with a clear error; none falls back to L1 silently."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.handlers import get_handler
from prunekit.handlers.examples import multihead_attention
from prunekit.importance.structured import GroupStats, UNIT_CRITERIA, unit_scores
from prunekit.structural.plan import plan_structured


def _batches(n: int = 2):
    torch.manual_seed(1)
    return [(torch.randn(2, 5, 6), torch.randn(2, 5, 3)) for _ in range(n)]


def test_taylor_scores_heads_from_gradients():
    torch.manual_seed(0)
    model = multihead_attention().eval()
    heads = get_handler(model.mha).internal_groups(model.mha)[0]
    stats = GroupStats(taylor={id(t): torch.ones_like(t) * (i + 1)
                               for i, (t, _) in enumerate(heads.weight_slices)})
    taylor, l1 = unit_scores(heads, "taylor", stats=stats), unit_scores(heads, "l1")
    expected = sum(float(i + 1) * t.numel() / heads.size for i, (t, _) in enumerate(heads.weight_slices))
    assert torch.allclose(taylor, torch.full((heads.size,), expected))  # from w * grad, not |w|
    assert not torch.allclose(taylor, l1)


def test_taylor_plans_heads_and_verifies():
    torch.manual_seed(0)
    model = multihead_attention().eval()
    plan = plan_structured(model, torch.randn(2, 5, 6), ratio=0.5, criterion="taylor",
                           calib_data=_batches(), loss_fn=nn.functional.mse_loss)
    assert any(e.internal for e in plan.edits)
    assert plan.checked


@pytest.mark.parametrize("criterion", ["activation", "apoz"])
def test_activation_criteria_are_refused_for_heads(criterion):
    model = multihead_attention().eval()
    with pytest.raises(ValueError, match="cannot score units inside a module.*mha"):
        plan_structured(model, torch.randn(2, 5, 6), criterion=criterion, calib_data=_batches())
    assert criterion not in UNIT_CRITERIA
