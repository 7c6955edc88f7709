"""Forests and boosting: smaller, same type, within the drop, still usable estimators."""

import pickle

import numpy as np
import pytest
from sklearn.ensemble import (ExtraTreesRegressor, GradientBoostingClassifier,
                              GradientBoostingRegressor, RandomForestClassifier)

from prunekit.classic import prune
from prunekit.classic.selection import greedy_order


def test_forest_subset_keeps_the_estimator_api(digits, fast, untouched):
    Xt, Xv, yt, yv = digits
    rf = RandomForestClassifier(60, random_state=0).fit(Xt, yt)
    before = untouched(rf)
    small, rep = prune(rf, Xv, yv, max_drop=0.01, config=fast)
    assert untouched(rf) == before
    assert type(small) is RandomForestClassifier
    assert small.n_estimators == len(small.estimators_) < 60
    assert rep.val_after >= rep.val_before - 0.01
    proba = small.predict_proba(Xv)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(small.classes_[proba.argmax(axis=1)], small.predict(Xv))
    again = pickle.loads(pickle.dumps(small))
    np.testing.assert_array_equal(again.predict(Xv), small.predict(Xv))
    assert rep.after.n_nodes < rep.before.n_nodes and rep.size_ratio > 1


def test_forest_regressor(diabetes, fast):
    Xt, Xv, yt, yv = diabetes
    et = ExtraTreesRegressor(30, random_state=0).fit(Xt, yt)
    small, rep = prune(et, Xv, yv, max_drop=0.01, config=fast)
    assert type(small) is ExtraTreesRegressor and rep.metric == "r2"
    assert small.score(Xv, yv) >= et.score(Xv, yv) - 0.01
    assert small.predict(Xv).shape == (Xv.shape[0],)


def test_greedy_order_first_pick_is_best_single_tree():
    rng = np.random.default_rng(0)
    preds = rng.normal(size=(6, 40))
    target = preds[3] + 0.01 * rng.normal(size=40)
    order = greedy_order(preds, target)
    assert order[0] == 3 and sorted(order.tolist()) == list(range(6))


def test_boosting_truncation_is_a_prefix(cancer, fast):
    Xt, Xv, yt, yv = cancer
    gb = GradientBoostingClassifier(n_estimators=60, random_state=0).fit(Xt, yt)
    small, rep = prune(gb, Xv, yv, max_drop=0.01, config=fast)
    k = small.n_estimators
    assert type(small) is GradientBoostingClassifier and k == small.estimators_.shape[0] <= 60
    staged = np.ravel(list(gb.staged_decision_function(Xv))[k - 1])
    np.testing.assert_allclose(small.decision_function(Xv), staged)
    assert "ccp_alpha" not in rep.amount  # log-loss stages keep their leaves
    assert rep.val_after >= rep.val_before - 0.01


def test_boosting_regressor_also_prunes_stages(diabetes, fast):
    Xt, Xv, yt, yv = diabetes
    gb = GradientBoostingRegressor(n_estimators=60, random_state=0).fit(Xt, yt)
    small, rep = prune(gb, Xv, yv, max_drop=0.02, config=fast)
    assert "ccp_alpha" in rep.amount
    assert small.score(Xv, yv) >= gb.score(Xv, yv) - 0.02 - 1e-12
    assert rep.after.n_nodes <= rep.before.n_nodes
    trees = small.estimators_[:, 0]
    assert all(t.random_state is trees[0].random_state for t in trees)  # shared, as fitted


@pytest.mark.parametrize("drop", [0.0, 0.02])
def test_zero_drop_never_scores_lower(cancer, fast, drop):
    Xt, Xv, yt, yv = cancer
    rf = RandomForestClassifier(20, random_state=1).fit(Xt, yt)
    small, rep = prune(rf, Xv, yv, max_drop=drop, config=fast)
    assert small.score(Xv, yv) >= rf.score(Xv, yv) - drop


def test_stable_prefix_ignores_a_lucky_early_dip():
    from prunekit.classic.ensembles import stable_prefix

    stages = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.7), (4.0, 0.9), (5.0, 0.95)]
    assert stable_prefix(stages, 0.9) == 4
    assert stable_prefix(stages, 0.99) == 5
