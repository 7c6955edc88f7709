"""Minimal cost-complexity pruning of an already fitted scikit-learn tree, without refitting.

scikit-learn prunes only while fitting (``ccp_alpha``): it grows the full tree, then removes
the weakest links. This module runs the same weakest-link procedure on the ``tree_`` arrays of
a tree that is already fitted (node impurities weighted by ``weighted_n_node_samples``, the
effective alpha of every branch, the branch with the smallest one collapsed first) and builds
a new ``sklearn.tree._tree.Tree`` from the kept nodes through ``Tree.__setstate__``. The
arithmetic and the order of operations follow scikit-learn's ``_cost_complexity_prune`` so
that, at the same alpha, the pruned tree equals the one ``fit(..., ccp_alpha=alpha)`` builds.

Reference: L. Breiman, J. Friedman, R. Olshen, C. Stone, "Classification and Regression
Trees", Wadsworth 1984, chapter 3 (minimal cost-complexity pruning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LEAF = -1
_UNDEFINED = -2


@dataclass(frozen=True)
class PruningPath:
    """The nested sequence of subtrees weakest-link pruning visits.

    Attributes:
        ccp_alphas: effective alpha at which each branch collapses, ascending (first entry 0).
        impurities: total weighted leaf impurity of the subtree kept at that alpha.
        n_leaves: number of leaves of the subtree kept at that alpha.
    """

    ccp_alphas: np.ndarray
    impurities: np.ndarray
    n_leaves: np.ndarray


def _parents(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    parent = np.full(left.shape[0], _UNDEFINED, dtype=np.intp)
    internal = np.flatnonzero(left != _LEAF)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    return parent


def _ancestor_pairs(parent: np.ndarray, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ancestor, leaf) pairs ordered by leaf index, then from the leaf upwards."""
    anc, src = [], []
    for leaf in leaves:
        node = leaf
        while node != 0:
            node = parent[node]
            anc.append(node)
            src.append(leaf)
    return np.asarray(anc, dtype=np.intp), np.asarray(src, dtype=np.intp)


@dataclass(frozen=True)
class CollapseSequence:
    """Branches in the order weakest-link pruning collapses them, with their effective alphas.

    Pruning at ``ccp_alpha`` applies the longest prefix whose alphas are all ``<= ccp_alpha``
    (scikit-learn stops at the first branch whose alpha exceeds it).
    """

    nodes: np.ndarray
    alphas: np.ndarray
    impurities: np.ndarray
    n_leaves: np.ndarray
    initial_impurity: float
    initial_leaves: int

    def steps(self, ccp_alpha: float) -> int:
        """Number of collapses applied at ``ccp_alpha``."""
        above = np.flatnonzero(self.alphas > ccp_alpha)
        return int(above[0]) if above.size else int(self.alphas.size)


def collapse_sequence(tree) -> CollapseSequence:
    """Run weakest-link pruning on a fitted ``tree_`` down to its root, recording each step."""
    left, right = tree.children_left, tree.children_right
    n_nodes = left.shape[0]
    weights = tree.weighted_n_node_samples
    r_node = weights * tree.impurity / weights[0]
    parent = _parents(left, right)
    is_leaf = left == _LEAF
    leaves = np.flatnonzero(is_leaf)

    r_branch = np.zeros(n_nodes, dtype=np.float64)
    n_leaves = np.zeros(n_nodes, dtype=np.intp)
    r_branch[leaves] = r_node[leaves]
    anc, src = _ancestor_pairs(parent, leaves)
    if anc.size:
        np.add.at(r_branch, anc, r_node[src])  # sequential, in leaf order, like scikit-learn
        np.add.at(n_leaves, anc, 1)

    candidate = ~is_leaf
    start = (float(r_branch[0]), int(leaves.size))
    nodes, alphas, impurities, counts = [], [], [], []
    total_leaves = int(leaves.size)
    while candidate[0]:
        idx = np.flatnonzero(candidate)
        with np.errstate(divide="ignore", invalid="ignore"):
            sub = (r_node[idx] - r_branch[idx]) / (n_leaves[idx] - 1)
        node = int(idx[np.argmin(sub)])  # first minimum, as scikit-learn's strict "<" scan
        _clear_subtree(node, left, right, candidate)
        pruned = n_leaves[node] - 1
        total_leaves -= int(pruned)
        n_leaves[node] = 0
        r_diff = r_node[node] - r_branch[node]
        r_branch[node] = r_node[node]
        up = parent[node]
        while up != _UNDEFINED:
            n_leaves[up] -= pruned
            r_branch[up] += r_diff
            up = parent[up]
        nodes.append(node)
        alphas.append(float(sub.min()))
        impurities.append(r_branch[0])
        counts.append(total_leaves)
    return CollapseSequence(np.asarray(nodes, dtype=np.intp), np.asarray(alphas, dtype=np.float64),
                            np.asarray(impurities, dtype=np.float64), np.asarray(counts, dtype=np.intp), *start)


