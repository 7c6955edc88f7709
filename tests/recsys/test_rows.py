import copy

import pytest
import torch

from prunekit.recsys import DLRM, MF, NCF, ROW_CRITERIA, RemappedEmbedding, prune_embeddings
from prunekit.recsys.train import TrainConfig, train_implicit


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("by", ROW_CRITERIA.names())
def test_remapped_lookup_matches_dense_and_fallback(split, by):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    dense = copy.deepcopy(model)
    rep = prune_embeddings(model, train, rows=0.5, by=by)
    assert rep.removed == pytest.approx(0.5, abs=0.05)
    table = model.item
    assert isinstance(table, RemappedEmbedding) and table.weight.shape[0] == 21  # 20 kept + 1
    ids = torch.arange(train.n_items)
    kept = table.remap.long() < table.weight.shape[0] - 1
    got = table(ids)
    assert torch.equal(got[kept], dense.item(ids)[kept])
    fallback = dense.item.weight[~kept].mean(0)
    assert torch.allclose(got[~kept], fallback.expand_as(got[~kept]))


def test_frequency_keeps_frequent_ids(split):
    train, _ = split
    model = NCF(train.n_users, train.n_items, 8, mlp=(8,))
    prune_embeddings(model, train, rows=0.75, by="frequency")
    counts = train.counts("items")
    kept = model.gmf_item.remap.long() < model.gmf_item.weight.shape[0] - 1
    assert counts[kept].min() >= counts[~kept].max()


def test_rows_and_dims_together_and_training_continues(split):
    train, _ = split
    model = NCF(train.n_users, train.n_items, 8, mlp=(8,))
    rep = prune_embeddings(model, train, rows=0.5, dims=0.5)
    assert rep.removed == pytest.approx(0.75, abs=0.05)
    assert model.gmf_user.weight.shape[1] == 4 and model.mlp[0].in_features == 8
    train_implicit(model, train, TrainConfig(epochs=1, batch_size=256))


def test_shared_table_remaps_once_with_both_features(split):
    train, _ = split
    n = max(train.n_users, train.n_items)
    model = DLRM([n, n], dim=4, feature_tables=[0, 0])  # one table serves users and items
    from prunekit.recsys.data import Interactions
    log = Interactions(train.users, train.items, train.ratings, train.times, n, n)
    rep = prune_embeddings(model, log, rows=0.5)
    assert [t.name for t in rep.tables] == ["tables.0"]
    counts = log.counts("users") + log.counts("items")
    kept = model.tables[0].remap.long() < model.tables[0].weight.shape[0] - 1
    assert counts[kept].min() >= counts[~kept].max()
    assert model.tables[0].mode == "sum"


@pytest.mark.parametrize("kwargs, match", [
    ({"rows": 1.0}, "rows must be a ratio"), ({"rows": -0.1}, "rows must be a ratio"),
    ({"dims": 1.5}, "dims must be"), ({}, "at least one"), ({"rows": 0.5, "by": "x"}, "by must"),
    ({"entries": 0.5, "mixed": 0.5}, "pick one"), ({"rows": 0.5, "entries": 0.5}, "rows="),
])
def test_bad_arguments_leave_model_untouched(split, kwargs, match):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    before = _state(model)
    with pytest.raises(ValueError, match=match):
        prune_embeddings(model, train, **kwargs)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model.user, torch.nn.Embedding)


def test_empty_log_and_wrong_sizes(split):
    train, _ = split
    model = MF(train.n_users + 3, train.n_items, 8)
    with pytest.raises(ValueError, match="table 'user' has 33 rows"):
        prune_embeddings(model, train, rows=0.5)
    with pytest.raises(ValueError, match="empty"):
        prune_embeddings(model, train.subset(torch.tensor([], dtype=torch.long)), rows=0.5)


def test_ids_outside_the_table_are_named(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    with pytest.raises(ValueError, match="table 'item'"):
        model(torch.tensor([0]), torch.tensor([train.n_items]))
    prune_embeddings(model, train, rows=0.5)
    with pytest.raises(ValueError, match="table 'user'"):
        model(torch.tensor([-1]), torch.tensor([0]))
