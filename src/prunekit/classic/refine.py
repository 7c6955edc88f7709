"""Leaf refinement of a truncated gradient-boosting model, fitted on its training rows.

Truncating a boosting model to its first ``k`` stages leaves each stage's leaf values tuned for
a sequence that no longer follows. Refinement keeps every kept tree's splits and re-fits all
leaf values jointly: the model's raw score is linear in one-hot leaf indicators, so the values
minimising the training loss (log loss for classifiers, squared error for regressors) plus an
L2 penalty are one smooth convex problem (L-BFGS). With refinement fewer stages stay within
the allowed drop, and cost-complexity pruning of each stage applies under any loss, because
the collapsed branches get re-fitted values instead of the residual means stored in the
inner nodes. The number of stages and the alpha are chosen on validation rows plus
out-of-fold training rows (:class:`PooledScore`).

References:
    S. Ren, X. Cao, Y. Wei, J. Sun, "Global Refinement of Random Forest", CVPR 2015 (re-fit
    of leaf values of a fixed tree structure). J. H. Friedman, "Greedy Function
    Approximation: A Gradient Boosting Machine", Annals of Statistics 2001.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prunekit.classic.ccp import collapse_sequence, prune_tree, with_values
from prunekit.classic.ensembles import prune_boosting, stable_prefix, truncate_stages
from prunekit.classic.trees import Outcome, alpha_grid, largest_passing, rebuilt
from prunekit.classic.validation import score, score_predictions

MAX_ALPHAS = 8


def refinable(est: Any) -> bool:
    """Log loss (classifiers) and squared error (regressors) have a re-fit here."""
    if hasattr(est, "classes_"):
        return getattr(est, "loss", None) == "log_loss"
    return getattr(est, "loss", None) == "squared_error"


def _design(trees: np.ndarray, X: np.ndarray):
    """Sparse ``(n_rows, n_leaves)`` leaf indicators of ``trees`` and each tree's leaf ids."""
    from scipy import sparse

    cols, leaf_ids, start = [], [], 0
    for t in trees:
        ids, inv = np.unique(t.apply(X), return_inverse=True)
        cols.append(inv + start)
        leaf_ids.append(ids)
        start += ids.size
    rows = np.tile(np.arange(X.shape[0]), len(trees))
    data = np.ones(rows.size)
    return sparse.csr_matrix((data, (rows, np.concatenate(cols))),
                             shape=(X.shape[0], start)), leaf_ids


