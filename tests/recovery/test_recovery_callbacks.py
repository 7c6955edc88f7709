"""The HF Trainer callback prunes on schedule inside a real (tiny) Trainer run; Lightning if
installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from prunekit.masks.apply import masked_modules
from prunekit.recover.callbacks import ScheduledPruner
from prunekit.recover.recipe import Cubic, Iterative


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class DS(torch.utils.data.Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 8, generator=g), torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def test_scheduled_pruner_trajectory():
    model = Tiny()
    p = ScheduledPruner(Iterative(steps=2), 0.5, finalize_at_end=False)
    assert p.setup(10) == {0: 0.25, 5: 0.5}
    seen = []
    for t in range(10):
        p.step(model, t)
        w = model.net[0].weight
        seen.append(int((w == 0).sum()))
    assert seen == [32] * 5 + [64] * 5


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="no transformers")
def test_hf_callback_hooks_with_trainer_state():
    """The callback's hooks driven as Trainer drives them (TrainerState/TrainerControl)."""
    from transformers import TrainerControl, TrainerState

    from prunekit.recover.callbacks import HFPruningCallback

    model = Tiny()
    cb = HFPruningCallback(Iterative(steps=2), amount=0.5, finalize_at_end=True)
    state, control = TrainerState(max_steps=6), TrainerControl()
    cb.on_train_begin(None, state, control, model=model)
    zeros = []
    for t in range(6):
        state.global_step = t
        cb.on_step_begin(None, state, control, model=model)
        zeros.append(int((model.net[0].weight == 0).sum()))
    cb.on_train_end(None, state, control, model=model)
    assert zeros == [32, 32, 32, 64, 64, 64] and not masked_modules(model)


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None,
                    reason="transformers.Trainer needs accelerate (not installed)")
def test_hf_trainer_callback(tmp_path):
    from transformers import Trainer, TrainingArguments

    from prunekit.recover.callbacks import HFPruningCallback

    torch.manual_seed(0)
    model = Tiny()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=8,
                             learning_rate=0.05, report_to=[], save_strategy="no",
                             logging_strategy="no", use_cpu=True, disable_tqdm=True)
    cb = HFPruningCallback(Cubic(steps=2, every=2), amount=0.75)
    Trainer(model=model, args=args, train_dataset=DS(), callbacks=[cb]).train()
    assert cb.pruner.plan == pytest.approx({0: 0.0, 2: 0.65625, 4: 0.75})
    assert not masked_modules(model)  # finalized at train end
    for lin in (model.net[0], model.net[2]):
        assert int((lin.weight == 0).sum()) == round(0.75 * lin.weight.numel())


@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="lightning not installed")
def test_lightning_callback():  # pragma: no cover - optional dependency
    import lightning.pytorch as pl

    from prunekit.recover.callbacks import LightningPruningCallback

    class Mod(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.m = Tiny()

        def training_step(self, batch, i):
            return self.m(batch["x"], batch["labels"])["loss"]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    mod = Mod()
    cb = LightningPruningCallback(Iterative(steps=2), amount=0.5)
    pl.Trainer(max_steps=6, callbacks=[cb], logger=False, enable_checkpointing=False,
               enable_progress_bar=False).fit(mod, torch.utils.data.DataLoader(DS(), batch_size=8))
    w = mod.m.net[0].weight
    assert int((w == 0).sum()) == w.numel() // 2
