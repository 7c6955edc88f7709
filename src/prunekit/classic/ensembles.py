"""Pruning fitted tree ensembles: tree-subset selection for forests, stage truncation for
gradient boosting, then one cost-complexity alpha for every kept tree — amounts chosen on
validation data so the score stays within the allowed drop.

References:
    R. Caruana, A. Niculescu-Mizil, G. Crew, A. Ksikes, "Ensemble Selection from Libraries of
    Models", ICML 2004 (greedy forward selection). G. Martínez-Muñoz, A. Suárez, "Pruning in
    Ordered Bagging Ensembles", ICML 2006 (ordered aggregation: keep a prefix of the order).
    Breiman et al., "Classification and Regression Trees", 1984 (cost-complexity pruning).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prunekit.classic.ccp import prune_tree
from prunekit.classic.selection import (cv_prefix_scores, ensemble_values, greedy_order,
                                        selection_score, targets)
from prunekit.classic.trees import (Outcome, TreeOnData, alpha_grid, labels, largest_passing,
                                    rebuilt)
from prunekit.classic.validation import score_predictions

_STALE = ("oob_score_", "oob_decision_function_", "oob_prediction_")


def _common_alpha(datas: list[TreeOnData], combine, y: np.ndarray, classes, floor: float,
                  max_candidates: int) -> tuple[float, list[tuple[float, float]]]:
    """Largest alpha, shared by every tree, whose combined validation score stays >= ``floor``."""
    candidates = []
    for alpha in alpha_grid([d.seq for d in datas], max_candidates):
        pred = labels(classes, combine([d.predict_at(alpha) for d in datas]))
        candidates.append((float(alpha), score_predictions(classes is not None, y, pred)))
    return largest_passing(candidates, floor), candidates


def tree_predictions(est: Any, X: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Every tree's predictions on ``X``: ``(n_trees, n, n_classes)`` probabilities for a
    classifier (``classes`` given), ``(n_trees, n)`` values for a regressor."""
    if classes is None:
        return np.stack([t.predict(X) for t in est.estimators_])
    return np.stack([t.predict_proba(X) for t in est.estimators_])


