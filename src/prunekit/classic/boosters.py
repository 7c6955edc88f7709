"""LightGBM models (scikit-learn API): boosting-round truncation chosen on validation data.

The kept rounds are written out with ``Booster.model_to_string(num_iteration=k)`` and read
back as a new ``Booster``; the result is an ``LGBMClassifier``/``LGBMRegressor`` like the input.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from prunekit.classic.ensembles import stable_prefix
from prunekit.classic.trees import Outcome
from prunekit.classic.validation import score_predictions


def _lightgbm():
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise ImportError("pruning LightGBM models needs lightgbm; install with: "
                          "pip install 'prunekit[classic-lightgbm]'") from exc
    return lightgbm


def rounds_grid(n_rounds: int, max_candidates: int) -> list[int]:
    """Every round count when few, else ``max_candidates`` spread over 1..n (n included)."""
    if n_rounds <= max_candidates:
        return list(range(1, n_rounds + 1))
    return sorted({int(v) for v in np.linspace(1, n_rounds, max_candidates).round()})


def truncate_lightgbm(est: Any, n_rounds: int) -> Any:
    """Copy of a fitted LGBM estimator keeping its first ``n_rounds`` boosting rounds."""
    lgb = _lightgbm()
    booster = est.booster_
    total = booster.current_iteration()
    if not 1 <= n_rounds <= total:
        raise ValueError(f"n_rounds must be in [1, {total}], got {n_rounds}")
    small = lgb.Booster(model_str=booster.model_to_string(num_iteration=n_rounds))
    new = copy.deepcopy(est, memo={id(booster): small})
    new._best_iteration = -1
    new.n_estimators = n_rounds
    return new


def prune_lightgbm(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                   max_candidates: int) -> Outcome:
    """Fewest rounds from which on every longer prefix scores at least ``floor``."""
    _lightgbm()
    classifier = hasattr(est, "classes_")
    n = est.booster_.current_iteration()
    stages = [(float(k), score_predictions(classifier, y, est.predict(X, num_iteration=k)))
              for k in rounds_grid(n, max(max_candidates, 2))]
    k = stable_prefix(stages, floor)
    return Outcome(truncate_lightgbm(est, k), "boosting round truncation",
                   {"n_estimators": float(k)}, stages)
