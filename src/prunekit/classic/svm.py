"""Support-vector reduction for fitted ``SVC``/``NuSVC``/``SVR``/``NuSVR``.

The support vectors with the least influence (sum of ``|dual_coef_|`` over the decision
functions they enter) are dropped; the dual coefficients and intercept of every decision
function are then re-fitted on the kept vectors by least squares, so the
reduced function matches the original one on the support vectors it was built from (the
points that define its margin). No training data is needed. The number kept is the smallest, on a fixed
grid of fractions, whose validation score stays within the allowed drop; a larger drop can
therefore never keep more vectors.

References:
    C. J. C. Burges, "Simplified Support Vector Decision Rules", ICML 1996 (reduced-set
    methods). T. Downs, K. E. Gates, A. Masters, "Exact Simplification of Support Vector
    Solutions", JMLR 2001. The least-squares re-fit of the coefficients on a kept subset
    follows the reduced-set idea of approximating the original decision function.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from prunekit.classic.trees import Outcome
from prunekit.classic.validation import score

FRACTIONS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)
_KERNEL_PARAMS = {"rbf": ("gamma",), "poly": ("gamma", "degree", "coef0"),
                  "sigmoid": ("gamma", "coef0"), "linear": ()}


def check_svm(est: Any) -> None:
    """ValueError when the SVM cannot be reduced (kernel, sparse fit)."""
    if not isinstance(est.kernel, str) or est.kernel not in _KERNEL_PARAMS:
        raise ValueError(f"{type(est).__name__}(kernel={est.kernel!r}) is not supported; "
                         f"kernels: {sorted(_KERNEL_PARAMS)}")
    if getattr(est, "_sparse", False):
        raise ValueError(f"{type(est).__name__} was fitted on a sparse matrix; only dense "
                         "fits are supported")


def kernel(est: Any, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The estimator's kernel matrix ``K(A, B)`` with its fitted parameters."""
    from sklearn.metrics.pairwise import pairwise_kernels

    params = {"gamma": est._gamma, "degree": est.degree, "coef0": est.coef0}
    kw = {k: params[k] for k in _KERNEL_PARAMS[est.kernel]}
    return pairwise_kernels(A, B, metric=est.kernel, **kw)


