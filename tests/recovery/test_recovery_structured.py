"""Structured schedules with the structural planner: dense-relative MACs targets,
slimming, and resume of a physically pruned model. Skipped until prunekit.structural exists."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import prunekit.recover.recipe as R
from prunekit.recover.run import run_recipe as run
from prunekit.recover.tasks import load_task, small_cnn

pytest.importorskip("prunekit.structural")
pytest.importorskip("prunekit.handlers")

from prunekit.recover.structured import count_macs  # noqa: E402


class Crash(Exception):
    pass


def _setup():
    tr, va = load_task("digits", limit=128)
    torch.manual_seed(0)
    model = small_cnn(2, widths=(8, 16, 16))
    return (model, DataLoader(tr, batch_size=32, shuffle=True,
                              generator=torch.Generator().manual_seed(0)),
            DataLoader(va, batch_size=128), tr[:2][0])


RECIPE = R.Recipe(method="structured", criterion="taylor", target=R.TargetSpec(macs=0.4),
                  schedule=R.Iterative(steps=2),
                  finetune=R.Finetune(epochs=2, lr=0.05, checkpoint_every=1),
                  distill=R.Distill(temperature=2.0, alpha=0.5, hidden=(("6", "6"),)))


@pytest.mark.slow
def test_structured_schedule_and_resume_after_crash(tmp_path):
    model, tl, vl, x = _setup()
    dense = count_macs(model, x)
    res = run(RECIPE, model, tl, vl, checkpoint_dir=tmp_path / "ref")
    # the schedule's amounts are relative to the dense model, whatever was removed before
    assert count_macs(model, x) / dense == pytest.approx(0.4, abs=0.06)
    assert [h.get("amount") for h in res.history[1:3]] == pytest.approx([0.3, 0.6])
    assert model[6].out_channels < 16  # the distilled hidden output itself was narrowed
    calls = {"n": 0}

    def crashing(o, y):
        calls["n"] += 1
        if calls["n"] == 7:  # after the second pruning event (step 4) and its checkpoint
            raise Crash
        return torch.nn.functional.cross_entropy(o, y)

    victim, tl, vl, _ = _setup()
    with pytest.raises(Crash):
        run(RECIPE, victim, tl, vl, crashing, checkpoint_dir=tmp_path / "run")
    fresh, tl, vl, _ = _setup()  # dense again: resume must resize it to the pruned shapes
    run(RECIPE, fresh, tl, vl, checkpoint_dir=tmp_path / "run", resume=True)
    a, b = model.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_slimming_prunes_channels_by_gamma(tmp_path):
    model, tl, vl, x = _setup()
    dense = count_macs(model, x)
    recipe = R.Recipe(method="slimming", criterion="bn_scale", target=R.TargetSpec(macs=0.5),
                      pretrain=R.Finetune(epochs=1, lr=0.05), l1=1e-3,
                      finetune=R.Finetune(epochs=1, lr=0.05))
    res = run(recipe, model, tl, vl, checkpoint_dir=tmp_path)
    assert [h["phase"] for h in res.history] == ["dense", "sparse-train", "finetune", "final"]
    assert (tmp_path / "gamma.png").stat().st_size > 1000
    assert count_macs(model, x) / dense == pytest.approx(0.5, abs=0.08)
