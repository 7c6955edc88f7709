import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from prunekit.cli import app
from prunekit.recsys import DLRM, MF, NCF, export_tables, prune_embeddings
from prunekit.serialize import load, save

VARIANTS = [{"rows": 0.5}, {"rows": 0.5, "dims": 0.5}, {"dims": 0.5},
            {"entries": 0.8, "method": "magnitude"}, {"mixed": 0.8}]


def _build(kind, train):
    if kind == "dlrm":
        m = DLRM([train.n_users, train.n_items], dim=8)
        m.set_dense_counts(train.users, train.items)
        return m
    return (MF if kind == "mf" else NCF)(train.n_users, train.n_items, 8)


@pytest.mark.parametrize("kind", ["mf", "ncf", "dlrm"])
@pytest.mark.parametrize("kwargs", VARIANTS)
def test_save_load_gives_identical_scores(tmp_path, split, kind, kwargs):
    train, test = split
    model = _build(kind, train)
    prune_embeddings(model, train, **kwargs)
    model.eval()
    save(model, tmp_path / "m")
    back = load(tmp_path / "m")
    assert type(back.get_submodule(next(iter(model.table_features())))) is \
        type(model.get_submodule(next(iter(model.table_features()))))
    assert torch.equal(model.score(test.users, test.items), back.score(test.users, test.items))


def test_export_for_serving(tmp_path, split):
    train, _ = split
    model = NCF(train.n_users, train.n_items, 8)
    prune_embeddings(model, train, rows=0.5)
    export_tables(model, tmp_path)
    meta = json.loads((tmp_path / "embedding_tables.json").read_text())
    tensors = load_file(str(tmp_path / "embedding_tables.safetensors"))
    entry = {t["name"]: t for t in meta["tables"]}["gmf_item"]
    assert entry["layout"] == "remapped" and entry["num_embeddings"] == train.n_items
    assert entry["num_embeddings_post_pruning"] == 21 and entry["fallback_row"] == 20
    remap = tensors["gmf_item.remap"]
    assert torch.equal(remap, model.gmf_item.remap)
    minus = tensors["gmf_item.remap_pruned_minus_one"]
    assert int((minus == -1).sum()) == train.n_items - 20
    w = tensors["gmf_item.weight"]
    ids = torch.arange(train.n_items)
    assert torch.equal(w[remap.long()], model.gmf_item(ids))


def test_cli_end_to_end_and_bad_input(tmp_path, csv_file):
    runner = CliRunner()
    out = tmp_path / "rec"
    args = ["recsys", "--model", "ncf", "--data", str(csv_file), "--prune", "rows=0.5,dims=0.5",
            "--epochs", "1", "--finetune-epochs", "1", "--dim", "8", "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["removed"] == pytest.approx(0.75, abs=0.05)
    assert {"hr@10", "ndcg@10"} <= set(report["pruned_finetuned"])
    assert (out / "serving" / "embedding_tables.json").is_file()
    assert load(out / "model").gmf_user.weight.shape[1] == 4
    out2 = tmp_path / "mixed"
    res = runner.invoke(app, ["recsys", "--model", "mf", "--data", str(csv_file), "--prune",
                              "mixed=0.8", "--alpha", "0.5", "--distill", "0.5", "--epochs", "1",
                              "--finetune-epochs", "1", "--dim", "8", "-o", str(out2)])
    assert res.exit_code == 0, res.output
    assert json.loads((out2 / "report.json").read_text())["removed"] == pytest.approx(0.8, abs=0.02)
    for bad, msg in ((["--prune", "rows=1.5"], "ratio"), (["--model", "svd"], "--model"),
                     (["--data", str(tmp_path / "no.csv")], "no such"),
                     (["--distill", "2"], "--distill"), (["--alpha", "-1"], "--alpha")):
        res = runner.invoke(app, ["recsys", "-o", str(tmp_path / "x"), "--epochs", "0", *bad])
        assert res.exit_code == 2 and msg in res.output
        assert not (tmp_path / "x").exists()


def test_replace_module_history_is_checked(tmp_path, split):
    train, _ = split
    model = MF(train.n_users, train.n_items, 8)
    prune_embeddings(model, train, rows=0.5)
    save(model, tmp_path / "m")
    meta_path = tmp_path / "m" / "prunekit.json"
    meta = json.loads(meta_path.read_text())
    assert [op["op"] for op in meta["history"]] == ["replace_module"] * 4
    meta["history"][0]["spec"] = "torchvision:resnet18"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="replace_module needs a 'module:' spec"):
        load(tmp_path / "m")
