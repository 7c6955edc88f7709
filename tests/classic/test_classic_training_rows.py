"""Training rows passed to prune: out-of-bag scoring for forests, leaf re-fit for boosting."""

import numpy as np
import pytest
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier)

from prunekit.classic import ClassicConfig, prune
from prunekit.classic.ensembles import out_of_bag, truncate_stages
from prunekit.classic.refine import refit_leaves
from prunekit.classic.selection import ensemble_values, greedy_order


def test_out_of_bag_votes_reproduce_sklearn_oob_decision(cancer):
    Xt, _, yt, _ = cancer
    rf = RandomForestClassifier(40, oob_score=True, random_state=0).fit(Xt, yt)
    _, _, mask = out_of_bag(rf, (Xt, yt))
    preds = np.stack([t.predict_proba(Xt) for t in rf.estimators_])
    votes = ensemble_values(preds, mask, np.full(2, 0.5))
    covered = mask.any(axis=0)
    np.testing.assert_allclose(votes[covered], rf.oob_decision_function_[covered], atol=1e-12)


def test_greedy_with_a_full_mask_is_plain_greedy():
    rng = np.random.default_rng(1)
    preds = rng.random((8, 30, 3))
    target = np.eye(3)[rng.integers(0, 3, 30)]
    np.testing.assert_array_equal(greedy_order(preds, target, mask=np.ones((8, 30), bool)),
                                  greedy_order(preds, target))


def test_forest_with_training_rows_keeps_the_api_and_input(cancer, fast, untouched):
    Xt, Xv, yt, yv = cancer
    rf = RandomForestClassifier(60, random_state=0).fit(Xt, yt)
    before = untouched(rf)
    small, rep = prune(rf, Xv, yv, max_drop=0.01, X_train=Xt, y_train=yt, config=fast)
    assert untouched(rf) == before
    assert type(small) is RandomForestClassifier and small.n_estimators < 60
    assert "out-of-bag" in rep.method
    np.testing.assert_allclose(small.predict_proba(Xv).sum(axis=1), 1.0)


def test_training_rows_are_checked(cancer, fast):
    Xt, Xv, yt, yv = cancer
    rf = RandomForestClassifier(10, random_state=0).fit(Xt, yt)
    with pytest.raises(ValueError, match="X_train has 50 rows"):
        prune(rf, Xv, yv, X_train=Xt[:50], y_train=yt[:50], config=fast)
    with pytest.raises(ValueError, match="X_train and y_train"):
        prune(rf, Xv, yv, X_train=Xt, config=fast)
    with pytest.raises(ValueError, match="X_train has 3 features"):
        prune(rf, Xv, yv, X_train=Xt[:, :3], y_train=yt, config=fast)


def test_leaf_refit_of_one_stage_is_the_leaf_mean(diabetes):
    Xt, _, yt, _ = diabetes
    gb = GradientBoostingRegressor(n_estimators=1, max_depth=2, random_state=0).fit(Xt, yt)
    refit = refit_leaves(gb, Xt, yt, l2=0.0)
    leaf = gb.estimators_[0, 0].apply(Xt.astype(np.float32))
    for node in np.unique(leaf):
        rows = leaf == node
        np.testing.assert_allclose(refit.predict(Xt[rows]), yt[rows].mean(), rtol=1e-4)
    np.testing.assert_array_equal(gb.estimators_[0, 0].apply(Xt.astype(np.float32)), leaf)


def test_leaf_refit_lowers_the_training_loss_of_a_truncated_model(digits):
    from sklearn.metrics import log_loss

    Xt, _, yt, _ = digits
    gb = GradientBoostingClassifier(n_estimators=12, max_depth=2, random_state=0).fit(Xt, yt)
    short = truncate_stages(gb, 4)
    refit = refit_leaves(short, Xt, yt)
    assert log_loss(yt, refit.predict_proba(Xt)) < log_loss(yt, short.predict_proba(Xt))
    assert refit.estimators_.shape == (4, 10)
    np.testing.assert_allclose(refit.predict_proba(Xt[:5]).sum(axis=1), 1.0)


@pytest.mark.slow
def test_boosting_with_training_rows_prunes_log_loss_stages_too(cancer, fast, untouched):
    Xt, Xv, yt, yv = cancer
    gb = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(Xt, yt)
    before = untouched(gb)
    cfg = ClassicConfig(measure=False, max_candidates=16, refine_boosting=True)
    small, rep = prune(gb, Xv, yv, max_drop=0.02, X_train=Xt, y_train=yt, config=cfg)
    assert untouched(gb) == before
    assert type(small) is GradientBoostingClassifier
    assert small.n_estimators == small.estimators_.shape[0] <= 20
    assert "re-fitted" in rep.method and "refit_l2" in rep.amount
    assert rep.after.n_nodes < rep.before.n_nodes
    assert small.score(Xv, yv) >= gb.score(Xv, yv) - 0.05


def test_boosting_refit_is_opt_in(cancer, fast):
    Xt, Xv, yt, yv = cancer
    gb = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(Xt, yt)
    small, rep = prune(gb, Xv, yv, max_drop=0.02, X_train=Xt, y_train=yt, config=fast)
    assert rep.method == "boosting stage truncation"
    with pytest.raises(ValueError, match="refine_l2"):
        ClassicConfig(refine_l2=-1.0)
