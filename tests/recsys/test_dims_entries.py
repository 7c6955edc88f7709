import copy

import pytest
import torch

from prunekit.recsys import DLRM, MF, NCF, PEPConfig, SparseEmbedding, TrainConfig, prune_embeddings
from prunekit.recsys.dims import plan_dims, verify_dims, zero_dims, apply_dims


def _models(train):
    dlrm = DLRM([train.n_users, train.n_items], dim=8)
    dlrm.set_dense_counts(train.users, train.items)
    return [MF(train.n_users, train.n_items, 8), NCF(train.n_users, train.n_items, 8, mlp=(8, 4)),
            dlrm]


def test_dims_removed_equals_dims_zeroed_for_every_model(split):
    train, _ = split
    for model in _models(train):
        plan = plan_dims(model, 0.5)
        masked = zero_dims(model, plan)
        pruned = copy.deepcopy(model)
        apply_dims(pruned, plan)
        assert verify_dims(masked, pruned, train.users, train.items) < 1e-5
        rep = prune_embeddings(model, train, dims=0.5)
        assert rep.dims_max_diff < 1e-5
        for t in rep.tables:
            assert t.dim_after in (4, 1)  # MF bias tables keep their single column


def test_dot_product_tables_lose_the_same_columns(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    with torch.no_grad():
        model.user.weight[:, :3] *= 100  # columns 0..2 dominate the user side only
    dense = copy.deepcopy(model)
    prune_embeddings(model, train, dims=0.625)
    assert model.user.weight.shape[1] == model.item.weight.shape[1] == 3
    assert torch.equal(model.item.weight, dense.item.weight[:, :3])


def test_a_wrong_coupling_is_caught(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8, bias=False)
    plan = plan_dims(model, 0.5)
    masked = zero_dims(model, plan)
    bad = [([("user.weight", 1, 0)], plan[0][1])]  # items keep every column
    pruned = copy.deepcopy(model)
    apply_dims(pruned, bad)
    with torch.no_grad():
        pruned.item.weight.data = pruned.item.weight[:, plan[0][1]].flip(1).contiguous()
    with pytest.raises(ValueError, match="differs"):
        verify_dims(masked, pruned, train.users, train.items)


@pytest.mark.parametrize("method", ["magnitude", "pep"])
def test_entries_exact_sparsity_and_csr_lookup(split, method):
    train, _ = split
    model = NCF(train.n_users, train.n_items, 8, mlp=(8,))
    pep = PEPConfig(train=TrainConfig(epochs=1, batch_size=256))
    rep = prune_embeddings(model, train, entries=0.9, method=method, pep=pep)
    assert rep.removed == pytest.approx(0.9, abs=0.01)
    table = model.gmf_item
    assert isinstance(table, SparseEmbedding)
    ids = torch.arange(train.n_items)
    assert torch.equal(table(ids), table.to_dense())
    assert int((table.to_dense() != 0).sum()) == table.values.numel()


def test_mixed_dims_follow_frequency_and_budget(split):
    train, _ = split
    counts = train.counts("items")
    model = MF(train.n_users, train.n_items, 16)
    rep = prune_embeddings(model, train, mixed=0.8, alpha=0.5)
    assert 0.78 <= rep.removed <= 0.81
    widths = (model.item.to_dense() != 0).sum(1)
    order = torch.argsort(counts.double(), descending=True, stable=True)
    assert bool((widths[order][:-1] >= widths[order][1:]).all())
    assert int(widths[order[0]]) > int(widths[order[-1]])


def test_dims_refused_on_csr_tables(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    prune_embeddings(model, train, mixed=0.5)
    with pytest.raises(ValueError, match="prune dims before entries"):
        prune_embeddings(model, train, dims=0.5)


def test_per_group_widths_keep_the_strongest_columns_of_each_group(split):
    train, _ = split
    model = NCF(train.n_users, train.n_items, 8, mlp=(8, 4))
    with torch.no_grad():
        model.gmf_user.weight[:, 5] *= 50   # GMF group: column 5 dominates
        model.mlp_item.weight[:, 2] *= 50   # MLP item group: column 2 dominates
    plan = plan_dims(model, widths=[1, 3, 1])
    kept = [keep.tolist() for _, keep in plan]
    assert kept[0] == [5] and len(kept[1]) == 3 and kept[2] == [2]
    masked, pruned = zero_dims(model, plan), copy.deepcopy(model)
    apply_dims(pruned, plan)
    assert pruned.gmf_user.weight.shape[1] == pruned.predict.weight.shape[1] - 4 == 1
    assert pruned.mlp_user.weight.shape[1] == 3 and pruned.mlp_item.weight.shape[1] == 1
    assert pruned.mlp[0].weight.shape[1] == 4
    assert verify_dims(masked, pruned, train.users, train.items) < 1e-5


def test_per_group_widths_bad_input_names_the_argument(split):
    train, _ = split
    model = NCF(train.n_users, train.n_items, 8, mlp=(8, 4))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="widths has 2 entries"):
        plan_dims(model, widths=[2, 2])
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        plan_dims(model, widths=[2, 9, 2])
    with pytest.raises(ValueError, match="exactly one of ratio= and widths="):
        plan_dims(model, 0.5, widths=[2, 2, 2])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