def _clear_subtree(node: int, left, right, flags: np.ndarray) -> None:
    stack = [node]
    while stack:
        i = stack.pop()
        flags[i] = False
        if left[i] != _LEAF:
            stack.extend((left[i], right[i]))


def _leaf_mask(tree, seq: CollapseSequence, steps: int) -> np.ndarray:
    left, right = tree.children_left, tree.children_right
    mask = left == _LEAF
    for node in seq.nodes[:steps]:
        _clear_subtree(int(node), left, right, mask)
        mask[node] = True
    return mask


def pruning_path(tree) -> PruningPath:
    """Effective alphas and impurities of the full weakest-link sequence of a fitted ``tree_``.

    Equals ``estimator.cost_complexity_pruning_path(X_train, y_train)`` for the data the tree
    was fitted on, computed from the tree alone.
    """
    seq = collapse_sequence(tree)
    return PruningPath(np.concatenate(([0.0], seq.alphas)),
                       np.concatenate(([seq.initial_impurity], seq.impurities)),
                       np.concatenate(([seq.initial_leaves], seq.n_leaves)))


def _kept_order(left, right, leaf_mask: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Pre-order (left first) walk of the kept nodes: original ids, new left, new right."""
    order: list[int] = []
    new_left: list[int] = []
    new_right: list[int] = []
    stack: list[tuple[int, int, bool]] = [(0, -1, False)]
    while stack:
        orig, par, is_left = stack.pop()
        new_id = len(order)
        order.append(orig)
        new_left.append(_LEAF)
        new_right.append(_LEAF)
        if par >= 0:
            (new_left if is_left else new_right)[par] = new_id
        if not leaf_mask[orig]:
            stack.append((int(right[orig]), new_id, False))
            stack.append((int(left[orig]), new_id, True))
    return order, new_left, new_right


def _depths(new_left: list[int], new_right: list[int]) -> int:
    depth = [0] * len(new_left)
    for i, (lc, rc) in enumerate(zip(new_left, new_right, strict=True)):
        if lc != _LEAF:
            depth[lc] = depth[rc] = depth[i] + 1
    return max(depth)


def prune_tree(tree, ccp_alpha: float, sequence: CollapseSequence | None = None):
    """A new ``Tree`` holding ``tree`` pruned at ``ccp_alpha`` (``tree`` is left untouched).

    Args:
        tree: a fitted ``sklearn.tree._tree.Tree`` (``estimator.tree_``).
        ccp_alpha: complexity parameter; branches whose effective alpha is at most this collapse.
        sequence: ``collapse_sequence(tree)`` when already computed (pruning one tree at many
            alphas then costs one pass).
    """
    if not np.isfinite(ccp_alpha) or ccp_alpha < 0:
        raise ValueError(f"ccp_alpha must be a finite number >= 0, got {ccp_alpha!r}")
    seq = sequence if sequence is not None else collapse_sequence(tree)
    return rebuild_tree(tree, _leaf_mask(tree, seq, seq.steps(ccp_alpha)))


def rebuild_tree(tree, leaf_mask: np.ndarray):
    """A new ``Tree`` keeping the nodes of ``tree`` above and at ``leaf_mask`` (new leaves)."""
    from sklearn.tree._tree import Tree

    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    order, new_left, new_right = _kept_order(nodes["left_child"], nodes["right_child"], leaf_mask)
    kept = nodes[np.asarray(order, dtype=np.intp)].copy()
    kept["left_child"] = new_left
    kept["right_child"] = new_right
    leaf = leaf_mask[order]
    kept["feature"][leaf] = _UNDEFINED
    kept["threshold"][leaf] = _UNDEFINED
    kept["missing_go_to_left"][leaf] = 0
    new = Tree(tree.n_features, np.asarray(tree.n_classes, dtype=np.intp), tree.n_outputs)
    new.__setstate__({
        "max_depth": _depths(new_left, new_right),
        "node_count": len(order),
        "nodes": np.ascontiguousarray(kept),
        "values": np.ascontiguousarray(values[order]),
    })
    return new


def with_values(tree, values: np.ndarray):
    """A new ``Tree`` with the structure of ``tree`` and node values ``values``."""
    from sklearn.tree._tree import Tree

    state = tree.__getstate__()
    if values.shape != state["values"].shape:
        raise ValueError(f"values must have shape {state['values'].shape}, got {values.shape}")
    new = Tree(tree.n_features, np.asarray(tree.n_classes, dtype=np.intp), tree.n_outputs)
    new.__setstate__({**state, "values": np.ascontiguousarray(values, dtype=np.float64)})
    return new
