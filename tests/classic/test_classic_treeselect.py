"""Boosting tree selection: an L1 order over leaf indicators, leaf values re-fitted."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

from prunekit.classic import ClassicConfig, prune
from prunekit.classic.refine import leaf_design, refit_leaves
from prunekit.classic.treeselect import l1_tree_order, merge_leaf_pairs, select_trees


@pytest.fixture(scope="module")
def digits_gb(digits):
    Xt, Xv, yt, yv = digits
    return GradientBoostingClassifier(n_estimators=12, max_depth=2, random_state=0).fit(Xt, yt)


def test_order_is_a_deterministic_permutation_per_class(digits, digits_gb):
    Xt, _, yt, _ = digits
    orders = l1_tree_order(digits_gb, Xt, yt)
    assert len(orders) == 10
    for order in orders:
        assert sorted(order.tolist()) == list(range(digits_gb.estimators_.size))
    again = l1_tree_order(digits_gb, Xt, yt)
    assert all(np.array_equal(a, b) for a, b in zip(orders, again, strict=True))


def test_selected_model_predicts_as_the_linear_model_on_leaf_indicators(digits, digits_gb):
    """The returned estimator is the re-fitted linear model over the kept trees' leaves."""
    Xt, Xv, yt, _ = digits
    orders = l1_tree_order(digits_gb, Xt, yt)
    small = refit_leaves(select_trees(digits_gb, orders, 4), Xt, yt)
    assert type(small) is GradientBoostingClassifier and small.estimators_.shape == (4, 10)
    flat = digits_gb.estimators_.ravel()
    for c, order in enumerate(orders):  # column c holds copies of its first 4 trees' splits
        for row, idx in enumerate(order[:4]):
            kept, orig = small.estimators_[row, c].tree_, flat[idx].tree_
            np.testing.assert_array_equal(kept.feature, orig.feature)
            np.testing.assert_array_equal(kept.threshold, orig.threshold)
    X32 = Xv.astype(np.float32)
    raw = np.tile(small._raw_predict_init(X32), 1)
    for c in range(10):
        D, ids = leaf_design(small.estimators_[:, c], X32)
        w = np.concatenate([t.tree_.value[i, 0, 0] for t, i in
                            zip(small.estimators_[:, c], ids, strict=True)])
        raw[:, c] += small.learning_rate * (D @ w)
    np.testing.assert_allclose(small.decision_function(Xv), raw, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(small.predict(Xv), small.classes_[raw.argmax(axis=1)])


def test_merging_leaf_pairs_keeps_the_cheapest_merges_and_the_routes(digits, digits_gb):
    """Merged pairs become leaves; every row still reaches a leaf whose path the original
    tree also took (the merged node is on its original path)."""
    Xt, Xv, yt, _ = digits
    half = merge_leaf_pairs(digits_gb, 0.5)
    assert type(half) is GradientBoostingClassifier
    before = sum(t.tree_.node_count for t in digits_gb.estimators_.ravel())
    after = sum(t.tree_.node_count for t in half.estimators_.ravel())
    assert after < before and merge_leaf_pairs(digits_gb, 0.0) is digits_gb
    assert all(t.tree_.node_count >= 1 for t in half.estimators_.ravel())
    for old, new in zip(digits_gb.estimators_.ravel(), half.estimators_.ravel(), strict=True):
        old_paths = old.decision_path(Xv.astype(np.float32)).sum(axis=1)
        new_paths = new.decision_path(Xv.astype(np.float32)).sum(axis=1)
        assert np.all(new_paths <= old_paths)
    with pytest.raises(ValueError, match="refine_merge"):
        ClassicConfig(refine_merge=1.0)


def test_prune_selects_trees_and_the_result_converts_to_onnx(digits, untouched):
    Xt, Xv, yt, yv = digits
    gb = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(Xt, yt)
    before = untouched(gb)
    cfg = ClassicConfig(measure=False, refine_boosting=True)
    small, rep = prune(gb, Xv, yv, max_drop=0.02, X_train=Xt, y_train=yt, config=cfg)
    assert untouched(gb) == before
    assert type(small) is GradientBoostingClassifier
    assert small.n_estimators == small.estimators_.shape[0] < 10
    assert "L1" in rep.method and rep.amount["trees_per_column"] == small.n_estimators
    assert rep.amount["merge_fraction"] == 0.5
    assert rep.val_after >= rep.val_before - 0.02
    assert rep.after.pickle_bytes < rep.before.pickle_bytes
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    from prunekit.classic.serving import onnx_agreement, to_onnx

    onx, err = to_onnx(small, Xv)
    assert err is None
    assert onnx_agreement(small, onx, Xv) >= 0.99


def test_regressor_selection_keeps_the_estimator_type(diabetes):
    Xt, Xv, yt, yv = diabetes
    gb = GradientBoostingRegressor(n_estimators=8, max_depth=2, random_state=0).fit(Xt, yt)
    cfg = ClassicConfig(measure=False, refine_boosting=True)
    small, rep = prune(gb, Xv, yv, max_drop=0.05, X_train=Xt, y_train=yt, config=cfg)
    assert type(small) is GradientBoostingRegressor
    assert small.estimators_.shape[1] == 1
    assert rep.val_after >= rep.val_before - 0.05


def test_leaf_refit_to_soft_targets(digits, digits_gb, untouched):
    """One-hot targets give the label re-fit; another model's probabilities pull the kept
    trees towards that model (distillation); a wrong column count is refused."""
    Xt, Xv, yt, _ = digits
    small = select_trees(digits_gb, l1_tree_order(digits_gb, Xt, yt), 3)
    before = untouched(small)
    onehot = (yt[:, None] == digits_gb.classes_[None, :]).astype(float)
    by_label = refit_leaves(small, Xt, yt)
    by_target = refit_leaves(small, Xt, None, targets=onehot)
    np.testing.assert_allclose(by_target.decision_function(Xv), by_label.decision_function(Xv))
    teacher = digits_gb.predict_proba(Xt)
    distilled = refit_leaves(small, Xt, None, targets=teacher)
    gap = lambda m: np.abs(m.predict_proba(Xt) - teacher).mean()  # noqa: E731
    assert gap(distilled) < gap(by_label)
    assert untouched(small) == before
    with pytest.raises(ValueError, match="targets"):
        refit_leaves(small, Xt, None, targets=teacher[:, :3])
