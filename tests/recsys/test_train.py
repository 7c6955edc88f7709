import pytest
import torch

from prunekit.recover.recipe import Cubic, Iterative
from prunekit.recsys import (DLRM, ENTRY_METHODS, MF, GradualEntryMasks, SparseEmbedding,
                             TrainConfig, prune_embeddings, rmse, train_explicit, train_implicit)
from prunekit.recsys.prune import install_table
from prunekit.serialize import load, save


def test_explicit_training_lowers_rmse(split):
    train, _ = split
    torch.manual_seed(0)
    model = MF(train.n_users, train.n_items, 8)
    before = rmse(model, train)
    hist = train_explicit(model, train, TrainConfig(epochs=15, lr=0.05, batch_size=128))
    assert hist[-1] < hist[0] and rmse(model, train) < before


def test_dlrm_implicit_training_and_pruning(split):
    train, _ = split
    model = DLRM([train.n_users, train.n_items], dim=8)
    model.set_dense_counts(train.users, train.items)
    hist = train_implicit(model, train, TrainConfig(epochs=4, lr=2e-2, batch_size=512))
    assert hist[-1] < hist[0]
    rep = prune_embeddings(model, train, rows=0.5, dims=0.5)
    assert rep.removed == pytest.approx(0.75, abs=0.05)


@pytest.mark.parametrize("schedule", [Cubic(steps=3), Iterative(steps=2)])
def test_gradual_entry_masks_reach_the_target(tmp_path, split, schedule):
    train, test = split
    model = MF(train.n_users, train.n_items, 8)
    cfg = TrainConfig(epochs=2, batch_size=64)
    steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    names = list(model.table_features())
    masks = GradualEntryMasks(model, names, 0.8, schedule, steps)
    train_implicit(model, train, cfg, on_step=masks)
    for name, table in masks.finish().items():
        install_table(model, [name], table)
    total = sum(model.get_submodule(n).values.numel() for n in names)
    dense = sum(model.get_submodule(n).num_embeddings * model.get_submodule(n).embedding_dim
                for n in names)
    assert total / dense == pytest.approx(0.2, abs=0.01)
    assert all(isinstance(model.get_submodule(n), SparseEmbedding) for n in names)
    save(model.eval(), tmp_path / "m")
    assert torch.equal(load(tmp_path / "m")(test.users, test.items), model(test.users, test.items))


def test_entry_methods_registry_contract(split):
    train, _ = split
    for method in ENTRY_METHODS.names():
        model = MF(train.n_users, train.n_items, 8)
        rep = prune_embeddings(model, train, entries=0.7, method=method)
        assert rep.removed == pytest.approx(0.7, abs=0.01), method
    with pytest.raises(ValueError, match="already registered"):
        ENTRY_METHODS.register("pep", lambda *a, **k: None)
