"""Model selection on a held-out validation split (never on the test split).

The leave-one-out protocol (He et al., "Neural Collaborative Filtering", WWW 2017) holds out each
user's latest interaction for testing; :func:`validation_split` holds out each user's latest
*training* interaction for validation, so epochs and hyperparameters are chosen on data the test
never sees. :class:`BestOnValidation` evaluates NDCG@k after every epoch (an ``on_epoch`` hook of
the trainers), keeps the best weights and stops after ``patience`` epochs without improvement.
:func:`fit_validated` runs a trainer with it and restores the best weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from prunekit.recsys.data import Interactions, leave_one_out
from prunekit.recsys.metrics import evaluate_ranking
from prunekit.recsys.train import StepHook, TrainConfig, train_implicit


def validation_split(train: Interactions) -> tuple[Interactions, Interactions]:
    """``(fit, validation)``: each user's latest training interaction is held out."""
    return leave_one_out(train)


@dataclass
class ValidationResult:
    """Best validation NDCG@k, the epoch it was reached, and the per-epoch curve."""

    best: float = -1.0
    best_epoch: int = 0
    curve: list[float] = field(default_factory=list)


class BestOnValidation:
    """``on_epoch`` hook: NDCG@k on ``val`` after each epoch, best weights kept, early stop.

    Args:
        model: the model being trained (its ``state_dict`` is snapshot at each improvement).
        fit: the training log (its pairs are excluded from the ranking candidates).
        val: one held-out positive per user.
        patience: epochs without improvement before stopping.
        negatives: sampled candidates per positive (``None``: full ranking).
        min_epoch: epochs before it are not candidates (e.g. while a pruning schedule is still
            raising the sparsity) and do not count toward ``patience``.
        prepare: called before each evaluation (e.g. a mask holder's ``apply``: the optimizer
            step that ended the epoch moved the pruned entries off zero).
    """

    def __init__(self, model: nn.Module, fit: Interactions, val: Interactions, k: int = 10,
                 patience: int = 5, negatives: int | None = 99, seed: int = 0,
                 min_epoch: int = 1, prepare: Callable[[], None] | None = None) -> None:
        if patience < 1:
            raise ValueError(f"BestOnValidation: patience must be >= 1, got {patience}")
        if len(val) == 0:
            raise ValueError("BestOnValidation: the validation log is empty")
        self.model, self.fit, self.val = model, fit, val
        self.k, self.patience, self.negatives, self.seed = k, patience, negatives, seed
        self.min_epoch, self.prepare = min_epoch, prepare
        self.result = ValidationResult()
        self._state: dict | None = None

    def score(self) -> float:
        return evaluate_ranking(self.model, self.val, k=self.k, train=self.fit,
                                negatives=self.negatives, seed=self.seed)[f"ndcg@{self.k}"]

    def __call__(self, epoch: int) -> bool:
        if self.prepare is not None:
            self.prepare()
        value = self.score()
        self.result.curve.append(value)
        if epoch < self.min_epoch:
            return False
        if value > self.result.best:
            self.result.best, self.result.best_epoch = value, epoch
            self._state = copy.deepcopy(self.model.state_dict())
        return epoch - max(self.result.best_epoch, self.min_epoch - 1) >= self.patience

    def restore(self) -> ValidationResult:
        """Load the best weights into the model (no-op before the first epoch)."""
        if self._state is not None:
            self.model.load_state_dict(self._state)
        return self.result


def fit_validated(model: nn.Module, fit: Interactions, val: Interactions, cfg: TrainConfig,
                  patience: int = 5, on_step: StepHook | None = None,
                  teacher: nn.Module | None = None, params: list | None = None,
                  min_epoch: int = 1) -> ValidationResult:
    """Train (implicit feedback) for at most ``cfg.epochs``, keep the epoch (from
    ``min_epoch``) with the best validation NDCG@10, restore its weights; return the
    validation curve. The validation candidates are the same for every call. An ``on_step``
    hook with an ``apply()`` method (:class:`~prunekit.recsys.mixed.EntryMasks`,
    :class:`~prunekit.recsys.entries.GradualEntryMasks`) is applied before each evaluation and
    at the end, so the selected weights are the masked ones."""
    hook = BestOnValidation(model, fit, val, patience=patience, min_epoch=min_epoch,
                            prepare=getattr(on_step, "apply", None))
    train_implicit(model, fit, cfg, on_step=on_step, params=params, on_epoch=hook,
                   teacher=teacher)
    return hook.restore()
