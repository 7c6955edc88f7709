"""Cost-complexity pruning of fitted decision trees, its amount chosen on validation data.

Every candidate alpha is scored without building a tree: a validation row's prediction after
the first ``k`` collapses of the weakest-link sequence is the value of the shallowest node on
its decision path that has collapsed (or of its leaf). Only the chosen alpha is built, with
:func:`prunekit.classic.ccp.prune_tree`.

Reference: Breiman et al., "Classification and Regression Trees", 1984, ch. 3.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunekit.classic.ccp import CollapseSequence, collapse_sequence, prune_tree
from prunekit.classic.validation import score_predictions

_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Outcome:
    """What a pruner chose: the pruned estimator, the amount, and every candidate it scored.

    Attributes:
        estimator: the pruned copy (same type as the input).
        method: short description of what was pruned.
        amount: the chosen setting (``{"ccp_alpha": ..., "n_estimators": ...}``).
        candidates: ``(setting, validation score)`` pairs in the order they were scored.
    """

    estimator: Any
    method: str
    amount: dict[str, float]
    candidates: list[tuple[float, float]] = field(default_factory=list)


class TreeOnData:
    """One fitted tree's collapse sequence and the decision paths of a fixed set of rows."""

    def __init__(self, tree_estimator: Any, X: np.ndarray) -> None:
        tree = tree_estimator.tree_
        if tree.n_outputs != 1:
            raise ValueError(f"{type(tree_estimator).__name__} has {tree.n_outputs} outputs; "
                             "only single-output trees are supported")
        self.tree = tree
        self.seq: CollapseSequence = collapse_sequence(tree)
        step = np.full(tree.node_count, _NEVER, dtype=np.int64)
        step[self.seq.nodes] = np.arange(self.seq.nodes.size)
        dp = tree_estimator.decision_path(X).tocsr()  # node ids rise along a path (root first)
        lengths = np.diff(dp.indptr)
        rows = np.repeat(np.arange(X.shape[0]), lengths)
        cols = np.arange(dp.indices.size) - np.repeat(dp.indptr[:-1], lengths)
        self.paths = np.full((X.shape[0], int(lengths.max())), -1, dtype=np.intp)
        self.paths[rows, cols] = dp.indices
        self.path_steps = np.where(self.paths >= 0, step[np.maximum(self.paths, 0)], _NEVER)
        self.leaf = self.paths[np.arange(X.shape[0]), lengths - 1]
        values = tree.value[:, 0, :]
        if values.shape[1] > 1:  # classifier: class fractions per node
            values = values / np.maximum(values.sum(axis=1, keepdims=True), 1e-300)
        self.values = values if values.shape[1] > 1 else values[:, 0]

    def nodes_after(self, steps: int) -> np.ndarray:
        """Node each row ends in once the first ``steps`` collapses are applied."""
        if steps <= 0:
            return self.leaf
        hit = self.path_steps < steps
        first = hit.argmax(axis=1)
        landed = self.paths[np.arange(self.paths.shape[0]), first]
        return np.where(hit.any(axis=1), landed, self.leaf)

    def predict_at(self, ccp_alpha: float) -> np.ndarray:
        """Node values (class fractions or regression value) per row at ``ccp_alpha``."""
        return self.values[self.nodes_after(self.seq.steps(ccp_alpha))]


def alpha_grid(sequences: list[CollapseSequence], max_candidates: int) -> np.ndarray:
    """Up to ``max_candidates`` alphas spread over the effective alphas of ``sequences`` (0 first)."""
    alphas = np.unique(np.concatenate([s.alphas for s in sequences] + [np.zeros(1)]))
    alphas = alphas[np.isfinite(alphas) & (alphas >= 0)]
    if alphas.size > max_candidates:
        idx = np.unique(np.round(np.linspace(0, alphas.size - 1, max_candidates)).astype(int))
        alphas = alphas[idx]
    return alphas


def largest_passing(candidates: list[tuple[float, float]], floor: float) -> float:
    """The largest setting whose validation score is at least ``floor`` (0 when none)."""
    passing = [a for a, s in candidates if s >= floor]
    return max(passing) if passing else 0.0


def with_tree(estimator: Any, tree: Any, ccp_alpha: float | None = None) -> Any:
    """Deep copy of a tree estimator holding ``tree`` as its ``tree_`` (the old one not copied)."""
    new = copy.deepcopy(estimator, memo={id(estimator.tree_): tree})
    if ccp_alpha is not None:
        new.ccp_alpha = float(ccp_alpha)
    return new


def rebuilt(est: Any, attr: str, kept: Any, new_trees: dict[int, Any],
            ccp_alpha: float | None = None) -> Any:
    """Deep copy of ensemble ``est`` whose ``attr`` holds copies of the ``kept`` sub-estimators.

    ``new_trees`` maps ``id(old.tree_)`` to the pruned ``Tree`` each copy gets instead of a copy
    of its old one; objects the sub-estimators share (a boosting ``RandomState``) stay shared.
    """
    shallow = copy.copy(est)
    setattr(shallow, attr, kept)
    new = copy.deepcopy(shallow, memo=dict(new_trees))
    if ccp_alpha is not None:
        for t in np.asarray(getattr(new, attr), dtype=object).ravel():
            t.ccp_alpha = float(ccp_alpha)
    return new


def labels(classes: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    """Class labels from class fractions (``classes`` given) or the values themselves."""
    return values if classes is None else classes[np.argmax(values, axis=-1)]


def prune_decision_tree(est: Any, X: np.ndarray, y: np.ndarray, floor: float,
                        max_candidates: int) -> Outcome:
    """Largest cost-complexity alpha whose validation score stays at or above ``floor``."""
    data = TreeOnData(est, X)
    classes = getattr(est, "classes_", None)
    candidates = []
    for alpha in alpha_grid([data.seq], max_candidates):
        pred = labels(classes, data.predict_at(alpha))
        candidates.append((float(alpha), score_predictions(classes is not None, y, pred)))
    alpha = largest_passing(candidates, floor)
    pruned = with_tree(est, prune_tree(est.tree_, alpha, data.seq), alpha)
    return Outcome(pruned, "cost-complexity pruning of the fitted tree", {"ccp_alpha": alpha},
                   candidates)
