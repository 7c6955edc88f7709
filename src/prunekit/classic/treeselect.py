"""Tree selection for a fitted gradient-boosting model: per output column, the trees an L1
fit on leaf indicators weighs most, with their leaf values re-fitted.

The raw score of a boosting model is linear in one-hot leaf indicators (one block per tree).
An L1-regularised linear model on those indicators — logistic on the class indicator, one
output column at a time, for classifiers; least squares for regressors — puts weight on few
leaves (RuleFit, Node Harvest). Each output column ranks every tree of the model (any stage,
any class: a tree's splits may serve another class) by its share of the absolute weight,
averaged over three penalties. The model kept for ``m`` is the first ``m`` trees of each
column's order, placed in that column, with every leaf value re-fitted jointly on the
training rows (:func:`prunekit.classic.refine.refit_leaves`; the re-fit absorbs the intercept
into the leaves, since every row reaches one leaf of every tree); then the sibling leaves whose
re-fitted values differ least are merged and the values re-fitted again. ``m`` is chosen on
the validation rows. The result is a plain ``GradientBoosting*`` with ``m`` stages; no split is
re-grown.

References:
    J. H. Friedman, B. E. Popescu, "Predictive Learning via Rule Ensembles", Annals of
    Applied Statistics 2008 (RuleFit: L1 on tree-derived indicators). N. Meinshausen, "Node
    Harvest", Annals of Applied Statistics 2010. S. Ren, X. Cao, Y. Wei, J. Sun, "Global
    Refinement of Random Forest", CVPR 2015 (leaf re-fit of fixed trees).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from prunekit.classic.ccp import rebuild_tree
from prunekit.classic.ensembles import prune_boosting, stable_prefix, truncate_stages
from prunekit.classic.refine import leaf_design, refit_leaves
from prunekit.classic.trees import Outcome, rebuilt
from prunekit.classic.validation import score

PENALTY_SPANS = (100.0, 300.0, 1000.0)  # L1 penalties, as fractions 1/s of the zeroing one


def _column_targets(est: Any, y: np.ndarray) -> list[np.ndarray]:
    """One target per output column: class indicator (classifiers) or ``y`` (regressors)."""
    if not hasattr(est, "classes_"):
        return [np.asarray(y, dtype=np.float64)]
    classes = est.classes_
    if len(classes) == 2:
        return [(y == classes[1]).astype(np.int64)]
    return [(y == c).astype(np.int64) for c in classes]


def l1_leaf_weights(D: Any, target: np.ndarray, classifier: bool, span: float) -> np.ndarray:
    """Weights of an L1-regularised linear model on leaf indicators ``D``.

    Logistic (liblinear) for a class indicator, least squares (lasso) for a regression
    target; the penalty is ``1 / span`` of the smallest one that zeroes every weight.
    """
    if not classifier:
        from sklearn.linear_model import Lasso

        centred = target - target.mean()
        alpha_max = float(np.abs(D.T @ centred).max()) / D.shape[0]
        if alpha_max == 0:
            return np.zeros(D.shape[1])
        with warnings.catch_warnings():  # coordinate descent may stop at its iteration limit
            warnings.simplefilter("ignore")
            return Lasso(alpha=alpha_max / span, max_iter=2000).fit(D, centred).coef_
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import l1_min_c

    if np.unique(target).size < 2:
        return np.zeros(D.shape[1])
    c = l1_min_c(D, target, loss="log") * span
    with warnings.catch_warnings():  # liblinear may stop at its iteration limit
        warnings.simplefilter("ignore")
        fit = LogisticRegression(penalty="l1", C=float(c), solver="liblinear",
                                 max_iter=500, random_state=0).fit(D, target)
    return fit.coef_[0]


def l1_tree_order(est: Any, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Per output column, indices into ``est.estimators_.ravel()``, most useful first.

    A tree's use to a column is its share of the summed absolute L1 weight of all leaves
    (:func:`l1_leaf_weights` on the rows ``X, y``), averaged over the penalties
    ``PENALTY_SPANS`` (one fit's ranking moves with the solver's coordinate order); ties
    (trees with no weight) keep the column's own trees first, in stage order.
    """
    trees = est.estimators_.ravel()
    D, leaf_ids = leaf_design(trees, np.asarray(X, dtype=np.float32))
    owner = np.repeat(np.arange(trees.size), [ids.size for ids in leaf_ids])
    classifier = hasattr(est, "classes_")
    orders = []
    for col, target in enumerate(_column_targets(est, y)):
        mass = np.zeros(trees.size)
        for span in PENALTY_SPANS:
            share = np.bincount(owner, np.abs(l1_leaf_weights(D, target, classifier, span)),
                                minlength=trees.size)
            mass += share / max(share.sum(), 1e-300)
        other = (np.arange(trees.size) % est.estimators_.shape[1]) != col
        orders.append(np.lexsort((np.arange(trees.size), other, -mass)))
    return orders


