"""Pruning fitted classical models (scikit-learn trees, forests, boosting, SVMs), measured.

>>> small, report = prune(forest, X_val, y_val, max_drop=0.005)
>>> print(report.summary())

scikit-learn (and skl2onnx for the ONNX Runtime figures) come with ``pip install 'prunekit[classic]'``.
"""

from prunekit.classic.api import ClassicConfig, prune, register_pruner, supported
from prunekit.classic.ccp import collapse_sequence, prune_tree, pruning_path
from prunekit.classic.report import ClassicReport
from prunekit.classic.serving import LatencyRow, ModelSize
from prunekit.classic.svm import reduce_svm

__all__ = ["ClassicConfig", "ClassicReport", "LatencyRow", "ModelSize", "collapse_sequence",
           "prune", "prune_tree", "pruning_path", "reduce_svm", "register_pruner", "supported"]
