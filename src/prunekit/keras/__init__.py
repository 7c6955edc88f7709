"""Keras 3 (torch backend): TF-MOT-shaped weight pruning and structural pruning.

``import prunekit.keras as tfmot_sparsity`` style: ``prune_low_magnitude``, ``ConstantSparsity``,
``PolynomialDecay``, ``UpdatePruningStep``, ``strip_pruning`` keep TF-MOT's names and semantics;
``prune_structured`` rebuilds a smaller model. Needs the ``keras`` extra and
``KERAS_BACKEND=torch``.
"""

from prunekit.keras._backend import KerasBackendError, require_torch_keras

require_torch_keras()

from prunekit.keras.api import (  # noqa: E402
    UpdatePruningStep, collect_prunable_layers, prune_low_magnitude, prune_scope, strip_pruning,
)
from prunekit.keras.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule  # noqa: E402
from prunekit.keras.structured import (  # noqa: E402
    KerasStructuredConfig, KerasStructuredPlan, plan_structured, prune_structured,
)
from prunekit.keras.wrapper import PruneLowMagnitude  # noqa: E402

__all__ = ["ConstantSparsity", "KerasBackendError", "KerasStructuredConfig", "KerasStructuredPlan",
           "PolynomialDecay", "PruneLowMagnitude", "plan_structured", "prune_structured",
           "PruningSchedule", "UpdatePruningStep", "collect_prunable_layers",
           "prune_low_magnitude", "prune_scope", "strip_pruning"]
