"""Tree-subset selection scored on rows each tree may vote on: validation rows (every tree)
and, for bagged forests given their training rows, out-of-bag rows (only the trees whose
bootstrap sample left the row out).

An ensemble's prediction on a row is the mean over its trees that may vote on the row; a
row no chosen tree may vote on gets ``fallback`` (the mean target). Greedy forward
selection minimises the squared error of that prediction (MSE, or the Brier score of class
fractions), and the prefix curve is scored out of fold, so the size chosen does not reward
trees picked because they fit the very rows that score them.

References:
    R. Caruana, A. Niculescu-Mizil, G. Crew, A. Ksikes, "Ensemble Selection from Libraries of
    Models", ICML 2004. G. Martínez-Muñoz, D. Hernández-Lobato, A. Suárez, "An Analysis of
    Ensemble Pruning Techniques Based on Ordered Aggregation", IEEE TPAMI 2009 (ordering on
    training data, out-of-bag estimates). L. Breiman, "Out-of-bag estimation", 1996.
"""

from __future__ import annotations

import numpy as np

from prunekit.classic.trees import labels
from prunekit.classic.validation import score_predictions


def targets(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """``(n_rows, n_out)``: one-hot labels (for the Brier score) or the targets as a column."""
    if classes is None:
        return y.astype(np.float64)[:, None]
    return (y[:, None] == classes[None, :]).astype(np.float64)


def _cube(preds: np.ndarray) -> np.ndarray:
    return preds if preds.ndim == 3 else preds[..., None]


def _votes(preds: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return np.ones(preds.shape[:2]) if mask is None else mask.astype(np.float64)


def greedy_order(preds: np.ndarray, target: np.ndarray, steps: int | None = None,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """Order trees by greedy forward selection (without replacement) on the squared error.

    Args:
        preds: ``(n_trees, n_rows[, n_out])`` per-tree predictions.
        target: ``(n_rows[, n_out])`` regression targets or one-hot labels.
        steps: stop after this many picks (default: order every tree).
        mask: ``(n_trees, n_rows)``, true where a tree may vote on a row (default: all).

    Returns:
        Tree indices; the ensemble of the first ``k`` has the lowest loss the greedy step found
        for each ``k``.
    """
    n = preds.shape[0]
    P = _cube(preds).astype(np.float64)
    Y = target.reshape(P.shape[1], -1).astype(np.float64)
    M = _votes(preds, mask)
    PM = (P * M[..., None]).reshape(n, -1).astype(np.float32)
    Q = M * np.einsum("trc,trc->tr", P, P)
    S, cnt = np.zeros_like(Y), np.zeros(Y.shape[0])
    yy = np.einsum("rc,rc->r", Y, Y)
    empty = ((Y - Y.mean(axis=0)) ** 2).sum(axis=1)  # loss of a row nobody votes on
    free = np.ones(n, dtype=bool)
    steps = n if steps is None else min(n, steps)
    order = np.empty(steps, dtype=np.intp)
    for m in range(steps):
        # a row's loss with tree t added: ||a (S + P_t) - Y||^2, a = 1 / (cnt + 1)
        a = 1.0 / (cnt + 1.0)
        cur = np.where(cnt > 0, ((S / np.maximum(cnt, 1.0)[:, None] - Y) ** 2).sum(axis=1), empty)
        const = a * a * np.einsum("rc,rc->r", S, S) - 2 * a * np.einsum("rc,rc->r", S, Y) + yy - cur
        lin = ((a * a)[:, None] * S - a[:, None] * Y).ravel().astype(np.float32)
        delta = M @ const + Q @ (a * a) + 2.0 * (PM @ lin)
        delta[~free] = np.inf
        pick = int(np.argmin(delta))
        order[m] = pick
        free[pick] = False
        S += P[pick] * M[pick][:, None]
        cnt += M[pick]
    return order


def ensemble_values(preds: np.ndarray, mask: np.ndarray | None, fallback: np.ndarray
                    ) -> np.ndarray:
    """``(n_rows, n_out)`` mean over the trees that may vote on each row (else ``fallback``)."""
    P, M = _cube(preds), _votes(preds, mask)
    total = np.einsum("trc,tr->rc", P, M)
    cnt = M.sum(axis=0)
    out = total / np.maximum(cnt, 1.0)[:, None]
    out[cnt == 0] = fallback
    return out


def _prefix_values(preds: np.ndarray, mask: np.ndarray | None, order: np.ndarray,
                   fallback: np.ndarray) -> np.ndarray:
    """``(k, n_rows, n_out)``: the ensembles of the first ``1 .. k`` trees of ``order``."""
    P, M = _cube(preds)[order], _votes(preds, mask)[order]
    csum = np.cumsum(P * M[..., None], axis=0)
    cnt = np.cumsum(M, axis=0)
    out = csum / np.maximum(cnt, 1.0)[..., None]
    out[cnt == 0] = fallback
    return out


def _out(values: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    return labels(classes, values) if classes is not None else values[..., 0]


def selection_score(preds: np.ndarray, mask: np.ndarray | None, y: np.ndarray,
                    classes: np.ndarray | None) -> float:
    """Score (accuracy or R^2) of the ensemble of every tree in ``preds``."""
    fallback = targets(y, classes).mean(axis=0)
    return score_predictions(classes is not None, y,
                             _out(ensemble_values(preds, mask, fallback), classes))


def cv_prefix_scores(preds: np.ndarray, y: np.ndarray, classes: np.ndarray | None,
                     steps: int, mask: np.ndarray | None = None, folds: int = 5,
                     repeats: int = 3, seed: int = 0) -> list[tuple[float, float]]:
    """Out-of-fold score of the greedy prefix of each size ``1 .. steps``.

    The greedy order is chosen on the other folds and scored on the held-out one; the score
    is the mean over ``repeats`` different fold assignments.
    """
    n_rows = y.shape[0]
    folds = max(2, min(folds, n_rows))
    tgt = targets(y, classes)
    total = np.zeros(steps)
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        oof = np.empty((steps, n_rows), dtype=y.dtype if classes is None else classes.dtype)
        for held in np.array_split(rng.permutation(n_rows), folds):
            fit = np.setdiff1d(np.arange(n_rows), held)
            sub = None if mask is None else mask[:, fit]
            order = greedy_order(preds[:, fit], tgt[fit], steps, sub)
            vals = _prefix_values(preds[:, held], None if mask is None else mask[:, held],
                                  order, tgt[fit].mean(axis=0))
            oof[:, held] = _out(vals, classes)
        total += [score_predictions(classes is not None, y, oof[k]) for k in range(steps)]
    return [(float(k + 1), float(total[k] / repeats)) for k in range(steps)]
