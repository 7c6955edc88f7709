"""Leaf refinement of a gradient-boosting model whose trees were selected, on its training rows.

A subset of a boosting model's trees keeps leaf values tuned for a sequence that no longer
follows. Refinement keeps every kept tree's splits and re-fits all leaf values jointly: the
model's raw score is linear in one-hot leaf indicators, so the values minimising the training
loss (log loss for classifiers, squared error for regressors) plus an L2 penalty are one
smooth convex problem (L-BFGS). The trees to keep are chosen in
:mod:`prunekit.classic.treeselect`.

References:
    S. Ren, X. Cao, Y. Wei, J. Sun, "Global Refinement of Random Forest", CVPR 2015 (re-fit
    of leaf values of a fixed tree structure). J. H. Friedman, "Greedy Function
    Approximation: A Gradient Boosting Machine", Annals of Statistics 2001.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prunekit.classic.ccp import with_values
from prunekit.classic.trees import rebuilt


def refinable(est: Any) -> bool:
    """Log loss (classifiers) and squared error (regressors) have a re-fit here."""
    if hasattr(est, "classes_"):
        return getattr(est, "loss", None) == "log_loss"
    return getattr(est, "loss", None) == "squared_error"


def leaf_design(trees: np.ndarray, X: np.ndarray):
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


def _loss_kind(est: Any) -> str:
    if not hasattr(est, "classes_"):
        return "squared"
    return "binary" if len(est.classes_) == 2 else "multinomial"


def _targets(est: Any, y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "squared":
        return y.astype(np.float64)[:, None]
    if kind == "binary":
        return (y == est.classes_[1]).astype(np.float64)[:, None]
    return (y[:, None] == est.classes_[None, :]).astype(np.float64)


def refit_leaves(est: Any, X: np.ndarray, y: np.ndarray | None, l2: float = 1e-3,
                 targets: np.ndarray | None = None) -> Any:
    """A copy of fitted ``est`` whose leaf values are re-fitted jointly on ``(X, y)``.

    Leaves no row of ``X`` reaches keep their values. ``est`` is left untouched.

    Args:
        est: a fitted gradient-boosting model (log loss or squared error).
        X: rows ``(n, n_features)``.
        y: their labels or targets; ignored when ``targets`` is given.
        l2: L2 penalty on the leaf values (per row).
        targets: instead of ``y``, soft targets ``(n, K)`` in the loss's own terms: class
            probabilities for a classifier (``K`` = 1, the positive class, for a binary one),
            values for a regressor — e.g. another model's predictions, to fit the kept trees
            to that model (knowledge distillation; Buciluă et al., "Model Compression",
            KDD 2006).
    """
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    X32 = np.asarray(X, dtype=np.float32)
    lr = float(est.learning_rate)
    init = est._raw_predict_init(X32)
    kind = _loss_kind(est)
    if targets is None:
        Y = _targets(est, y, kind)
    else:
        Y = np.asarray(targets, dtype=np.float64).reshape(X32.shape[0], -1)
        if Y.shape[1] != est.estimators_.shape[1]:
            raise ValueError(f"targets must have {est.estimators_.shape[1]} column(s), "
                             f"got {Y.shape[1]}")
    cols = est.estimators_.shape[1]
    blocks = [leaf_design(est.estimators_[:, c], X32) for c in range(cols)]
    offsets = np.concatenate(([0], np.cumsum([b[0].shape[1] for b in blocks])))
    w0 = np.concatenate([t.tree_.value[ids, 0, 0] * lr for c in range(cols)
                         for t, ids in zip(est.estimators_[:, c], blocks[c][1], strict=True)])

    def objective(w):
        raw = init + np.column_stack([blocks[c][0] @ w[offsets[c]:offsets[c + 1]]
                                      for c in range(cols)])
        value, g = _loss(raw, Y, kind)
        grad = np.concatenate([blocks[c][0].T @ g[:, c] for c in range(cols)])
        return value + 0.5 * l2 * float(w @ w), grad + l2 * w

    with threadpool_limits(1):  # small problems: BLAS threads only add synchronisation
        w = minimize(objective, w0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    new_trees, pos = {}, 0
    for c in range(cols):
        for t, ids in zip(est.estimators_[:, c], blocks[c][1], strict=True):
            values = t.tree_.value.copy()
            values[ids, 0, 0] = w[pos:pos + ids.size] / lr
            new_trees[id(t.tree_)] = with_values(t.tree_, values)
            pos += ids.size
    return rebuilt(est, "estimators_", est.estimators_.copy(), new_trees)
