"""pk.run_recipe end to end on a tiny task; bad input gives clear errors and never touches checkpoints."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import prunekit.recover.recipe as R
from prunekit.masks.apply import masked_modules
from prunekit.recover.run import run_recipe as run
from prunekit.recover.tasks import load_task, mlp


def _setup(seed: int = 0):
    tr, va = load_task("digits", limit=96)
    torch.manual_seed(seed)
    return (mlp(hidden=16), DataLoader(tr, batch_size=32, shuffle=True,
                                       generator=torch.Generator().manual_seed(0)),
            DataLoader(va, batch_size=96))


RECIPE = R.Recipe(target=R.TargetSpec(ratio=0.5), schedule=R.Iterative(steps=2),
                  finetune=R.Finetune(epochs=2, lr=0.1, checkpoint_every=2),
                  distill=R.Distill(temperature=2.0, alpha=0.5))


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_prunes_to_target_and_finalizes(tmp_path):
    model, tl, vl = _setup()
    res = run(RECIPE, model, tl, vl, checkpoint_dir=tmp_path / "a")
    assert res.sparsity == pytest.approx(0.5, abs=1e-3)
    assert not masked_modules(model)  # finalized: ordinary modules
    assert [h["phase"] for h in res.history] == ["dense", "finetune", "finetune", "final"]
    assert (tmp_path / "a" / "result.json").exists()
    # resuming a finished run returns its result without training again
    model2, tl2, vl2 = _setup()
    res2 = run(RECIPE, model2, tl2, vl2, checkpoint_dir=tmp_path / "a", resume=True)
    assert res2.final_metric == res.final_metric
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_existing_checkpoint_without_resume_is_refused(tmp_path):
    model, tl, vl = _setup()
    run(RECIPE, model, tl, vl, checkpoint_dir=tmp_path)
    before = _digest(tmp_path / "last.pt")
    model, tl, vl = _setup()
    with pytest.raises(ValueError, match="exists; pass resume=True"):
        run(RECIPE, model, tl, vl, checkpoint_dir=tmp_path)
    assert _digest(tmp_path / "last.pt") == before


def test_mismatched_checkpoint_is_refused(tmp_path):
    model, tl, vl = _setup()
    run(RECIPE, model, tl, vl, checkpoint_dir=tmp_path)
    before = _digest(tmp_path / "last.pt")
    other_model, tl, vl = _setup(seed=1)  # same architecture, other weights
    with pytest.raises(ValueError, match="different model"):
        run(RECIPE, other_model, tl, vl, checkpoint_dir=tmp_path, resume=True)
    model, tl, vl = _setup()
    other = R.Recipe(**{**RECIPE.__dict__, "seed": 3})
    with pytest.raises(ValueError, match="different recipe"):
        run(other, model, tl, vl, checkpoint_dir=tmp_path, resume=True)
    assert _digest(tmp_path / "last.pt") == before


def test_loader_with_wrong_shapes_is_a_clear_error(tmp_path):
    model, tl, vl = _setup()
    run(RECIPE, model, tl, vl, checkpoint_dir=tmp_path)
    before = _digest(tmp_path / "last.pt")
    bad = DataLoader(TensorDataset(torch.randn(64, 1, 5, 5), torch.zeros(64, dtype=torch.long)),
                     batch_size=32)
    model, _, vl = _setup()
    with pytest.raises(ValueError, match=r"train_loader: the model cannot run its first batch "
                                         r"\(inputs tensor\(32, 1, 5, 5\):float32"):
        run(RECIPE, model, bad, vl, checkpoint_dir=tmp_path, resume=True)
    assert _digest(tmp_path / "last.pt") == before
    with pytest.raises(ValueError, match="batches must be \\(inputs, target\\) pairs"):
        run(RECIPE, _setup()[0], [torch.randn(4, 64)], None, checkpoint_dir=tmp_path / "new")
    assert not (tmp_path / "new" / "last.pt").exists()


def test_plain_finetune_api():
    from prunekit import prune_weights
    from prunekit.recover.loop import finetune

    model, tl, vl = _setup()
    prune_weights(model, sparsity=0.7)
    hist = finetune(model, tl, torch.nn.functional.cross_entropy, R.Finetune(epochs=2, lr=0.1),
                    val_loader=vl)
    assert len(hist) == 2 and hist[-1]["metric"] is not None
    w = model[1].weight
    assert int((w == 0).sum()) == round(0.7 * w.numel())  # masks survive training


def test_amp_on_cpu_keeps_masks():
    recipe = R.Recipe(target=R.TargetSpec(ratio=0.5), finetune=R.Finetune(epochs=1, lr=0.05, amp=True))
    model, tl, vl = _setup()
    res = run(recipe, model, tl, vl)  # bfloat16 autocast on CPU
    assert res.sparsity == pytest.approx(0.5, abs=1e-3)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.gpu
def test_run_on_cuda_with_amp(tmp_path):
    recipe = R.Recipe(target=R.TargetSpec(ratio=0.5), schedule=R.Cubic(steps=2),
                      finetune=R.Finetune(epochs=2, lr=0.05, amp=True, checkpoint_every=2),
                      distill=R.Distill())
    model, tl, vl = _setup()
    res = run(recipe, model, tl, vl, device="cuda", checkpoint_dir=tmp_path)
    assert res.sparsity == pytest.approx(0.5, abs=1e-3)
    assert next(model.parameters()).is_cuda
