"""``prune(estimator, X_val, y_val, max_drop)``: prune a fitted classical model, measured.

Dispatch is by estimator type through an explicit registry (:func:`register_pruner`);
every pruner takes ``(estimator, X_val, y_val, floor, config)`` — plus ``train=(X, y)``
when the caller passes training rows — and returns an
:class:`~prunekit.classic.trees.Outcome` whose validation score is at least ``floor``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunekit.classic import (boosters, ensembles, refine, serving, sizing, svm, treeselect,
                              trees)
from prunekit.classic.report import ClassicReport
from prunekit.classic.validation import (check_fitted, check_validation, is_classifier, score,
                                         sklearn)

Pruner = Callable[[Any, np.ndarray, np.ndarray, float, "ClassicConfig"], trees.Outcome]
Sizer = Callable[[Any, np.ndarray, np.ndarray, sizing.SizeTarget, "ClassicConfig"],
                 trees.Outcome]
_PRUNERS: dict[str, tuple[str, str, Pruner]] = {}
_SIZERS: dict[str, Sizer] = {}


@dataclass(frozen=True)
class ClassicConfig:
    """Options of :func:`prune` besides the allowed drop.

    Attributes:
        max_candidates: alphas scored per cost-complexity search.
        forest_max_fraction: largest share of a forest's trees the subset search considers.
        refine_boosting: with training rows, select boosting trees per class by an L1 fit on
            leaf indicators and re-fit their leaf values (``classic/treeselect.py``); off by
            default.
        refine_l2: L2 penalty (per training row) of that re-fit.
        refine_merge: share of sibling-leaf pairs of the kept boosting trees merged into one
            leaf (those whose re-fitted values differ least), in [0, 1).
        measure: time predict latency (dense vs pruned) into the report.
        batch_sizes: batch sizes to time.
        runtimes: "sklearn" and/or "onnxruntime" (through skl2onnx, where it converts).
        repeats / warmup: timed and untimed interleaved rounds per cell.
        clock: "wall" or "process_cpu" (CPU time of this process; all timing is 1 thread).
    """

    max_candidates: int = 48
    forest_max_fraction: float = 0.5
    refine_boosting: bool = False
    refine_l2: float = 1e-3
    refine_merge: float = 0.5
    measure: bool = True
    batch_sizes: tuple[int, ...] = (1, 10_000)
    runtimes: tuple[str, ...] = serving.RUNTIMES
    repeats: int = 15
    warmup: int = 2
    clock: str = "wall"

    def __post_init__(self) -> None:
        if not isinstance(self.max_candidates, int) or self.max_candidates < 2:
            raise ValueError(f"max_candidates must be an int >= 2, got {self.max_candidates!r}")
        if not 0 < self.forest_max_fraction <= 1:
            raise ValueError("forest_max_fraction must be in (0, 1], got "
                             f"{self.forest_max_fraction!r}")
        if not self.batch_sizes or any(not isinstance(b, int) or b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch_sizes must be positive ints, got {self.batch_sizes!r}")
        bad = set(self.runtimes) - set(serving.RUNTIMES)
        if bad:
            raise ValueError(f"runtimes must be among {serving.RUNTIMES}, got {sorted(bad)}")
        if not isinstance(self.repeats, int) or self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {self.repeats!r}, "
                             f"{self.warmup!r}")
        if isinstance(self.refine_l2, bool) or not isinstance(self.refine_l2, (int, float)) \
                or not 0 <= self.refine_l2 < float("inf"):
            raise ValueError(f"refine_l2 must be a finite number >= 0, got {self.refine_l2!r}")
        if isinstance(self.refine_merge, bool) or not isinstance(self.refine_merge, (int, float)) \
                or not 0 <= self.refine_merge < 1:
            raise ValueError(f"refine_merge must be a number in [0, 1), got {self.refine_merge!r}")
        serving.make_clock(self.clock)


def _key(module: str, name: str) -> str:
    return f"{module.split('.')[0]}.{name}"


def register_pruner(module: str, name: str, pruner: Pruner, sizer: Sizer | None = None
                    ) -> None:
    """Register ``pruner`` for the estimator class ``name`` of package ``module``.

    Lookup walks the estimator's MRO, so subclasses of a registered class are pruned by its
    pruner. A second registration of the same class is refused. ``sizer``, optional, serves
    ``prune(..., shrink=S)``: it takes ``(estimator, X_val, y_val, target, config)`` (plus
    ``train=``) with a :class:`~prunekit.classic.sizing.SizeTarget` and returns the most
    capable candidate that fits it (or raises :class:`~prunekit.classic.sizing.Unreachable`).
    """
    key = _key(module, name)
    if key in _PRUNERS:
        raise ValueError(f"a pruner for {key} is already registered")
    _PRUNERS[key] = (module, name, pruner)
    if sizer is not None:
        _SIZERS[key] = sizer


def supported() -> list[str]:
    """Class names :func:`prune` accepts (also as the last step of a ``Pipeline``)."""
    return sorted(name for _, name, _ in _PRUNERS.values())


def _sizer_for(est: Any) -> Sizer:
    for cls in type(est).__mro__:
        key = _key(cls.__module__, cls.__name__)
        if key in _PRUNERS:
            if key not in _SIZERS:
                break
            return _SIZERS[key]
    raise ValueError(f"shrink is not supported for {type(est).__name__}; it is for "
                     f"{', '.join(sorted(k.split('.', 1)[1] for k in _SIZERS))}")


def _pruner_for(est: Any) -> Pruner:
    for cls in type(est).__mro__:
        hit = _PRUNERS.get(_key(cls.__module__, cls.__name__))
        if hit is not None:
            return hit[2]
    raise ValueError(f"estimator type {type(est).__name__} is not supported; supported: "
                     f"{', '.join(supported())} (or a Pipeline ending in one of them)")


def _tree(est, X, y, floor, cfg, train=None):
    return trees.prune_decision_tree(est, X, y, floor, cfg.max_candidates)


def _forest(est, X, y, floor, cfg, train=None):
    return ensembles.prune_forest(est, X, y, floor, cfg.max_candidates, cfg.forest_max_fraction,
                                  train)


def _boost(est, X, y, floor, cfg, train=None):
    if train is not None and cfg.refine_boosting and refine.refinable(est):
        return treeselect.prune_boosting_selected(est, X, y, floor, train, cfg.refine_l2,
                                                  cfg.refine_merge)
    return ensembles.prune_boosting(est, X, y, floor, cfg.max_candidates)


def _svm(est, X, y, floor, cfg, train=None):
    return svm.prune_svm(est, X, y, floor)


for _name in ("DecisionTreeClassifier", "DecisionTreeRegressor"):
    register_pruner("sklearn.tree", _name, _tree, sizing.size_tree)
for _name in ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
              "ExtraTreesRegressor"):
    register_pruner("sklearn.ensemble", _name, _forest, sizing.size_forest)
for _name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
    register_pruner("sklearn.ensemble", _name, _boost, sizing.size_boosting)
for _name in ("SVC", "NuSVC", "SVR", "NuSVR"):
    register_pruner("sklearn.svm", _name, _svm, sizing.size_svm)


def _lgbm(est, X, y, floor, cfg, train=None):
    return boosters.prune_lightgbm(est, X, y, floor, cfg.max_candidates)


for _name in ("LGBMClassifier", "LGBMRegressor"):
    register_pruner("lightgbm", _name, _lgbm, sizing.size_lightgbm)


def _split_pipeline(est: Any, X: np.ndarray) -> tuple[Any, np.ndarray]:
    if getattr(est, "steps", None):
        return est.steps[-1][1], (est[:-1].transform(X) if len(est.steps) > 1 else X)
    return est, X


def _join_pipeline(est: Any, final: Any) -> Any:
    if not getattr(est, "steps", None):
        return final
    last = est.steps[-1][1]
    return copy.deepcopy(est, memo={id(last): final})


def prune(estimator: Any, X_val: Any, y_val: Any, max_drop: float = 0.005, *,
          X_train: Any = None, y_train: Any = None,
          config: ClassicConfig | None = None, shrink: float | None = None
          ) -> tuple[Any, ClassicReport]:
    """Prune a fitted scikit-learn model, choosing the amount on validation data.

    Decision trees: minimal cost-complexity pruning computed on the fitted tree (no refit).
    Random forests / extra trees: greedy tree-subset selection, then one cost-complexity
    alpha for every kept tree; given the training rows, a bagged forest also scores its
    candidates on them, each row by its out-of-bag trees only. Gradient boosting: stage
    truncation (plus cost-complexity pruning of each stage under squared-error loss); given
    the training rows and ``ClassicConfig(refine_boosting=True)``, the trees each class keeps
    are chosen by an L1 fit on leaf indicators and their leaf values re-fitted on those rows.
    LightGBM's LGBMClassifier/LGBMRegressor:
    boosting-round truncation. SVC/NuSVC/SVR/NuSVR: support-vector
    reduction with a least-squares re-fit of the dual coefficients. A ``Pipeline`` ending in
    one of these has its last step pruned.

    Args:
        estimator: a fitted estimator (left untouched; the result is a new object of the same type).
        X_val: validation features ``(n, n_features)``; y_val: labels or targets ``(n,)``.
        max_drop: allowed drop of validation accuracy (classifiers) or R^2 (regressors).
        X_train / y_train: optional, the rows the estimator was fitted on (bagged forests:
            out-of-bag scoring; gradient boosting: leaf refinement when
            ``config.refine_boosting``); other estimators ignore them.
        config: :class:`ClassicConfig` (measurement and search options).
        shrink: a size target instead of a choice by validation: the result is at least
            ``shrink`` (> 1) times smaller in pickle bytes than ``estimator``, and is the most
            capable candidate of that size (most leaves, trees, stages or support vectors).
            ``max_drop`` is then not a constraint: the report states the validation drop, and
            a ``UserWarning`` says when it exceeds ``max_drop``.

    Returns:
        ``(pruned_estimator, report)``; ``report.summary()`` prints the before/after table.

    Raises:
        ValueError: unfitted or unsupported estimator (the message lists the supported
            types), validation data that does not fit it (unseen classes, wrong feature count),
            a ``shrink`` no candidate reaches (the message gives the smallest ratio).

    References:
        Breiman et al., "Classification and Regression Trees", 1984; Caruana et al.,
        "Ensemble Selection from Libraries of Models", ICML 2004; Burges, "Simplified Support
        Vector Decision Rules", ICML 1996; Ren et al., "Global Refinement of Random
        Forest", CVPR 2015 (leaf refinement); Friedman & Popescu, "Predictive Learning via
        Rule Ensembles", 2008 (L1 on tree leaves).
    """
    sklearn()
    cfg = config or ClassicConfig()
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) \
            or not 0 <= max_drop < 1:
        raise ValueError(f"max_drop must be a number in [0, 1), got {max_drop!r}")
    _check_shrink(shrink)
    core = serving.final_step(estimator)
    pruner = _pruner_for(core) if shrink is None else _sizer_for(core)
    check_fitted(estimator)
    X, y = check_validation(estimator, X_val, y_val)
    _, Xc = _split_pipeline(estimator, X)
    if shrink is None and X_train is None and is_classifier(estimator):
        _warn_small_validation(max_drop, y.shape[0])
    before = score(estimator, X, y)
    if (X_train is None) != (y_train is None):
        raise ValueError("pass both X_train and y_train, or neither")
    kw = {}
    if X_train is not None:
        Xt, yt = check_validation(estimator, X_train, y_train, ("X_train", "y_train"))
        kw["train"] = (_split_pipeline(estimator, Xt)[1], yt)
    if shrink is None:
        outcome = pruner(core, Xc, y, before - max_drop, cfg, **kw)
    else:
        outcome = _to_size(estimator, core, pruner, Xc, y, float(shrink), cfg, kw)
    pruned = _join_pipeline(estimator, outcome.estimator)
    rep = _report(estimator, pruned, outcome, X, y, before, max_drop, cfg, shrink)
    if shrink is not None and rep.drop > max_drop:
        warnings.warn(f"shrink={shrink}: the validation {rep.metric} dropped by "
                      f"{rep.drop:.4f}, more than max_drop={max_drop}", UserWarning,
                      stacklevel=2)
    return pruned, rep


def _warn_small_validation(max_drop: float, n_rows: int) -> None:
    if 0 < max_drop < 1.0 / n_rows:
        warnings.warn(f"one validation row is {1.0 / n_rows:.4f} of accuracy, more than "
                      f"max_drop={max_drop}: with {n_rows} rows the choice can only keep "
                      "the validation accuracy unchanged, and small sets favour lucky prefixes; "
                      "check the result on held-out data, or pass X_train/y_train",
                      UserWarning, stacklevel=3)


def _check_shrink(shrink: Any) -> None:
    if shrink is None:
        return
    if isinstance(shrink, bool) or not isinstance(shrink, (int, float)) \
            or not 1 < shrink < float("inf"):
        raise ValueError(f"shrink must be a finite number > 1 (times smaller), got {shrink!r}")


def _to_size(estimator: Any, core: Any, sizer: Sizer, Xc: np.ndarray, y: np.ndarray,
             shrink: float, cfg: ClassicConfig, kw: dict) -> trees.Outcome:
    """The sizer's candidate whose whole model (pipeline included) is ``shrink`` x smaller."""
    dense_bytes = sizing.pickle_bytes(estimator)
    target = sizing.SizeTarget(
        lambda c: sizing.pickle_bytes(_join_pipeline(estimator, c)), dense_bytes / shrink)
    try:
        return sizer(core, Xc, y, target, cfg, **kw)
    except sizing.Unreachable as exc:
        raise ValueError(f"shrink={shrink} cannot be reached for {type(core).__name__}: the "
                         f"smallest candidate is {dense_bytes / exc.smallest:.2f}x smaller "
                         f"({exc.smallest} of {dense_bytes} pickle bytes)") from None


