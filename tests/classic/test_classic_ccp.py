"""Cost-complexity pruning on fitted trees equals scikit-learn's own fit-time pruning."""

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from prunekit.classic import collapse_sequence, prune, prune_tree, pruning_path


@pytest.mark.parametrize("cls,data", [(DecisionTreeClassifier, "digits"),
                                      (DecisionTreeClassifier, "cancer"),
                                      (DecisionTreeRegressor, "diabetes")])
def test_pruned_tree_equals_sklearn_ccp_fit(cls, data, request):
    Xt, Xv, yt, yv = request.getfixturevalue(data)
    full = cls(random_state=0).fit(Xt, yt)
    path = full.cost_complexity_pruning_path(Xt, yt)
    seq = collapse_sequence(full.tree_)
    for alpha in path.ccp_alphas[:: max(1, len(path.ccp_alphas) // 6)]:
        mine = prune_tree(full.tree_, alpha, seq)
        ref = cls(random_state=0, ccp_alpha=alpha).fit(Xt, yt).tree_
        a, b = mine.__getstate__(), ref.__getstate__()
        for f in ("left_child", "right_child", "feature", "threshold", "n_node_samples"):
            np.testing.assert_array_equal(a["nodes"][f], b["nodes"][f])
        np.testing.assert_array_equal(a["values"], b["values"])
        assert mine.max_depth == ref.max_depth
        np.testing.assert_array_equal(mine.predict(Xv.astype(np.float32)),
                                      ref.predict(Xv.astype(np.float32)))


def test_pruning_path_equals_sklearn(digits):
    Xt, _, yt, _ = digits
    full = DecisionTreeClassifier(random_state=1).fit(Xt, yt)
    ref = full.cost_complexity_pruning_path(Xt, yt)
    mine = pruning_path(full.tree_)
    np.testing.assert_array_equal(mine.ccp_alphas, ref.ccp_alphas)
    np.testing.assert_allclose(mine.impurities, ref.impurities, rtol=0, atol=1e-12)
    assert mine.n_leaves[0] == full.get_n_leaves() and mine.n_leaves[-1] == 1


def test_prune_decision_tree_predicts_like_sklearn_at_chosen_alpha(cancer, fast, untouched):
    Xt, Xv, yt, yv = cancer
    full = DecisionTreeClassifier(random_state=0).fit(Xt, yt)
    before = untouched(full)
    small, rep = prune(full, Xv, yv, max_drop=0.01, config=fast)
    assert untouched(full) == before
    assert type(small) is DecisionTreeClassifier and small.ccp_alpha == rep.amount["ccp_alpha"]
    ref = DecisionTreeClassifier(random_state=0, ccp_alpha=small.ccp_alpha).fit(Xt, yt)
    np.testing.assert_array_equal(small.predict(Xt), ref.predict(Xt))
    np.testing.assert_array_equal(small.predict_proba(Xv), ref.predict_proba(Xv))
    assert small.get_n_leaves() == ref.get_n_leaves() <= full.get_n_leaves()
    assert rep.val_after >= rep.val_before - 0.01


def test_bad_alpha_is_refused(cancer):
    Xt, _, yt, _ = cancer
    tree = DecisionTreeClassifier(random_state=0).fit(Xt, yt).tree_
    with pytest.raises(ValueError, match="ccp_alpha"):
        prune_tree(tree, -1.0)
