"""Bad input: clear ValueErrors naming the problem; the estimator is left untouched."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from prunekit.classic import ClassicConfig, prune, register_pruner, supported


def test_unfitted_estimator(cancer):
    _, Xv, _, yv = cancer
    with pytest.raises(ValueError, match="RandomForestClassifier is not fitted"):
        prune(RandomForestClassifier(), Xv, yv)


def test_unsupported_type_lists_supported(cancer):
    Xt, Xv, yt, yv = cancer
    lr = LogisticRegression(max_iter=50).fit(Xt, yt)
    with pytest.raises(ValueError, match="LogisticRegression is not supported") as exc:
        prune(lr, Xv, yv)
    for name in supported():
        assert name in str(exc.value)


def test_unseen_classes(digits, fast, untouched):
    Xt, Xv, yt, yv = digits
    keep = yt < 5
    tree = DecisionTreeClassifier(random_state=0).fit(Xt[keep], yt[keep])
    before = untouched(tree)
    with pytest.raises(ValueError, match=r"classes \[5, 6, 7, 8, 9\].*never saw"):
        prune(tree, Xv, yv, config=fast)
    assert untouched(tree) == before


@pytest.mark.parametrize("X_mut,y_mut,match", [
    (lambda X: X[:, :3], lambda y: y, "features"),
    (lambda X: X, lambda y: y[:-1], "y_val"),
    (lambda X: np.where(X > 5, np.nan, X), lambda y: y, "finite"),
    (lambda X: X[:0], lambda y: y[:0], "non-empty"),
])
def test_bad_validation_data(cancer, fast, X_mut, y_mut, match):
    Xt, Xv, yt, yv = cancer
    tree = DecisionTreeClassifier(random_state=0).fit(Xt, yt)
    with pytest.raises(ValueError, match=match):
        prune(tree, X_mut(Xv), y_mut(yv), config=fast)


@pytest.mark.parametrize("drop", [-0.1, 1.0, "0.1", True])
def test_bad_max_drop(cancer, drop):
    Xt, Xv, yt, yv = cancer
    tree = DecisionTreeClassifier(random_state=0).fit(Xt, yt)
    with pytest.raises(ValueError, match="max_drop"):
        prune(tree, Xv, yv, max_drop=drop)


@pytest.mark.parametrize("kw", [{"max_candidates": 1}, {"batch_sizes": (0,)},
                                {"runtimes": ("tvm",)}, {"clock": "sundial"},
                                {"forest_max_fraction": 0.0}, {"repeats": 0}])
def test_config_validation(kw):
    with pytest.raises(ValueError):
        ClassicConfig(**kw)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_pruner("sklearn.tree", "DecisionTreeClassifier", lambda *a: None)


def test_small_validation_set_warns(cancer, fast):
    Xt, Xv, yt, yv = cancer
    tree = DecisionTreeClassifier(random_state=0).fit(Xt, yt)
    with pytest.warns(UserWarning, match="one validation row"):
        prune(tree, Xv[:100], yv[:100], max_drop=0.005, config=fast)
