"""Size-target pruning: the most capable candidate of each model type whose pickle fits a
byte budget (``prune(..., shrink=S)``: at least ``S`` times smaller than the input).

Every model type offers a sequence of candidates from least to most capable whose size
grows with the position (decision trees: cost-complexity alphas from the root to the full
tree; forests: prefixes of the greedy tree order; gradient boosting: stage counts, or trees
per class with ``refine_boosting``; SVMs: kept support vectors; LightGBM: boosting rounds).
A binary search over that sequence finds the last candidate that fits; every candidate
returned was pickled and measured, so the size target holds exactly even where the size is
not strictly monotone. The validation score is reported, not constrained.

References:
    Breiman et al., "Classification and Regression Trees", 1984 (cost-complexity
    sequence). G. Martínez-Muñoz, A. Suárez, "Pruning in Ordered Bagging Ensembles", ICML
    2006 (ordered aggregation). Burges, "Simplified Support Vector Decision Rules", ICML 1996.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunekit.classic import boosters, refine
from prunekit.classic.ccp import collapse_sequence, prune_tree
from prunekit.classic.ensembles import (_selection_rows, forest_subset, tree_predictions,
                                        truncate_stages)
from prunekit.classic.selection import greedy_order, targets
from prunekit.classic.svm import check_svm, kernel, reduce_svm
from prunekit.classic.treeselect import l1_tree_order, selected_model
from prunekit.classic.trees import Outcome, with_tree
from prunekit.classic.validation import score


def pickle_bytes(est: Any) -> int:
    """Bytes of ``pickle.dumps(est)`` at the highest protocol (as the report counts them)."""
    return len(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))


class Unreachable(ValueError):
    """No candidate fits the budget; ``smallest`` is the smallest candidate's size in bytes."""

    def __init__(self, smallest: int) -> None:
        super().__init__(f"the smallest candidate has {smallest} bytes")
        self.smallest = smallest


@dataclass(frozen=True)
class SizeTarget:
    """A byte budget: ``size_of(candidate)`` (the bytes the user will store) <= ``limit``."""

    size_of: Callable[[Any], int]
    limit: float

    def fits(self, candidate: Any) -> bool:
        return self.size_of(candidate) <= self.limit


def largest_fitting(settings: Sequence[float], build: Callable[[int], Any], target: SizeTarget,
                    X: np.ndarray, y: np.ndarray) -> tuple[int, Any, list[tuple[float, float]]]:
    """Binary search for the last position of ``settings`` whose candidate fits ``target``.

    Args:
        settings: the candidates' settings, least capable (smallest) first.
        build: position -> candidate model.
        target: the byte budget.
        X, y: validation rows; every candidate built is scored on them for the report.

    Returns:
        ``(position, model, [(setting, validation score) of every candidate built])``.

    Raises:
        Unreachable: the first (smallest) candidate does not fit.
    """
    first = build(0)
    if not target.fits(first):
        raise Unreachable(target.size_of(first))
    lo, hi, best = 0, len(settings) - 1, first
    scored = [(float(settings[0]), score(first, X, y))]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        model = build(mid)
        scored.append((float(settings[mid]), score(model, X, y)))
        if target.fits(model):
            lo, best = mid, model
        else:
            hi = mid - 1
    return lo, best, scored


def size_tree(est: Any, X: np.ndarray, y: np.ndarray, target: SizeTarget, cfg: Any,
              train: Any = None) -> Outcome:
    """The cost-complexity alpha with the most leaves that fits."""
    seq = collapse_sequence(est.tree_)
    alphas = np.unique(np.concatenate(([0.0], seq.alphas)))
    alphas = alphas[np.isfinite(alphas) & (alphas >= 0)][::-1]  # root first
    i, model, scored = largest_fitting(
        alphas, lambda k: with_tree(est, prune_tree(est.tree_, alphas[k], seq), alphas[k]),
        target, X, y)
    return Outcome(model, "cost-complexity pruning of the fitted tree to a size target",
                   {"ccp_alpha": float(alphas[i])}, scored)


def size_forest(est: Any, X: np.ndarray, y: np.ndarray, target: SizeTarget, cfg: Any,
                train: Any = None) -> Outcome:
    """The longest prefix of the greedy tree order (the subset selection of
    :func:`~prunekit.classic.ensembles.prune_forest`) that fits."""
    classes = getattr(est, "classes_", None)
    Xs, ys, mask = _selection_rows(est, X, y, train)
    preds = tree_predictions(est, Xs, classes)
    order = greedy_order(preds, targets(ys, classes), None, mask)
    i, model, scored = largest_fitting(
        range(1, order.size + 1),
        lambda k: forest_subset(est, sorted(order[:k + 1].tolist())), target, X, y)
    rows = "validation + out-of-bag training rows" if mask is not None else "validation rows"
    return Outcome(model, f"tree-subset selection ({rows}) to a size target",
                   {"n_estimators": float(i + 1)}, scored)


def size_boosting(est: Any, X: np.ndarray, y: np.ndarray, target: SizeTarget, cfg: Any,
                  train: Any = None) -> Outcome:
    """The most stages (or, with ``refine_boosting`` and training rows, trees per class of
    the L1 order with re-fitted leaves) whose model fits."""
    n = est.estimators_.shape[0]
    counts = range(1, n + 1)
    if train is not None and cfg.refine_boosting and refine.refinable(est):
        orders = l1_tree_order(est, *train)
        i, model, scored = largest_fitting(
            counts, lambda k: selected_model(est, orders, k + 1, train, cfg.refine_l2,
                                             cfg.refine_merge), target, X, y)
        return Outcome(model, "tree selection by an L1 fit on leaf indicators + sibling "
                       "leaves merged + leaf values re-fitted, to a size target",
                       {"trees_per_column": float(i + 1),
                        "merge_fraction": float(cfg.refine_merge),
                        "refit_l2": float(cfg.refine_l2)}, scored)
    i, model, scored = largest_fitting(counts, lambda k: truncate_stages(est, k + 1), target,
                                       X, y)
    return Outcome(model, "boosting stage truncation to a size target",
                   {"n_estimators": float(i + 1)}, scored)


def size_svm(est: Any, X: np.ndarray, y: np.ndarray, target: SizeTarget, cfg: Any,
             train: Any = None) -> Outcome:
    """The most support vectors (re-fitted as in :func:`~prunekit.classic.svm.reduce_svm`)
    whose model fits."""
    check_svm(est)
    gram = kernel(est, est.support_vectors_, est.support_vectors_)
    n_min = len(getattr(est, "classes_", [0]))
    sizes = range(n_min, est.support_vectors_.shape[0] + 1)
    i, model, scored = largest_fitting(
        sizes, lambda k: reduce_svm(est, sizes[k], gram=gram), target, X, y)
    return Outcome(model, "support-vector reduction with least-squares re-fit of the dual "
                   "coefficients, to a size target", {"n_support_vectors": float(sizes[i])},
                   scored)


def size_lightgbm(est: Any, X: np.ndarray, y: np.ndarray, target: SizeTarget, cfg: Any,
                  train: Any = None) -> Outcome:
    """The most boosting rounds whose model fits."""
    n = est.booster_.current_iteration()
    i, model, scored = largest_fitting(
        range(1, n + 1), lambda k: boosters.truncate_lightgbm(est, k + 1), target, X, y)
    return Outcome(model, "boosting round truncation to a size target",
                   {"n_estimators": float(i + 1)}, scored)
