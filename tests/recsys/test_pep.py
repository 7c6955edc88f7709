import copy

import pytest
import torch

from prunekit.recsys import (MF, PEPConfig, SparseEmbedding, TrainConfig, pep_search,
                             prune_embeddings)


def fast_pep(epochs: int = 40, retrain: int = 2) -> PEPConfig:
    search = TrainConfig(epochs=epochs, lr=1e-2, batch_size=128, weight_decay=1e-4, seed=1)
    return PEPConfig(s_init=-15.0, train=search, threshold_lr=0.3,
                     retrain=TrainConfig(epochs=retrain, lr=1e-2, batch_size=128, seed=2))


def test_search_from_scratch_reaches_target_sparsity(split):
    train, _ = split
    torch.manual_seed(0)
    model = MF(train.n_users, train.n_items, 8)
    before = copy.deepcopy(model.state_dict())
    found = pep_search(model, list(model.table_features()), 0.3, train, cfg=fast_pep())
    assert found.reached
    assert found.sparsity >= 0.3
    assert found.sparsity_per_epoch == sorted(found.sparsity_per_epoch) or \
        found.sparsity_per_epoch[-1] > found.sparsity_per_epoch[0]
    zeros = sum(int((~m).sum()) for m in found.masks.values())
    total = sum(m.numel() for m in found.masks.values())
    assert zeros / total == pytest.approx(found.sparsity)
    # all-zero bias tables are trained without thresholds and kept whole
    assert bool(found.masks["user_bias"].all()) and bool(found.masks["item_bias"].all())
    for k, v in model.state_dict().items():  # the user's model is untouched
        assert torch.equal(v, before[k])


@pytest.mark.slow
def test_search_stops_at_first_step_over_target(split):
    train, _ = split
    torch.manual_seed(0)
    model = MF(train.n_users, train.n_items, 8, bias=False)
    low = pep_search(model, ["user", "item"], 0.15, train, cfg=fast_pep())
    high = pep_search(model, ["user", "item"], 0.3, train, cfg=fast_pep())
    assert low.reached and high.reached
    assert low.step <= high.step
    assert low.sparsity < high.sparsity


def test_unreached_target_falls_back_to_exact_size(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8, bias=False)
    cfg = PEPConfig(train=TrainConfig(epochs=1, batch_size=256))
    found = pep_search(model, ["user", "item"], 0.9, train, cfg=cfg)
    assert not found.reached
    kept = sum(int(m.sum()) for m in found.masks.values())
    assert kept == round(0.1 * (train.n_users + train.n_items) * 8)


def test_retrain_rewinds_and_keeps_the_mask(split):
    train, _ = split
    torch.manual_seed(0)
    model = MF(train.n_users, train.n_items, 8)
    init = copy.deepcopy(model)
    rep = prune_embeddings(model, train, entries=0.3, method="pep", pep=fast_pep())
    assert rep.pep is not None and rep.pep.reached
    assert rep.removed == pytest.approx(rep.pep.sparsity)
    for name in ("user", "item"):
        mask = rep.pep.masks[name]
        table = model.get_submodule(name)
        assert isinstance(table, SparseEmbedding)
        assert torch.equal(table.to_dense() != 0, mask)  # retraining kept the pattern
        assert not torch.equal(table.to_dense(), init.get_submodule(name).weight * mask)

    # without retraining, the rewound tables hold the initial weights at the mask
    torch.manual_seed(0)
    fresh = MF(train.n_users, train.n_items, 8)
    cfg = fast_pep(retrain=0)
    rep = prune_embeddings(fresh, train, entries=0.3, method="pep", pep=cfg)
    w = init.item.weight.detach()
    assert torch.equal(fresh.item.to_dense(), w * rep.pep.masks["item"])
    assert torch.equal(fresh.mu, init.mu)


def test_bad_pep_config():
    with pytest.raises(ValueError, match="threshold_lr"):
        PEPConfig(threshold_lr=0.0)
    with pytest.raises(ValueError, match="granularity"):
        PEPConfig(granularity="row")
