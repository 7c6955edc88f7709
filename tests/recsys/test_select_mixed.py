import copy

import pytest
import torch

from prunekit.recsys import MF, NCF, SparseEmbedding, TrainConfig, train_implicit
from prunekit.recsys.mixed import EntryMasks, frequency_widths, mixed_masks, prefix_masks
from prunekit.recsys.prune import install_table
from prunekit.recsys.select import BestOnValidation, fit_validated, validation_split
from prunekit.recsys.train import implicit_loss


def test_validation_split_holds_out_the_latest_training_item(split):
    train, test = split
    fit, val = validation_split(train)
    assert len(fit) + len(val) == len(train)
    for u, i in zip(val.users.tolist(), val.items.tolist(), strict=True):
        rows = train.users == u
        latest = train.times[rows].max()
        assert int(train.times[rows][train.items[rows] == i].max()) == int(latest)


def test_best_on_validation_restores_the_best_epoch(split):
    train, _ = split
    fit, val = validation_split(train)
    torch.manual_seed(0)
    model = MF(train.n_users, train.n_items, 8)
    hook = BestOnValidation(model, fit, val, patience=2)
    states = []

    def on_epoch(epoch):
        stop = hook(epoch)
        states.append(copy.deepcopy(model.state_dict()))
        return stop

    train_implicit(model, fit, TrainConfig(epochs=6, lr=5e-2, batch_size=64), on_epoch=on_epoch)
    res = hook.restore()
    assert res.best == max(res.curve)
    assert res.best_epoch == res.curve.index(res.best) + 1
    best = states[res.best_epoch - 1]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    assert len(res.curve) <= 6 and len(res.curve) - res.best_epoch <= 2


def test_min_epoch_excludes_early_epochs(split):
    train, _ = split
    fit, val = validation_split(train)
    model = MF(train.n_users, train.n_items, 8)
    res = fit_validated(model, fit, val, TrainConfig(epochs=4, lr=5e-2, batch_size=64),
                        patience=1, min_epoch=3)
    assert res.best_epoch >= 3 and len(res.curve) >= 3
    with pytest.raises(ValueError, match="patience"):
        BestOnValidation(model, fit, val, patience=0)


def test_distillation_pulls_toward_the_teacher(split):
    train, _ = split
    torch.manual_seed(0)
    teacher = MF(train.n_users, train.n_items, 8)
    student = MF(train.n_users, train.n_items, 8)
    users, items = train.users[:64], train.items[:64]
    neg = torch.randint(0, train.n_items, (64, 2))
    plain = implicit_loss(student, users, items, neg)
    assert torch.equal(implicit_loss(student, users, items, neg, teacher, 0.0), plain)
    # a student identical to a confident teacher: the pure-distillation loss is at its minimum
    with torch.no_grad():
        teacher.user.weight.mul_(10)
    clone = copy.deepcopy(teacher)
    kd_self = implicit_loss(clone, users, items, neg, teacher, 1.0)
    kd_other = implicit_loss(student, users, items, neg, teacher, 1.0)
    assert kd_self < kd_other
    with pytest.raises(ValueError, match="distill"):
        TrainConfig(distill=1.5)


def test_frequency_widths_meet_the_budget_and_favour_frequent_ids():
    counts = {"a": torch.tensor([100, 10, 1, 0]), "b": torch.tensor([50, 5])}
    dims = {"a": 8, "b": 8}
    w = frequency_widths(counts, dims, budget=16, alpha=0.5)
    assert sum(int(x.sum()) for x in w.values()) <= 16
    assert sum(int(x.sum()) for x in w.values()) >= 12  # the budget is nearly used
    assert w["a"].tolist() == sorted(w["a"].tolist(), reverse=True)
    uniform = frequency_widths(counts, dims, budget=12, alpha=0.0)
    assert all(v.unique().numel() == 1 for v in uniform.values())
    with pytest.raises(ValueError, match="alpha"):
        frequency_widths(counts, dims, 4, -1.0)


def test_prefix_masks_follow_the_column_order():
    masks = prefix_masks({"t": torch.tensor([2, 0, 4])}, {"t": 4}, {"t": torch.tensor([3, 1, 0, 2])})
    assert masks["t"].tolist() == [[False, True, False, True], [False] * 4, [True] * 4]


