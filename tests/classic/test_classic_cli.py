"""``prunekit classic``: refuses pickles without --trust, writes the pruned model atomically."""

import joblib
import numpy as np
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from prunekit.cli import app

runner = CliRunner()


def _files(tmp_path, cancer):
    Xt, Xv, yt, yv = cancer
    model = tmp_path / "model.joblib"
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(Xt, yt), model)
    val = tmp_path / "val.npz"
    np.savez(val, X=Xv, y=yv)
    return model, val


def test_refuses_without_trust(tmp_path, cancer):
    model, val = _files(tmp_path, cancer)
    out = tmp_path / "small.joblib"
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "-o", str(out)])
    assert r.exit_code == 2
    assert "--trust" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output and not out.exists()


def test_prunes_with_trust(tmp_path, cancer):
    model, val = _files(tmp_path, cancer)
    out, rep = tmp_path / "small.joblib", tmp_path / "report.json"
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "-o", str(out), "--trust",
                            "--max-drop", "0.01", "--no-measure", "--report", str(rep)])
    assert r.exit_code == 0, r.output
    small = joblib.load(out)
    assert type(small) is DecisionTreeClassifier and "val accuracy" in r.output
    assert rep.exists() and small.get_n_leaves() <= joblib.load(model).get_n_leaves()


def test_bad_val_file_and_unsupported_model(tmp_path, cancer):
    model, _ = _files(tmp_path, cancer)
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((3, 2)))
    r = runner.invoke(app, ["classic", str(model), "--val", str(bad), "-o",
                            str(tmp_path / "o.joblib"), "--trust"])
    assert r.exit_code == 2 and "'X' and 'y'" in r.stderr
    Xt, Xv, yt, yv = cancer
    other = tmp_path / "other.joblib"
    joblib.dump({"not": "a model"}, other)
    np.savez(tmp_path / "v.npz", X=Xv, y=yv)
    r = runner.invoke(app, ["classic", str(other), "--val", str(tmp_path / "v.npz"), "-o",
                            str(tmp_path / "o.joblib"), "--trust"])
    assert r.exit_code == 2 and "not supported" in r.stderr


def test_training_rows_from_a_file(tmp_path, cancer):
    from sklearn.ensemble import RandomForestClassifier

    Xt, Xv, yt, yv = cancer
    model, val, train = tmp_path / "rf.joblib", tmp_path / "val.npz", tmp_path / "train.npz"
    joblib.dump(RandomForestClassifier(30, random_state=0).fit(Xt, yt), model)
    np.savez(val, X=Xv, y=yv)
    np.savez(train, X=Xt, y=yt)
    out = tmp_path / "small.joblib"
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "--train", str(train),
                            "-o", str(out), "--trust", "--no-measure"])
    assert r.exit_code == 0, r.output
    assert "out-of-bag" in r.output and joblib.load(out).n_estimators <= 30
    np.savez(train, X=Xt[:10], y=yt[:10])
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "--train", str(train),
                            "-o", str(tmp_path / "o.joblib"), "--trust", "--no-measure"])
    assert r.exit_code == 2 and "X_train has 10 rows" in r.stderr


def test_boosting_tree_selection_from_the_command_line(tmp_path, cancer):
    from sklearn.ensemble import GradientBoostingClassifier

    Xt, Xv, yt, yv = cancer
    model, val, train = tmp_path / "gb.joblib", tmp_path / "val.npz", tmp_path / "train.npz"
    joblib.dump(GradientBoostingClassifier(n_estimators=20, random_state=0).fit(Xt, yt), model)
    np.savez(val, X=Xv, y=yv)
    np.savez(train, X=Xt, y=yt)
    out = tmp_path / "small.joblib"
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "--train", str(train),
                            "--refine-boosting", "--max-drop", "0.02", "-o", str(out),
                            "--trust", "--no-measure"])
    assert r.exit_code == 0, r.output
    assert "L1 fit on leaf indicators" in r.output
    assert type(joblib.load(out)) is GradientBoostingClassifier


def test_shrink_from_the_command_line(tmp_path, cancer):
    model, val = _files(tmp_path, cancer)
    out = tmp_path / "small.joblib"
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "-o", str(out), "--trust",
                            "--no-measure", "--shrink", "2"])
    assert r.exit_code == 0, r.output
    assert "size asked for: >= 2x smaller" in r.output
    assert model.stat().st_size / out.stat().st_size > 1.5  # joblib adds its own framing
    r = runner.invoke(app, ["classic", str(model), "--val", str(val), "-o",
                            str(tmp_path / "o.joblib"), "--trust", "--shrink", "0.5"])
    assert r.exit_code == 2 and "shrink" in r.stderr and "Traceback" not in r.output
