import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from prunekit.cli import app
from prunekit.recsys import (DLRM, MF, NCF, SHARING_METHODS, PQEmbedding, TrainConfig,
                             choose_pq, export_tables, kmeans, prune_embeddings, train_implicit)
from prunekit.recsys.shared import SharingContext, pq_bytes
from prunekit.recsys.transform import allocate_bits, column_importance, svd_basis
from prunekit.serialize import load, save


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(model, state):
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)


def test_lookup_is_the_codebook_reconstruction():
    torch.manual_seed(0)
    t = PQEmbedding(10, 6, subspaces=3, centroids=4, table="items")
    with torch.no_grad():
        t.codebooks.normal_()
    t.codes.copy_(torch.randint(0, 4, (10, 3), dtype=torch.uint8))
    ids = torch.tensor([[0, 9], [3, 3]])
    out = t(ids)
    assert out.shape == (2, 2, 6)
    for i in (0, 3, 9):
        expect = torch.cat([t.codebooks[m, int(t.codes[i, m])] for m in range(3)])
        assert torch.equal(t(torch.tensor([i]))[0], expect)
    assert torch.equal(t.to_dense()[ids], out.detach())
    assert t.code_bytes() == 10 * 3 * 2 // 8 + 1  # 60 bits -> 8 bytes
    assert t.stored_bytes() == t.code_bytes() + 4 * 6 * 4


def test_out_of_range_ids_name_the_table():
    t = PQEmbedding(5, 4, 2, 4, table="gmf_item")
    with pytest.raises(ValueError, match="gmf_item"):
        t(torch.tensor([5]))


@pytest.mark.parametrize("name", SHARING_METHODS.names())
def test_every_sharing_method_is_exact_when_centroids_cover_the_distinct_rows(name):
    torch.manual_seed(0)
    base = torch.randn(5, 4)
    weight = base[torch.randint(0, 5, (40,))]  # 5 distinct rows, hence <= 5 per subspace
    table = SHARING_METHODS.get(name)(SharingContext(weight, "t", 2, 8, None, seed=3))
    assert torch.equal(table(torch.arange(40)), weight)


def test_kmeans_is_deterministic_and_reduces_error():
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))
    c1, a1 = kmeans(x, 8, seed=5)
    c2, a2 = kmeans(x, 8, seed=5)
    assert torch.equal(c1, c2) and torch.equal(a1, a2)
    err = ((x.double() - c1[a1]) ** 2).sum()
    assert err < ((x.double() - x.double().mean(0)) ** 2).sum() / 3


def test_choose_pq_meets_the_byte_target_with_one_bit_level():
    shapes = {"user": (943, 32), "item": (1682, 32), "user_bias": (943, 1),
              "item_bias": (1682, 1)}
    pick = choose_pq(shapes, 0.9)
    stored = sum(pq_bytes(*shapes[n], m, k) for n, (m, k) in pick.items())
    dense = sum(n * d * 4 for n, d in shapes.values())
    assert stored <= 0.1 * dense
    assert pick == {"user": (32, 8), "item": (32, 8), "user_bias": (1, 8), "item_bias": (1, 8)}
    with pytest.raises(ValueError, match="shared"):
        choose_pq({"t": (4, 2)}, 0.99)


@pytest.mark.parametrize("kind", ["mf", "ncf", "dlrm"])
def test_prune_shared_reports_bytes_and_saves_loads(tmp_path, split, kind):
    train, test = split
    if kind == "dlrm":
        model = DLRM([train.n_users, train.n_items], dim=8)
        model.set_dense_counts(train.users, train.items)
    else:
        model = (MF if kind == "mf" else NCF)(train.n_users, train.n_items, 8)
    rep = prune_embeddings(model, train, shared=0.75)
    assert rep.removed >= 0.75 and rep.removed_params > rep.removed
    assert rep.bytes_after == sum(t.stored_bytes() for t in
                                  {id(m): m for m in model.modules()
                                   if isinstance(m, PQEmbedding)}.values())
    assert all(t.layout == "PQEmbedding" for t in rep.tables)
    model.eval()
    save(model, tmp_path / "m")
    back = load(tmp_path / "m")
    assert torch.equal(model.score(test.users, test.items), back.score(test.users, test.items))


def test_explicit_subspaces_after_dims_and_codebooks_train(split):
    train, _ = split
    torch.manual_seed(0)
    model = NCF(train.n_users, train.n_items, 8)
    rep = prune_embeddings(model, train, dims=0.5, subspaces=2, centroids=4)
    assert model.gmf_user.embedding_dim == 4 and model.gmf_user.subspaces == 2
    assert rep.tables[0].bytes_after == pq_bytes(train.n_users, 4, 2, 4)
    codes, books = model.mlp_item.codes.clone(), model.mlp_item.codebooks.detach().clone()
    train_implicit(model, train, TrainConfig(epochs=1, lr=1e-2, batch_size=256))
    assert torch.equal(model.mlp_item.codes, codes)
    assert not torch.equal(model.mlp_item.codebooks.detach(), books)