def out_of_bag(est: Any, train: tuple[np.ndarray, np.ndarray] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(X_train, y_train, mask)`` with ``mask[t, i]`` true where row ``i`` is out of tree
    ``t``'s bootstrap sample; ``None`` without training rows or bootstrap sampling."""
    if train is None or not getattr(est, "bootstrap", False):
        return None
    Xt, yt = train
    n = int(getattr(est, "_n_samples", Xt.shape[0]))
    if Xt.shape[0] != n:
        raise ValueError(f"X_train has {Xt.shape[0]} rows but {type(est).__name__} was fitted "
                         f"on {n}: pass the rows it was fitted on, in the same order")
    mask = np.ones((len(est.estimators_), n), dtype=bool)
    for i, drawn in enumerate(est.estimators_samples_):
        mask[i, drawn] = False
    return Xt, yt, mask


def _selection_rows(est: Any, X: np.ndarray, y: np.ndarray, train
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validation rows (every tree votes) followed by out-of-bag training rows, when given."""
    oob = out_of_bag(est, train)
    if oob is None:
        return X, y, None
    Xt, yt, mask = oob
    votes = np.hstack((np.ones((mask.shape[0], X.shape[0]), dtype=bool), mask))
    return np.vstack((X, Xt)), np.concatenate((y, yt)), votes


def forest_subset(est: Any, keep: list[int], new_trees: dict[int, Any] | None = None,
                  ccp_alpha: float | None = None) -> Any:
    """Copy of forest ``est`` keeping the trees at the indices ``keep`` (``new_trees`` as in
    :func:`~prunekit.classic.trees.rebuilt`); its out-of-bag attributes are removed: they
    described the trees that were dropped."""
    new = rebuilt(est, "estimators_", [est.estimators_[i] for i in keep], new_trees or {},
                  ccp_alpha)
    new.n_estimators = len(keep)
    for name in _STALE:
        if hasattr(new, name):
            delattr(new, name)
    return new


def prune_forest(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                 max_candidates: int, max_fraction: float = 0.5,
                 train: tuple[np.ndarray, np.ndarray] | None = None) -> Outcome:
    """Keep the shortest greedy-ordered prefix of trees, then cost-complexity prune them.

    Candidates are scored on the validation rows and, when the forest was bagged and its
    training rows are given (``train``), on those rows too, each by its out-of-bag trees
    only (:mod:`prunekit.classic.selection`). The prefix size is the smallest from which on
    every longer prefix (up to ``max_fraction`` of the trees) has an out-of-fold score within
    the allowed drop of the whole forest's score on the same rows; the whole forest is kept
    when the longest prefix searched is not within it. The shared alpha is the largest that
    lowers neither the kept trees' score nor goes below the floor.
    """
    classes = getattr(est, "classes_", None)
    drop = score_predictions(classes is not None, y, labels(
        classes, tree_predictions(est, X, classes).mean(axis=0))) - floor
    Xs, ys, mask = _selection_rows(est, X, y, train)
    preds = tree_predictions(est, Xs, classes)
    floor = selection_score(preds, mask, ys, classes) - drop
    steps = max(1, int(np.ceil(max_fraction * preds.shape[0])))
    sizes = cv_prefix_scores(preds, ys, classes, steps, mask)
    k = stable_prefix(sizes, floor)
    if sizes[-1][1] >= floor:
        keep = sorted(greedy_order(preds, targets(ys, classes), k, mask).tolist())
    else:
        k, keep = preds.shape[0], list(range(preds.shape[0]))
    kept_mask = None if mask is None else mask[keep]
    kept_score = selection_score(preds[keep], kept_mask, ys, classes)
    fallback = targets(ys, classes).mean(axis=0)
    kept = [TreeOnData(est.estimators_[i], Xs) for i in keep]

    def combine(ps):
        vals = ensemble_values(np.stack(ps), kept_mask, fallback)
        return vals if classes is not None else vals[:, 0]

    alpha, alphas = _common_alpha(kept, combine, ys, classes, max(floor, kept_score),
                                  max_candidates)
    new = forest_subset(est, keep, {id(d.tree): prune_tree(d.tree, alpha, d.seq) for d in kept},
                        alpha)
    rows = "validation + out-of-bag training rows" if mask is not None else "validation rows"
    return Outcome(new, f"tree-subset selection ({rows}) + cost-complexity pruning of each "
                   "kept tree", {"n_estimators": float(k), "ccp_alpha": alpha},
                   [(s, v) for s, v in sizes] + alphas)


def _stage_scores(est: Any, X: np.ndarray, y: np.ndarray, classifier: bool
                  ) -> list[tuple[float, float]]:
    return [(float(i + 1), score_predictions(classifier, y, pred))
            for i, pred in enumerate(est.staged_predict(X))]


def truncate_stages(est: Any, k: int, new_trees: dict[int, Any] | None = None,
              ccp_alpha: float | None = None) -> Any:
    """Copy of boosting model ``est`` keeping its first ``k`` stages (``new_trees`` as in
    :func:`~prunekit.classic.trees.rebuilt`)."""
    new = rebuilt(est, "estimators_", est.estimators_[:k].copy(), new_trees or {}, ccp_alpha)
    new.n_estimators = k
    if hasattr(new, "n_estimators_"):
        new.n_estimators_ = k
    for name in ("train_score_", "oob_improvement_", "oob_scores_"):
        if hasattr(new, name):
            setattr(new, name, getattr(new, name)[:k].copy())
    if hasattr(new, "oob_score_"):
        delattr(new, "oob_score_")
    return new


def stable_prefix(stages: list[tuple[float, float]], floor: float) -> int:
    """Fewest stages from which on every longer prefix also scores at least ``floor``.

    A short prefix that meets the floor by luck while longer ones fall below it again is
    not taken: the staged curve of boosting is noisy early and only settles later.
    """
    k = len(stages)
    for size, value in reversed(stages):
        if value < floor:
            break
        k = int(size)
    return k


def ccp_applies(est: Any) -> bool:
    """Cost-complexity pruning keeps a boosting stage's meaning only under squared error.

    With other losses scikit-learn replaces the leaf values by line-search steps while inner
    nodes keep plain residual means, so a collapsed branch would predict on another scale.
    """
    return getattr(est, "loss", None) == "squared_error" and est.estimators_.shape[1] == 1


def prune_boosting(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                   max_candidates: int) -> Outcome:
    """Fewest boosting stages within the drop (:func:`stable_prefix`), then (squared error
    only) one cost-complexity alpha shared by the kept stage trees."""
    classifier = hasattr(est, "classes_")
    stages = _stage_scores(est, X, y, classifier)
    k = stable_prefix(stages, floor)
    trunc = truncate_stages(est, k)
    if not ccp_applies(est):
        return Outcome(trunc, "boosting stage truncation", {"n_estimators": float(k)}, stages)
    datas = [TreeOnData(t, X) for t in trunc.estimators_[:, 0]]
    lr = float(est.learning_rate)
    base = trunc.predict(X) - lr * np.sum([d.values[d.leaf] for d in datas], axis=0)
    alpha, alphas = _common_alpha(datas, lambda ps: base + lr * np.sum(ps, axis=0), y, None,
                                  floor, max_candidates)
    datas = [TreeOnData(t, X) for t in est.estimators_[:k, 0]]  # the input's own trees
    new_trees = {id(d.tree): prune_tree(d.tree, alpha, d.seq) for d in datas}
    return Outcome(truncate_stages(est, k, new_trees, alpha),
                   "boosting stage truncation + cost-complexity pruning of each stage",
                   {"n_estimators": float(k), "ccp_alpha": alpha}, stages + alphas)
