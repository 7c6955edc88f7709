"""Contract test over the pruner registry: every registered class prunes within the drop."""

import numpy as np
import pytest

from prunekit.classic import prune
from prunekit.classic.api import _PRUNERS

_SMALL = {"n_estimators": 15, "random_state": 0}


@pytest.mark.parametrize("key", sorted(_PRUNERS))
def test_every_registered_estimator_prunes_within_the_drop(key, cancer, diabetes, fast,
                                                           untouched):
    module, name, _ = _PRUNERS[key]
    cls = getattr(pytest.importorskip(module), name)
    est = cls(verbose=-1) if module == "lightgbm" else cls()
    est.set_params(**{k: v for k, v in _SMALL.items() if k in est.get_params()})
    regressor = name.endswith("Regressor") or name.endswith("SVR")
    Xt, Xv, yt, yv = diabetes if regressor else cancer
    if "SV" in name:
        mu, sd = Xt.mean(0), Xt.std(0)
        Xt, Xv = (Xt - mu) / sd, (Xv - mu) / sd
    est.fit(Xt, yt)
    before = untouched(est)
    small, rep = prune(est, Xv, yv, max_drop=0.02, config=fast)
    assert untouched(est) == before
    assert type(small) is cls
    assert small.score(Xv, yv) >= est.score(Xv, yv) - 0.02 - 1e-12
    assert np.isclose(rep.val_after, small.score(Xv, yv))
    assert rep.after.pickle_bytes <= rep.before.pickle_bytes * 1.01