def test_mf_bias_tables_take_one_subspace(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    prune_embeddings(model, train, subspaces=4, centroids=16)
    assert (model.user.subspaces, model.user_bias.subspaces) == (4, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"shared": 1.0}, "shared"), ({"shared": -0.1}, "shared"),
    ({"subspaces": 3, "centroids": 4}, "subspaces"),
    ({"subspaces": 2, "centroids": 0}, "centroids"),
    ({"subspaces": 2, "centroids": [4, 4, 4]}, "centroids"),
    ({"transform": "svd"}, "shared="), ({"shared": 0.5, "transform": "pca"}, "transform"),
    ({"subspaces": 2}, "centroids"), ({"subspaces": 0, "centroids": 4}, "subspaces"),
    ({"shared": 0.5, "subspaces": 2, "centroids": 4}, "not both"),
    ({"shared": 0.5, "rows": 0.5}, "dims= only"), ({"shared": 0.5, "sharing": "x"}, "sharing"),
    ({"shared": 0.999}, "shared"),
])
def test_bad_input_names_the_argument_and_leaves_the_model(split, kwargs, match):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    state = _state(model)
    with pytest.raises(ValueError, match=match):
        prune_embeddings(model, train, **kwargs)
    assert _same(model, state) and type(model.user) is torch.nn.Embedding


def test_sharing_an_already_pruned_table_is_refused(split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    prune_embeddings(model, train, rows=0.5)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="'user' is already pruned"):
        prune_embeddings(model, train, shared=0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_export_pq_layout(tmp_path, split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    prune_embeddings(model, train, subspaces=4, centroids=16)
    export_tables(model, tmp_path)
    meta = {t["name"]: t for t in
            json.loads((tmp_path / "embedding_tables.json").read_text())["tables"]}
    tensors = load_file(str(tmp_path / "embedding_tables.safetensors"))
    e = meta["item"]
    assert (e["layout"], e["subspaces"], e["centroids"], e["code_bits"]) == ("pq", 4, 16, 4)
    assert e["packed_code_bytes"] == train.n_items * 4 * 4 // 8
    codes, books = tensors["item.codes"].long(), tensors["item.codebooks"]
    rebuilt = books[torch.arange(4), codes].reshape(train.n_items, 8)
    assert torch.equal(rebuilt, model.item(torch.arange(train.n_items)))


def test_cli_shared(tmp_path, csv_file):
    out = tmp_path / "rec"
    res = CliRunner().invoke(app, ["recsys", "--model", "mf", "--data", str(csv_file), "--prune",
                                   "shared=0.8", "--epochs", "1", "--dim", "8", "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["removed"] >= 0.8 and report["tables"][0]["layout"] == "PQEmbedding"
    bad = CliRunner().invoke(app, ["recsys", "--model", "mf", "--data", str(csv_file),
                                   "--prune", "shared=0.8,rows=0.5", "--epochs", "1", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "dims= only" in bad.output
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(app, ["recsys", "--model", "ncf", "--data", str(csv_file), "--prune",
                                   "shared=0.8", "--transform", "svd", "--epochs", "1", "--dim",
                                   "8", "-o", str(tmp_path / "svd")])
    assert res.exit_code == 0, res.output
    assert isinstance(load(tmp_path / "svd" / "model").gmf_user.centroids, list)
    bad = CliRunner().invoke(app, ["recsys", "--data", str(csv_file), "--prune", "dims=0.5",
                                   "--transform", "svd", "-o", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "--transform" in bad.output


def test_allocate_bits_is_greedy_reverse_water_filling():
    assert allocate_bits(torch.tensor([16.0, 4.0, 1.0, 1.0]), 4) == [3, 1, 0, 0]
    assert allocate_bits(torch.ones(3), 6) == [2, 2, 2]
    assert allocate_bits(torch.tensor([1e9, 1.0]), 20) == [8, 8]


@pytest.mark.parametrize("cls", [MF, NCF])
def test_svd_basis_keeps_scores_and_orders_columns(split, cls):
    train, test = split
    torch.manual_seed(0)
    model = cls(train.n_users, train.n_items, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    ref = copy.deepcopy(model)
    svd_basis(model)
    assert torch.allclose(model.score(test.users, test.items), ref.score(test.users, test.items),
                          atol=1e-4)
    imp = column_importance(model)
    first = next(iter(model.table_features()))
    assert torch.all(imp[first][:-1] >= imp[first][1:] - 1e-9)


def test_transform_svd_allocates_bits_and_round_trips(tmp_path, split):
    train, test = split
    torch.manual_seed(0)
    model = NCF(train.n_users, train.n_items, 8)
    with torch.no_grad():
        model.gmf_user.weight.mul_(torch.linspace(3, 0.1, 8))  # unequal column energy
    rep = prune_embeddings(model, train, shared=0.8, transform="svd")
    assert rep.removed >= 0.8
    ks = model.gmf_user.centroids
    assert isinstance(ks, list) and len(ks) == 8 and max(ks) > min(ks)
    assert model.gmf_user.stored_values() == sum(ks)
    model.eval()
    save(model, tmp_path / "m")
    back = load(tmp_path / "m")
    assert torch.equal(model.score(test.users, test.items), back.score(test.users, test.items))
    export_tables(model, tmp_path / "serving")
    meta = json.loads((tmp_path / "serving" / "embedding_tables.json").read_text())
    entry = {t["name"]: t for t in meta["tables"]}["gmf_user"]
    assert entry["centroids"] == ks and entry["code_bits"] == [k.bit_length() - 1 for k in ks]


def test_transform_svd_refuses_groups_it_cannot_rotate(split):
    train, _ = split
    model = DLRM([train.n_users, train.n_items], dim=8)
    model.set_dense_counts(train.users, train.items)
    state = _state(model)
    with pytest.raises(ValueError, match="tables.0.weight"):
        prune_embeddings(model, train, shared=0.8, transform="svd")
    assert _same(model, state) and type(model.tables[0]) is torch.nn.EmbeddingBag
