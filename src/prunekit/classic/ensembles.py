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
from prunekit.classic.trees import (Outcome, TreeOnData, alpha_grid, labels, largest_passing,
                                    rebuilt)
from prunekit.classic.validation import score_predictions

_STALE = ("oob_score_", "oob_decision_function_", "oob_prediction_")


def _targets(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    if classes is None:
        return y.astype(np.float64)
    return (y[:, None] == classes[None, :]).astype(np.float64)  # one-hot, for the Brier score


def greedy_order(preds: np.ndarray, targets: np.ndarray, steps: int | None = None) -> np.ndarray:
    """Order trees by greedy forward selection (without replacement) on the validation loss.

    Args:
        preds: ``(n_trees, n_rows[, n_classes])`` per-tree predictions on validation rows.
        targets: ``(n_rows[, n_classes])`` regression targets or one-hot labels.
        steps: stop after this many picks (default: order every tree).

    Returns:
        Tree indices; the ensemble of the first ``k`` has the lowest squared error (MSE or Brier
        score) the greedy step found for each ``k``.
    """
    n = preds.shape[0]
    flat = preds.reshape(n, -1)
    target = targets.reshape(-1)
    sq = np.einsum("ij,ij->i", flat, flat)
    total = np.zeros_like(target)
    free = np.ones(n, dtype=bool)
    steps = n if steps is None else min(n, steps)
    order = np.empty(steps, dtype=np.intp)
    for m in range(1, steps + 1):
        # ||(S + P_t)/m - Y||^2 = const + 2/m <S/m - Y, P_t> + ||P_t||^2 / m^2
        resid = total / m - target
        loss = 2.0 / m * (flat @ resid) + sq / (m * m)
        loss[~free] = np.inf
        pick = int(np.argmin(loss))
        order[m - 1] = pick
        free[pick] = False
        total += flat[pick]
    return order


def _prefix_labels(preds: np.ndarray, order: np.ndarray, classes: np.ndarray | None
                   ) -> np.ndarray:
    """``(n_trees, n_rows)`` labels (or values) of the ensembles of the first ``k`` trees."""
    csum = np.cumsum(preds[order], axis=0)
    csum /= np.arange(1, order.size + 1).reshape((-1,) + (1,) * (preds.ndim - 1))
    return labels(classes, csum)


def cv_prefix_scores(preds: np.ndarray, y: np.ndarray, classes: np.ndarray | None,
                     steps: int, folds: int = 5, repeats: int = 3, seed: int = 0
                     ) -> list[tuple[float, float]]:
    """Out-of-fold validation score of the greedy prefix of each size.

    The greedy order is chosen on the other folds and scored on the held-out one, so the
    curve does not reward trees picked because they fit these very rows; the score is the
    mean over ``repeats`` different fold assignments.
    """
    n_rows = y.shape[0]
    folds = max(2, min(folds, n_rows))
    targets = _targets(y, classes)
    total = np.zeros(steps)
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        oof = np.empty((steps, n_rows), dtype=y.dtype if classes is None else classes.dtype)
        for held in np.array_split(rng.permutation(n_rows), folds):
            fit = np.setdiff1d(np.arange(n_rows), held)
            order = greedy_order(preds[:, fit], targets[fit], steps)
            oof[:, held] = _prefix_labels(preds[:, held], order, classes)
        total += [score_predictions(classes is not None, y, oof[k]) for k in range(steps)]
    return [(float(k + 1), float(total[k] / repeats)) for k in range(steps)]


def _common_alpha(datas: list[TreeOnData], combine, y: np.ndarray, classes, floor: float,
                  max_candidates: int) -> tuple[float, list[tuple[float, float]]]:
    """Largest alpha, shared by every tree, whose combined validation score stays >= ``floor``."""
    candidates = []
    for alpha in alpha_grid([d.seq for d in datas], max_candidates):
        pred = labels(classes, combine([d.predict_at(alpha) for d in datas]))
        candidates.append((float(alpha), score_predictions(classes is not None, y, pred)))
    return largest_passing(candidates, floor), candidates


def _tree_predictions(est: Any, X: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    if classes is None:
        return np.stack([t.predict(X) for t in est.estimators_])
    return np.stack([t.predict_proba(X) for t in est.estimators_])


def prune_forest(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                 max_candidates: int, max_fraction: float = 0.5) -> Outcome:
    """Keep the shortest greedy-ordered prefix of trees, then cost-complexity prune them.

    The prefix size is the smallest from which on every longer prefix (up to
    ``max_fraction`` of the trees) has an out-of-fold score (:func:`cv_prefix_scores`) within
    the allowed drop of the whole forest's validation score; the whole forest is kept when
    the longest prefix searched is not within it. The shared alpha is the
    largest that lowers neither the kept trees' validation score nor goes below ``floor``.
    """
    classes = getattr(est, "classes_", None)
    preds = _tree_predictions(est, X, classes)
    steps = max(1, int(np.ceil(max_fraction * preds.shape[0])))
    sizes = cv_prefix_scores(preds, y, classes, steps)
    k = stable_prefix(sizes, floor)
    if sizes[-1][1] >= floor:
        keep = sorted(greedy_order(preds, _targets(y, classes), k).tolist())
    else:
        k, keep = preds.shape[0], list(range(preds.shape[0]))
    kept_score = score_predictions(classes is not None, y,
                                   labels(classes, preds[keep].mean(axis=0)))
    kept = [TreeOnData(est.estimators_[i], X) for i in keep]
    alpha, alphas = _common_alpha(kept, lambda ps: np.mean(ps, axis=0), y, classes,
                                  max(floor, kept_score), max_candidates)
    new = rebuilt(est, "estimators_", [est.estimators_[i] for i in keep],
                  {id(d.tree): prune_tree(d.tree, alpha, d.seq) for d in kept}, alpha)
    new.n_estimators = len(keep)
    for name in _STALE:
        if hasattr(new, name):
            delattr(new, name)
    return Outcome(new, "tree-subset selection + cost-complexity pruning of each kept tree",
                   {"n_estimators": float(k), "ccp_alpha": alpha},
                   [(s, v) for s, v in sizes] + alphas)


def _stage_scores(est: Any, X: np.ndarray, y: np.ndarray, classifier: bool
                  ) -> list[tuple[float, float]]:
    return [(float(i + 1), score_predictions(classifier, y, pred))
            for i, pred in enumerate(est.staged_predict(X))]


def _truncate(est: Any, k: int, new_trees: dict[int, Any] | None = None,
              ccp_alpha: float | None = None) -> Any:
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
    trunc = _truncate(est, k)
    if not ccp_applies(est):
        return Outcome(trunc, "boosting stage truncation", {"n_estimators": float(k)}, stages)
    datas = [TreeOnData(t, X) for t in trunc.estimators_[:, 0]]
    lr = float(est.learning_rate)
    base = trunc.predict(X) - lr * np.sum([d.values[d.leaf] for d in datas], axis=0)
    alpha, alphas = _common_alpha(datas, lambda ps: base + lr * np.sum(ps, axis=0), y, None,
                                  floor, max_candidates)
    datas = [TreeOnData(t, X) for t in est.estimators_[:k, 0]]  # the input's own trees
    new_trees = {id(d.tree): prune_tree(d.tree, alpha, d.seq) for d in datas}
    return Outcome(_truncate(est, k, new_trees, alpha),
                   "boosting stage truncation + cost-complexity pruning of each stage",
                   {"n_estimators": float(k), "ccp_alpha": alpha}, stages + alphas)
