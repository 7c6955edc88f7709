"""Support-vector reduction: exact at full size, monotone in the validation score it trades."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, NuSVC

from prunekit.classic import prune, reduce_svm


@pytest.mark.parametrize("cls,data", [(SVC, "digits"), (SVC, "cancer"), (NuSVC, "cancer"),
                                      (SVR, "diabetes")])
def test_keeping_every_vector_reproduces_the_decision_function(cls, data, request):
    Xt, Xv, yt, yv = request.getfixturevalue(data)
    sc = StandardScaler().fit(Xt)
    est = cls().fit(sc.transform(Xt), yt)
    full = reduce_svm(est, est.support_vectors_.shape[0])
    np.testing.assert_allclose(full._decision_function(sc.transform(Xv)),
                               est._decision_function(sc.transform(Xv)), atol=1e-6)
    np.testing.assert_allclose(full.dual_coef_, est.dual_coef_, atol=1e-6)


def test_reduction_is_monotone_in_the_drop(digits, fast, untouched):
    Xt, Xv, yt, yv = digits
    svc = make_pipeline(StandardScaler(), SVC()).fit(Xt, yt)
    before = untouched(svc)
    kept, scores = [], []
    for drop in (0.0, 0.01, 0.03, 0.1):
        small, rep = prune(svc, Xv, yv, max_drop=drop, config=fast)
        assert rep.val_after >= rep.val_before - drop
        kept.append(rep.after.n_support_vectors)
        scores.append(rep.val_after)
    assert untouched(svc) == before
    assert kept == sorted(kept, reverse=True) and kept[-1] < kept[0]
    assert small.steps[-1][1].support_vectors_.shape[0] == kept[-1]
    assert small.predict(Xv).shape == yv.shape


def test_svr_reduction(diabetes, fast):
    Xt, Xv, yt, yv = diabetes
    svr = SVR(C=50).fit(Xt, yt)
    small, rep = prune(svr, Xv, yv, max_drop=0.01, config=fast)
    assert type(small) is SVR and small.n_support_[0] == small.support_vectors_.shape[0]
    assert small.score(Xv, yv) >= svr.score(Xv, yv) - 0.01


def test_precomputed_kernel_is_refused(cancer, fast):
    Xt, Xv, yt, yv = cancer
    svc = SVC(kernel="precomputed").fit(Xt @ Xt.T, yt)
    with pytest.raises(ValueError, match="kernel"):
        prune(svc, Xv @ Xt.T, yv, config=fast)
