"""``prune(..., shrink=S)``: at least S times smaller in pickle bytes, the most capable
candidate of that size, the validation drop reported (and warned about), never a bigger model."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier

from prunekit.classic import ClassicConfig, prune
from prunekit.classic.ensembles import truncate_stages


def _bytes(est) -> int:
    return len(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))


def _fit(kind, data):
    Xt, _, yt, _ = data
    est = {"tree": lambda: DecisionTreeClassifier(random_state=0),
           "forest": lambda: RandomForestClassifier(40, random_state=0),
           "boost": lambda: GradientBoostingClassifier(n_estimators=40, random_state=0),
           "boost_reg": lambda: GradientBoostingRegressor(n_estimators=40, random_state=0),
           "svc": SVC, "svr": SVR,
           "pipeline": lambda: make_pipeline(StandardScaler(), SVC())}[kind]()
    return est.fit(Xt, yt)


CASES = [("tree", "digits", 2.0, {}), ("forest", "digits", 4.0, {}),
         ("boost", "cancer", 3.0, {}), ("boost", "cancer", 3.0, {"refine_boosting": True}),
         ("boost_reg", "diabetes", 3.0, {}), ("svc", "digits", 3.0, {}),
         ("svr", "diabetes", 2.0, {}), ("pipeline", "cancer", 2.0, {})]


@pytest.mark.parametrize(("kind", "data", "shrink", "opts"), CASES,
                         ids=[f"{c[0]}-{c[1]}{'-refine' if c[3] else ''}" for c in CASES])
def test_result_is_smaller_by_the_target_and_predicts(request, kind, data, shrink, opts,
                                                      untouched):
    split = request.getfixturevalue(data)
    Xt, Xv, yt, yv = split
    dense = _fit(kind, split)
    before = untouched(dense)
    cfg = ClassicConfig(measure=False, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the drop may exceed max_drop: that is reported
        small, rep = prune(dense, Xv, yv, shrink=shrink, X_train=Xt, y_train=yt, config=cfg)
    assert type(small) is type(dense) and untouched(dense) == before
    assert _bytes(dense) / _bytes(small) >= shrink and rep.size_ratio >= shrink
    assert rep.shrink == shrink and "size asked for" in rep.summary()
    pred = small.predict(Xv)
    assert pred.shape == yv.shape
    if hasattr(small, "predict_proba") and kind != "svc":
        assert np.allclose(small.predict_proba(Xv).sum(axis=1), 1.0)
    assert np.isclose(rep.val_before - rep.drop, small.score(Xv, yv))


def test_boosting_keeps_the_most_stages_that_fit(cancer):
    Xt, Xv, yt, yv = cancer
    gb = GradientBoostingClassifier(n_estimators=60, random_state=0).fit(Xt, yt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small, rep = prune(gb, Xv, yv, shrink=4.0, config=ClassicConfig(measure=False))
    k = int(rep.amount["n_estimators"])
    assert small.n_estimators_ == k and 1 <= k < 60
    assert _bytes(truncate_stages(gb, k + 1)) * 4.0 > _bytes(gb)  # one more stage misses it


def test_svm_keeps_the_most_support_vectors_that_fit(digits):
    Xt, Xv, yt, yv = digits
    svc = SVC().fit(Xt, yt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small2, _ = prune(svc, Xv, yv, shrink=2.0, config=ClassicConfig(measure=False))
        small4, _ = prune(svc, Xv, yv, shrink=4.0, config=ClassicConfig(measure=False))
    n = svc.support_vectors_.shape[0]
    assert n / 4 * 0.8 < small4.support_vectors_.shape[0] < small2.support_vectors_.shape[0] < n


def test_warns_when_the_drop_exceeds_max_drop(digits):
    Xt, Xv, yt, yv = digits
    tree = DecisionTreeClassifier(random_state=0).fit(Xt, yt)
    with pytest.warns(UserWarning, match=r"shrink=10.*max_drop=0.005"):
        _, rep = prune(tree, Xv, yv, max_drop=0.005, shrink=10,
                       config=ClassicConfig(measure=False))
    assert rep.drop > 0.005 and "exceeded" in rep.summary()


def test_no_warning_within_max_drop(cancer):
    Xt, Xv, yt, yv = cancer
    forest = RandomForestClassifier(40, random_state=0).fit(Xt, yt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, rep = prune(forest, Xv, yv, max_drop=0.5, shrink=2,
                       config=ClassicConfig(measure=False))
    assert rep.drop <= 0.5


def test_unreachable_target_raises_and_leaves_the_estimator(cancer, untouched):
    Xt, Xv, yt, yv = cancer
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(Xt, yt)
    before = untouched(stump)
    with pytest.raises(ValueError, match=r"shrink=50.*smallest candidate is \d+\.\d+x smaller"):
        prune(stump, Xv, yv, shrink=50, config=ClassicConfig(measure=False))
    assert untouched(stump) == before


@pytest.mark.parametrize("bad", [1, 1.0, 0.5, -3, True, "5", float("inf"), float("nan")])
def test_bad_shrink_is_refused(cancer, bad):
    Xt, Xv, yt, yv = cancer
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(Xt, yt)
    with pytest.raises(ValueError, match="shrink"):
        prune(tree, Xv, yv, shrink=bad, config=ClassicConfig(measure=False))


def test_shrink_none_is_the_validation_choice(cancer):
    Xt, Xv, yt, yv = cancer
    forest = RandomForestClassifier(40, random_state=0).fit(Xt, yt)
    cfg = ClassicConfig(measure=False)
    a, rep_a = prune(forest, Xv, yv, X_train=Xt, y_train=yt, config=cfg)
    b, rep_b = prune(forest, Xv, yv, X_train=Xt, y_train=yt, config=cfg, shrink=None)
    assert rep_a.amount == rep_b.amount and rep_b.shrink is None
    assert rep_a.after == rep_b.after and rep_a.val_after == rep_b.val_after
    assert np.array_equal(a.predict_proba(Xv), b.predict_proba(Xv))
    assert "size asked for" not in rep_b.summary()
