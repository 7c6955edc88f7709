"""Recovery: schedules, fine-tuning, distillation, DDP, resumable checkpoints (issue 4)."""

from prunekit.recover.recipe import (
    METHODS, Cubic, Distill, Finetune, Iterative, OneShot, Recipe, Target, target_amount,
)
from prunekit.recover.schedules import amount_at, cubic_sparsity, events, nm_level

__all__ = [
    "METHODS", "Cubic", "Distill", "Finetune", "Iterative", "OneShot", "Recipe", "Target",
    "amount_at", "cubic_sparsity", "events", "nm_level", "target_amount",
]