def _report(dense: Any, pruned: Any, outcome: trees.Outcome, X: np.ndarray, y: np.ndarray,
            before: float, max_drop: float, cfg: ClassicConfig,
            shrink: float | None = None) -> ClassicReport:
    want_onnx = cfg.measure and "onnxruntime" in cfg.runtimes
    size_b, onx_b = serving.describe(dense, X, onnx=want_onnx)
    size_a, onx_a = serving.describe(pruned, X, onnx=want_onnx)
    latency = ()
    if cfg.measure:
        latency = tuple(serving.compare(dense, pruned, X, batch_sizes=cfg.batch_sizes,
                                        runtimes=cfg.runtimes, onnx=(onx_b, onx_a),
                                        repeats=cfg.repeats, warmup=cfg.warmup, clock=cfg.clock))
    agree = serving.onnx_agreement(pruned, onx_a, X) if onx_a is not None else None
    return ClassicReport(
        estimator=type(pruned).__name__ if not getattr(pruned, "steps", None)
        else f"Pipeline({type(serving.final_step(pruned)).__name__})",
        method=outcome.method, metric="accuracy" if is_classifier(dense) else "r2",
        max_drop=float(max_drop), amount=dict(outcome.amount), val_before=before,
        val_after=score(pruned, X, y), before=size_b, after=size_a, latency=latency,
        candidates=tuple(outcome.candidates), clock=cfg.clock, onnx_agreement=agree,
        shrink=None if shrink is None else float(shrink))