def select_trees(est: Any, orders: list[np.ndarray], m: int) -> Any:
    """Copy of ``est`` with ``m`` stages: column ``c`` holds the first ``m`` trees of
    ``orders[c]`` (no two slots share a tree)."""
    trees = est.estimators_.ravel()
    grid = np.empty((m, len(orders)), dtype=object)
    for col, order in enumerate(orders):
        for row, idx in enumerate(order[:m]):
            tree = trees[idx]  # a copy of its own; the boosting RandomState stays shared
            grid[row, col] = copy.deepcopy(tree, memo={id(tree.random_state): tree.random_state})
    new = truncate_stages(est, m)
    new.estimators_ = grid
    return new


def _leaf_pairs(tree) -> list[tuple[float, int]]:
    """``(cost, parent)`` of every node whose two children are leaves; the cost of merging
    them is ``n_l n_r / (n_l + n_r) (v_l - v_r)^2``, the squared-error increase of giving
    both the pooled value (``n`` = training rows, ``v`` = leaf values)."""
    left, right = tree.children_left, tree.children_right
    out = []
    for parent in np.flatnonzero(left != -1):
        lc, rc = left[parent], right[parent]
        if left[lc] == -1 and left[rc] == -1:
            nl, nr = tree.n_node_samples[lc], tree.n_node_samples[rc]
            diff = tree.value[lc, 0, 0] - tree.value[rc, 0, 0]
            out.append((float(nl * nr / max(nl + nr, 1) * diff * diff), int(parent)))
    return out


def merge_leaf_pairs(est: Any, fraction: float) -> Any:
    """Copy of boosting model ``est`` in which the ``fraction`` of sibling-leaf pairs, over all
    trees, whose values differ least (:func:`_leaf_pairs`) become one leaf each."""
    trees = est.estimators_.ravel()
    pairs = [(cost, i, parent) for i, t in enumerate(trees) for cost, parent in _leaf_pairs(t.tree_)]
    if not pairs or fraction <= 0:
        return est
    limit = np.quantile([c for c, _, _ in pairs], fraction)
    chosen: dict[int, list[int]] = {}
    for cost, i, parent in pairs:
        if cost <= limit:
            chosen.setdefault(i, []).append(parent)
    new_trees = {}
    for i, parents in chosen.items():
        tree = trees[i].tree_
        mask = tree.children_left == -1
        mask[parents] = True
        new_trees[id(tree)] = rebuild_tree(tree, mask)
    return rebuilt(est, "estimators_", est.estimators_.copy(), new_trees)


def selected_model(est: Any, orders: list[np.ndarray], m: int,
                   train: tuple[np.ndarray, np.ndarray], l2: float = 1e-3,
                   merge_fraction: float = 0.5) -> Any:
    """The candidate with ``m`` trees per column: the first ``m`` of each column's order,
    leaf values re-fitted on ``train``, ``merge_fraction`` of the sibling-leaf pairs merged
    and the values re-fitted again."""
    model = refit_leaves(select_trees(est, orders, m), *train, l2)
    if merge_fraction > 0:
        model = refit_leaves(merge_leaf_pairs(model, merge_fraction), *train, l2)
    return model


def _grid(n: int) -> list[int]:
    return sorted({int(round(v)) for v in np.geomspace(1, n, 24)} - {n})


def prune_boosting_selected(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                            train: tuple[np.ndarray, np.ndarray], l2: float = 1e-3,
                            merge_fraction: float = 0.5) -> Outcome:
    """Fewest trees per column (L1 order, leaves re-fitted on ``train``) within the drop.

    Each candidate keeps the first ``m`` trees of every column's order, re-fits their leaf
    values, merges ``merge_fraction`` of the sibling-leaf pairs whose re-fitted values differ
    least (:func:`merge_leaf_pairs`) and re-fits again. The order and the leaf values come
    from the training rows; every candidate is scored on the validation rows ``X, y`` only,
    and the count is the smallest on a geometric grid from which on every larger one scores
    at least ``floor`` (:func:`~prunekit.classic.ensembles.stable_prefix`; the input model
    closes the grid). Where only the input model passes, the model is truncated instead.
    """
    n = est.estimators_.shape[0]
    orders = l1_tree_order(est, *train)
    stages, models = [], {n: est}
    for m in _grid(n):
        model = selected_model(est, orders, m, train, l2, merge_fraction)
        models[m] = model
        stages.append((float(m), score(model, X, y)))
    stages.append((float(n), score(est, X, y)))
    m = stable_prefix(stages, floor)
    if m == n:
        return prune_boosting(est, X, y, floor, 48)
    return Outcome(models[m], "tree selection by an L1 fit on leaf indicators + sibling "
                   "leaves merged + leaf values re-fitted on the training rows",
                   {"trees_per_column": float(m), "merge_fraction": float(merge_fraction),
                    "refit_l2": float(l2)}, stages)