@pytest.mark.parametrize("cls", [MF, NCF])
def test_mixed_masks_size_and_training_keeps_the_pattern(tmp_path, split, cls):
    train, test = split
    torch.manual_seed(0)
    model = cls(train.n_users, train.n_items, 8)
    names = list(model.table_features())
    counts = {n: sum(train.counts(f) for f in model.table_features()[n]) for n in names}
    before = copy.deepcopy(model.state_dict())
    masks = mixed_masks(model, counts, 0.8, alpha=0.5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    total = sum(model.get_submodule(n).weight.numel() for n in names)
    kept = sum(int(m.sum()) for m in masks.values())
    assert 0.17 <= kept / total <= 0.2
    if cls is MF:  # bias tables are kept whole
        assert bool(masks["user_bias"].all()) and bool(masks["item_bias"].all())
        # user and item tables share one column order, so prefixes nest across the dot product
        order_u = masks["user"].sum(0).argsort(descending=True, stable=True)
        order_i = masks["item"].sum(0).argsort(descending=True, stable=True)
        wu, wi = masks["user"].sum(0), masks["item"].sum(0)
        assert torch.equal(wu[order_u].sort(descending=True).values, wu[order_u])
        assert torch.equal(wi[order_i].sort(descending=True).values, wi[order_i])
    hook = EntryMasks(model, masks)
    train_implicit(model, train, TrainConfig(epochs=1, batch_size=64), on_step=hook,
                   teacher=copy.deepcopy(model))
    tables = hook.finish()
    for n, t in tables.items():
        assert isinstance(t, SparseEmbedding)
        assert torch.equal(t.to_dense() != 0, masks[n])
    ref = model(test.users, test.items)
    for n, t in tables.items():
        install_table(model, [n], t)
    assert torch.allclose(model(test.users, test.items), ref)
    with pytest.raises(ValueError, match="mask of"):
        EntryMasks(cls(train.n_users, train.n_items, 8), {names[0]: torch.ones(2, 2).bool()})


def test_validated_training_selects_and_keeps_masked_weights(split, monkeypatch):
    train, _ = split
    fit, val = validation_split(train)
    torch.manual_seed(0)
    model = MF(train.n_users, train.n_items, 8)
    counts = {n: sum(fit.counts(f) for f in model.table_features()[n])
              for n in model.table_features()}
    masks = mixed_masks(model, counts, 0.7, alpha=0.5)
    hook = EntryMasks(model, masks)
    seen = []
    orig = BestOnValidation.score

    def spy(self):
        seen.append(all(bool((self.model.get_submodule(n).weight[~m] == 0).all())
                        for n, m in masks.items()))
        return orig(self)

    monkeypatch.setattr(BestOnValidation, "score", spy)
    fit_validated(model, fit, val, TrainConfig(epochs=3, lr=5e-2, batch_size=64), patience=3,
                  on_step=hook)
    assert seen and all(seen)  # every validation saw exactly the pruned structure
    assert all(bool((model.get_submodule(n).weight[~m] == 0).all()) for n, m in masks.items())


def test_extra_distillation_items_reach_only_the_distillation_term(split):
    train, _ = split
    torch.manual_seed(0)
    teacher = MF(train.n_users, train.n_items, 8)
    student = MF(train.n_users, train.n_items, 8)
    users, items = train.users[:16], train.items[:16]
    neg = torch.randint(0, train.n_items, (16, 2))
    used = set(items.tolist()) | set(neg.reshape(-1).tolist())
    unseen = torch.tensor([i for i in range(train.n_items) if i not in used][:3])
    extra = unseen.repeat(16, 1)
    # without distillation the extra items are ignored
    assert torch.equal(implicit_loss(student, users, items, neg, extra=extra),
                       implicit_loss(student, users, items, neg))
    loss = implicit_loss(student, users, items, neg, teacher, 0.5, extra=extra)
    assert not torch.isclose(loss, implicit_loss(student, users, items, neg, teacher, 0.5))
    loss.backward()
    grad = student.item.weight.grad
    assert grad[unseen].abs().sum() > 0           # extra items learn the teacher's scores
    others = [i for i in range(train.n_items) if i not in used and i not in unseen.tolist()]
    assert grad[others].abs().sum() == 0
    with pytest.raises(ValueError, match="distill_items"):
        TrainConfig(distill_items=-1)


def test_training_with_extra_distillation_items_runs_and_lowers_the_loss(split):
    train, _ = split
    torch.manual_seed(0)
    teacher = MF(train.n_users, train.n_items, 8)
    train_implicit(teacher, train, TrainConfig(epochs=3, lr=2e-2, batch_size=128))
    student = MF(train.n_users, train.n_items, 4)
    hist = train_implicit(student, train, TrainConfig(epochs=4, lr=2e-2, batch_size=128,
                                                      distill=0.5, distill_items=8),
                          teacher=teacher)
    assert hist[-1] < hist[0]
