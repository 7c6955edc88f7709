"""LightGBM (optional extra): round truncation keeps the estimator type and its predictions."""

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

from prunekit.classic import prune  # noqa: E402


def test_lgbm_classifier_truncation(cancer, fast, untouched):
    Xt, Xv, yt, yv = cancer
    est = lgb.LGBMClassifier(n_estimators=80, verbose=-1, random_state=0).fit(Xt, yt)
    before = untouched(est)
    small, rep = prune(est, Xv, yv, max_drop=0.01, config=fast)
    assert untouched(est) == before
    k = small.n_estimators
    assert type(small) is lgb.LGBMClassifier and small.booster_.current_iteration() == k <= 80
    np.testing.assert_allclose(small.predict_proba(Xv), est.predict_proba(Xv, num_iteration=k))
    assert rep.val_after >= rep.val_before - 0.01 and rep.after.n_trees == k
    assert rep.after.pickle_bytes <= rep.before.pickle_bytes


def test_lgbm_regressor(diabetes, fast):
    Xt, Xv, yt, yv = diabetes
    est = lgb.LGBMRegressor(n_estimators=60, verbose=-1, random_state=0).fit(Xt, yt)
    small, rep = prune(est, Xv, yv, max_drop=0.02, config=fast)
    assert type(small) is lgb.LGBMRegressor and rep.metric == "r2"
    assert small.score(Xv, yv) >= est.score(Xv, yv) - 0.02


def test_lgbm_size_target(cancer, fast, untouched):
    import pickle
    import warnings

    Xt, Xv, yt, yv = cancer
    est = lgb.LGBMClassifier(n_estimators=80, verbose=-1, random_state=0).fit(Xt, yt)
    before = untouched(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small, rep = prune(est, Xv, yv, shrink=4, config=fast)
    assert untouched(est) == before and type(small) is lgb.LGBMClassifier
    assert len(pickle.dumps(est, protocol=5)) / len(pickle.dumps(small, protocol=5)) >= 4
    k = small.n_estimators
    np.testing.assert_allclose(small.predict_proba(Xv), est.predict_proba(Xv, num_iteration=k))