def _blocks(est: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per decision function: (support vector positions, their coefficient row per position).

    One-vs-one pair (i, j) uses class i's vectors with row ``j - 1`` and class j's with
    row ``i`` of libsvm's coefficient matrix (scikit-learn's ``_dual_coef_``).
    """
    n_sv = est.support_vectors_.shape[0]
    if not hasattr(est, "classes_"):
        return [(np.arange(n_sv), np.zeros(n_sv, dtype=np.intp))]
    starts = np.concatenate(([0], np.cumsum(est._n_support)))
    out = []
    n_cls = len(est._n_support)
    for i in range(n_cls):
        for j in range(i + 1, n_cls):
            pos_i = np.arange(starts[i], starts[i + 1])
            pos_j = np.arange(starts[j], starts[j + 1])
            rows = np.concatenate((np.full(pos_i.size, j - 1), np.full(pos_j.size, i)))
            out.append((np.concatenate((pos_i, pos_j)), rows.astype(np.intp)))
    return out


def _influence_order(est: Any) -> np.ndarray:
    return np.argsort(-np.abs(est._dual_coef_).sum(axis=0), kind="stable")


def _kept_positions(est: Any, order: np.ndarray, m: int) -> np.ndarray:
    keep = np.zeros(order.size, dtype=bool)
    keep[order[:m]] = True
    if hasattr(est, "classes_"):  # at least one vector per class
        starts = np.concatenate(([0], np.cumsum(est._n_support)))
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            if b > a and not keep[a:b].any():
                keep[order[(order >= a) & (order < b)][0]] = True
    return np.flatnonzero(keep)


def _refit(est: Any, gram: np.ndarray, kept: np.ndarray, rcond: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """New ``_dual_coef_`` (rows x kept) and ``_intercept_`` matching each decision function."""
    from scipy.linalg import lstsq

    coef = np.zeros((est._dual_coef_.shape[0], kept.size))
    intercept = np.empty_like(est._intercept_)
    in_kept = np.full(gram.shape[0], -1, dtype=np.intp)
    in_kept[kept] = np.arange(kept.size)
    for p, (pos, rows) in enumerate(_blocks(est)):
        # fitted at the function's own support vectors: (|pos|,) decision values
        target = gram[np.ix_(pos, pos)] @ est._dual_coef_[rows, pos] + est._intercept_[p]
        sel = in_kept[pos] >= 0
        A = gram[np.ix_(pos, pos[sel])]
        intercept[p] = est._intercept_[p]
        if sel.sum() < pos.size:  # over-determined: the intercept is re-fitted too
            A = np.hstack((A, np.ones((pos.size, 1))))
        rhs = target - (0.0 if A.shape[1] > sel.sum() else intercept[p])
        sol = lstsq(A, rhs, cond=rcond, lapack_driver="gelsy", check_finite=False)[0]
        coef[rows[sel], in_kept[pos[sel]]] = sol[:sel.sum()]
        if sol.size > sel.sum():
            intercept[p] = sol[-1]
    return coef, intercept


def reduce_svm(est: Any, n_keep: int, rcond: float = 1e-10, gram: np.ndarray | None = None
               ) -> Any:
    """A copy of ``est`` keeping its ``n_keep`` most influential support vectors (re-fitted).

    Args:
        est: fitted SVC/NuSVC/SVR/NuSVR.
        n_keep: support vectors to keep (at least one per class is always kept).
        rcond: relative cut-off of small singular values in the least-squares re-fit.
        gram: the kernel matrix of ``est.support_vectors_`` when already computed.
    """
    n_sv = est.support_vectors_.shape[0]
    if not 1 <= n_keep <= n_sv:
        raise ValueError(f"n_keep must be in [1, {n_sv}], got {n_keep}")
    if gram is None:
        gram = kernel(est, est.support_vectors_, est.support_vectors_)
    kept = _kept_positions(est, _influence_order(est), n_keep)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # many small solves: BLAS threads only add contention
        coef, intercept = _refit(est, gram, kept, rcond)
    new = copy.deepcopy(est)
    new.support_ = np.ascontiguousarray(est.support_[kept])
    new.support_vectors_ = np.ascontiguousarray(est.support_vectors_[kept])
    if hasattr(est, "classes_"):
        starts = np.concatenate(([0], np.cumsum(est._n_support)))
        new._n_support = np.asarray([np.sum((kept >= a) & (kept < b))
                                     for a, b in zip(starts[:-1], starts[1:], strict=True)],
                                    dtype=est._n_support.dtype)
    else:
        new._n_support = np.asarray([kept.size, 0], dtype=est._n_support.dtype)
    new._dual_coef_ = np.ascontiguousarray(coef)
    new._intercept_ = np.ascontiguousarray(intercept)
    flip = hasattr(est, "classes_") and len(est.classes_) == 2
    new.dual_coef_ = -new._dual_coef_ if flip else new._dual_coef_
    new.intercept_ = -new._intercept_ if flip else new._intercept_.copy()
    return new


def prune_svm(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
              fractions: tuple[float, ...] = FRACTIONS) -> Outcome:
    """Fewest support vectors (on the ``fractions`` grid) whose validation score >= ``floor``."""
    check_svm(est)
    n_sv = est.support_vectors_.shape[0]
    gram = kernel(est, est.support_vectors_, est.support_vectors_)
    n_min = len(getattr(est, "classes_", [0]))
    sizes = sorted({max(n_min, int(round(f * n_sv))) for f in fractions if f * n_sv >= 1} - {n_sv})
    candidates, best = [], None
    for m in sizes:  # ascending: the first passing size is the smallest
        small = reduce_svm(est, m, gram=gram)
        s = score(small, X, y)
        candidates.append((float(m), s))
        if s >= floor:
            best = small
            break
    if best is None:
        best, m = copy.deepcopy(est), n_sv
    return Outcome(best, "support-vector reduction with least-squares re-fit of the "
                   "dual coefficients", {"n_support_vectors": float(m)}, candidates)