def _loss(raw: np.ndarray, Y: np.ndarray, kind: str) -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to ``raw`` (``(n, K)``)."""
    from scipy.special import expit, logsumexp

    n = raw.shape[0]
    if kind == "binary":
        z, t = raw[:, 0], Y[:, 0]
        return float(np.mean(np.logaddexp(0.0, z) - t * z)), ((expit(z) - t) / n)[:, None]
    if kind == "multinomial":
        lse = logsumexp(raw, axis=1)
        return float(np.mean(lse - (raw * Y).sum(axis=1))), (np.exp(raw - lse[:, None]) - Y) / n
    resid = raw - Y
    return float(0.5 * np.mean(resid ** 2)), resid / n


def _targets(est: Any, y: np.ndarray) -> tuple[np.ndarray, str]:
    if not hasattr(est, "classes_"):
        return y.astype(np.float64)[:, None], "squared"
    if len(est.classes_) == 2:
        return (y == est.classes_[1]).astype(np.float64)[:, None], "binary"
    return (y[:, None] == est.classes_[None, :]).astype(np.float64), "multinomial"


def refit_leaves(est: Any, X: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> Any:
    """A copy of fitted ``est`` whose leaf values are re-fitted jointly on ``(X, y)``.

    Leaves no row of ``X`` reaches keep their values. ``est`` is left untouched.
    """
    from scipy.optimize import minimize

    X32 = np.asarray(X, dtype=np.float32)
    lr = float(est.learning_rate)
    init = est._raw_predict_init(X32)
    Y, kind = _targets(est, y)
    cols = est.estimators_.shape[1]
    blocks = [_design(est.estimators_[:, c], X32) for c in range(cols)]
    offsets = np.concatenate(([0], np.cumsum([b[0].shape[1] for b in blocks])))
    w0 = np.concatenate([t.tree_.value[ids, 0, 0] * lr for c in range(cols)
                         for t, ids in zip(est.estimators_[:, c], blocks[c][1], strict=True)])

    def objective(w):
        raw = init + np.column_stack([blocks[c][0] @ w[offsets[c]:offsets[c + 1]]
                                      for c in range(cols)])
        value, g = _loss(raw, Y, kind)
        grad = np.concatenate([blocks[c][0].T @ g[:, c] for c in range(cols)])
        return value + 0.5 * l2 * float(w @ w), grad + l2 * w

    w = minimize(objective, w0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    new_trees, pos = {}, 0
    for c in range(cols):
        for t, ids in zip(est.estimators_[:, c], blocks[c][1], strict=True):
            values = t.tree_.value.copy()
            values[ids, 0, 0] = w[pos:pos + ids.size] / lr
            new_trees[id(t.tree_)] = with_values(t.tree_, values)
            pos += ids.size
    return rebuilt(est, "estimators_", est.estimators_.copy(), new_trees)


def _stage_grid(n: int) -> list[int]:
    return sorted({int(round(v)) for v in np.geomspace(1, n, 12)} | {n})


def _collapsed(est: Any, alpha: float, seqs: list) -> Any:
    trees = est.estimators_.ravel()
    return rebuilt(est, "estimators_", est.estimators_.copy(),
                   {id(t.tree_): prune_tree(t.tree_, alpha, s)
                    for t, s in zip(trees, seqs, strict=True)}, alpha)


class PooledScore:
    """Score of a refined structure on validation rows plus out-of-fold training rows.

    The structure is re-fitted on every training row for the validation rows, and on the
    other folds for each fold of training rows, so no row scores values fitted on it (the
    splits themselves were grown on the training rows, so the training-row part is mildly
    optimistic); pooling them keeps the estimate from resting on a small validation set.
    """

    def __init__(self, X, y, train, l2: float, folds: int = 3, seed: int = 0) -> None:
        self.X, self.y, (self.Xt, self.yt), self.l2 = X, y, train, l2
        perm = np.random.default_rng(seed).permutation(self.yt.shape[0])
        self.folds = np.array_split(perm, folds)

    def __call__(self, structure: Any) -> tuple[float, Any]:
        full = refit_leaves(structure, self.Xt, self.yt, self.l2)
        pred = [full.predict(self.X)]
        for held in self.folds:
            fit = np.setdiff1d(np.arange(self.yt.shape[0]), held)
            pred.append(refit_leaves(structure, self.Xt[fit], self.yt[fit], self.l2)
                        .predict(self.Xt[held]))
        truth = np.concatenate([self.y] + [self.yt[h] for h in self.folds])
        return score_predictions(hasattr(structure, "classes_"), truth,
                                 np.concatenate(pred)), full


def prune_boosting_refined(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                           train: tuple[np.ndarray, np.ndarray], max_candidates: int,
                           l2: float = 1e-3) -> Outcome:
    """Fewest stages whose refined model stays within the drop, then the largest alpha whose
    cost-complexity-pruned, refined stages still do.

    Candidates are scored by :class:`PooledScore`, against the refined full model scored the
    same way; the stage count is the smallest on a geometric grid from which on every larger
    one also passes (:func:`~prunekit.classic.ensembles.stable_prefix`). When refining the
    full model lowers its validation score below ``floor``, the model is only truncated.
    """
    n = est.estimators_.shape[0]
    pooled = PooledScore(X, y, train, l2)
    ref, full = pooled(est)
    if score(full, X, y) < floor:
        return prune_boosting(est, X, y, floor, max_candidates)
    floor = ref - (score(est, X, y) - floor)  # the same drop, on the pooled rows
    stages, models = [], {n: full}
    for k in _stage_grid(n)[:-1]:
        value, models[k] = pooled(truncate_stages(est, k))
        stages.append((float(k), value))
    stages.append((float(n), ref))
    k = stable_prefix(stages, floor)
    trunc = truncate_stages(est, k)
    seqs = [collapse_sequence(t.tree_) for t in trunc.estimators_.ravel()]
    alphas, best = [], models[k]
    for alpha in alpha_grid(seqs, min(max_candidates, MAX_ALPHAS))[1:]:
        value, model = pooled(_collapsed(trunc, float(alpha), seqs))
        alphas.append((float(alpha), value))
        if value >= floor:
            best = model  # alphas ascend: the last passing one is the largest
    alpha = largest_passing(alphas, floor)
    return Outcome(best, "boosting stage truncation + cost-complexity pruning of each stage "
                   "+ leaf values re-fitted on the training rows",
                   {"n_estimators": float(k), "ccp_alpha": alpha, "refit_l2": float(l2)},
                   stages + alphas)
