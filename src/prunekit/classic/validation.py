"""Input checks shared by every classical-model pruner: fitted, supported, usable validation data."""

from __future__ import annotations

from typing import Any

import numpy as np


def sklearn():
    """The ``sklearn`` module, or an ImportError saying which extra installs it."""
    try:
        import sklearn as sk
    except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
        raise ImportError("prunekit.classic needs scikit-learn; install with: "
                          "pip install 'prunekit[classic]'") from exc
    return sk


def check_fitted(estimator: Any, name: str = "estimator") -> None:
    """ValueError naming the estimator when it has not been fitted."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ValueError(f"{name} {type(estimator).__name__} is not fitted; call .fit(X, y) "
                         "before pruning it") from None


def is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier as _is_clf

    return bool(_is_clf(estimator))


def check_validation(estimator: Any, X_val: Any, y_val: Any,
                     names: tuple[str, str] = ("X_val", "y_val")) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` as arrays after checking shapes, finiteness and, for classifiers, labels.

    Raises:
        ValueError: naming ``names`` (``X_val``/``y_val``) when they do not fit the estimator (feature
            count, length, NaN/inf, empty, labels the estimator has never seen).
    """
    xn, yn = names
    X = np.asarray(X_val)
    y = np.asarray(y_val)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{xn} must be a non-empty 2-D array (n_samples, n_features), "
                         f"got shape {X.shape}")
    n_features = getattr(estimator, "n_features_in_", X.shape[1])
    if X.shape[1] != n_features:
        raise ValueError(f"{xn} has {X.shape[1]} features but {type(estimator).__name__} "
                         f"was fitted on {n_features}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{yn} must be 1-D with one label per row of {xn} ({X.shape[0]}), "
                         f"got shape {y.shape}")
    if not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        raise ValueError(f"{xn} must hold finite numbers (no NaN or inf)")
    if is_classifier(estimator):
        unseen = np.setdiff1d(np.unique(y), estimator.classes_)
        if unseen.size:
            raise ValueError(f"{yn} holds classes {unseen.tolist()[:10]} that "
                             f"{type(estimator).__name__} never saw in training "
                             f"(its classes_: {estimator.classes_.tolist()[:20]})")
    elif not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        raise ValueError(f"{yn} of a regressor must hold finite numbers")
    return X, y


def score(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy for classifiers, R^2 for regressors (``estimator.score``)."""
    return float(estimator.score(X, y))


def score_predictions(classifier: bool, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The metric :func:`score` uses, from predictions already made."""
    if classifier:
        return float(np.mean(y_true == y_pred))
    resid = np.sum((y_true - y_pred) ** 2)
    total = np.sum((y_true - y_true.mean()) ** 2)
    return float(1.0 - resid / total) if total > 0 else float(resid == 0)
