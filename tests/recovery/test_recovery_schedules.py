"""Exact sparsity trajectories of every schedule, and their application to masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.recover.recipe import Cubic, Iterative, OneShot
from prunekit.recover.schedules import amount_at, cubic_sparsity, events, nm_level


def test_oneshot_trajectory():
    assert events(OneShot(), 0.7, 10) == [(0, 0.7)]
    assert [amount_at(OneShot(), 0.7, 10, t) for t in range(3)] == [0.7, 0.7, 0.7]


def test_iterative_trajectory_equal_steps():
    ev = events(Iterative(steps=4), 0.8, 20)
    assert [t for t, _ in ev] == [0, 5, 10, 15]
    assert [s for _, s in ev] == pytest.approx([0.2, 0.4, 0.6, 0.8], abs=1e-12)
    traj = [amount_at(Iterative(steps=4), 0.8, 20, t) for t in range(20)]
    assert traj == pytest.approx([0.2] * 5 + [0.4] * 5 + [0.6] * 5 + [0.8] * 5)


def test_cubic_trajectory_matches_zhu_gupta():
    sched = Cubic(steps=4, start=0.1, end=0.9, begin=2, every=3)
    ev = events(sched, 0.9, 20)
    assert [t for t, _ in ev] == [2, 5, 8, 11, 14]
    expected = [0.9 + (0.1 - 0.9) * (1 - j / 4) ** 3 for j in range(5)]
    assert [s for _, s in ev] == pytest.approx(expected, abs=1e-15)
    assert expected[0] == pytest.approx(0.1) and expected[-1] == pytest.approx(0.9)
    # held constant between updates, zero before t0, final after the last update
    assert cubic_sparsity(0, 0.1, 0.9, 2, 4, 3) == 0.0
    assert cubic_sparsity(7, 0.1, 0.9, 2, 4, 3) == pytest.approx(expected[1])
    assert cubic_sparsity(19, 0.1, 0.9, 2, 4, 3) == pytest.approx(0.9)


def test_cubic_default_every_spans_three_quarters():
    ev = events(Cubic(steps=5), 0.5, 100)  # dt = floor(0.75 * 100 / 5) = 15
    assert [t for t, _ in ev] == [0, 15, 30, 45, 60, 75]
    assert ev[0][1] == 0.0 and ev[-1][1] == pytest.approx(0.5)


def test_schedule_must_fit_the_budget():
    with pytest.raises(ValueError, match="beyond the fine-tuning budget"):
        events(Cubic(steps=5, every=10), 0.5, 40)
    with pytest.raises(ValueError, match="schedule.steps"):
        events(Iterative(steps=5), 0.5, 3)


def test_nm_ramp_levels():
    # 2:8 target (0.75): levels 7:8 .. 2:8 as the amount grows; dense at 0
    assert nm_level(0.0, 0.75, 2, 8) is None
    assert nm_level(0.75 / 6, 0.75, 2, 8) == 7
    assert nm_level(0.75 * 0.5, 0.75, 2, 8) == 5
    assert nm_level(0.75, 0.75, 2, 8) == 2
    assert [nm_level(a, 0.5, 2, 4) for a in (0.1, 0.25, 0.4, 0.5)] == [None, 3, 3, 2]


def test_cumulative_masks_follow_the_schedule_exactly():
    """Applying each event's amount with prune_weights gives exactly that sparsity, nested."""
    from prunekit import prune_weights
    from prunekit.masks.apply import get_mask

    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(40, 50))
    prev = None
    for _, amount in events(Cubic(steps=3, every=1), 0.6, 10):
        prune_weights(lin, sparsity=amount)
        mask = get_mask(lin[0])
        assert int((~mask).sum()) == int(amount * 2000 + 0.5)
        if prev is not None:
            assert not (mask & ~prev).any()  # nothing pruned is revived
        prev = mask.clone()


def test_nm_ramp_applies_valid_nested_masks():
    from prunekit.masks.apply import get_mask
    from prunekit.masks.select import is_nm_valid
    from prunekit.recover.pruners import PruneContext, nm_pruner
    from prunekit.recover.recipe import Recipe

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8))
    recipe = Recipe(method="nm", pattern="2:8", schedule=Iterative(steps=6))
    prune = nm_pruner(PruneContext(recipe, nn.functional.cross_entropy, lambda: [], None))
    prev = torch.ones(8, 16, dtype=torch.bool)
    for i, (_, amount) in enumerate(events(recipe.schedule, recipe.amount, 12)):
        prune(model, amount)
        mask = get_mask(model[0])
        assert is_nm_valid(mask, 8 - (i + 1), 8) and not (mask & ~prev).any()
        prev = mask.clone()
    assert is_nm_valid(prev, 2, 8) and int(prev.sum()) == 8 * 16 // 4


def test_cosine_restarts_at_iterative_steps():
    from prunekit.recover.training import cosine_factor

    assert [round(cosine_factor(s, 8), 4) for s in (0, 4, 8)] == [1.0, 0.5, 0.0]
    f = [cosine_factor(s, 12, (0, 4, 8)) for s in range(12)]
    assert f[0] == f[4] == f[8] == 1.0 and f[2] == pytest.approx(0.5)
    assert f[3] < f[2] < f[1] < 1.0
