"""Recovery: schedules, fine-tuning, distillation, DDP, resumable checkpoints."""

from prunekit.recover.recipe import (
    METHODS, Cubic, Distill, Finetune, Iterative, OneShot, Recipe, TargetSpec, target_amount,
)
from prunekit.recover.schedules import amount_at, cubic_sparsity, events, nm_level

__all__ = [
    "METHODS", "Cubic", "Distill", "Finetune", "Iterative", "OneShot", "Recipe", "TargetSpec",
    "amount_at", "cubic_sparsity", "events", "nm_level", "target_amount",
]
