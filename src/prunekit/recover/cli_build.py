"""Build model and loaders from a recipe's ``model``/``data`` (the CLI's edge, DDP-aware)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunekit.io import import_factory, load_weights
from prunekit.recover import ddp
from prunekit.recover.recipe import DataSpec, Recipe
from prunekit.recover.tasks import build_model, load_task


def build_datasets(spec: DataSpec) -> tuple[Dataset, Dataset]:
    if spec.name.startswith("module:"):
        try:
            train, val = import_factory(spec.name[len("module:"):])()
        except (ImportError, AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"data.name: cannot build {spec.name!r}: {e}") from e
        if spec.limit is not None:
            idx = range(min(spec.limit, len(train)))
            train = torch.utils.data.Subset(train, list(idx))
            val = torch.utils.data.Subset(val, list(range(min(spec.limit, len(val)))))
        return train, val
    return load_task(spec.name, spec.limit)


def build_loaders(recipe: Recipe, eval_batch: int = 256) -> tuple[DataLoader, DataLoader]:
    """Training loader sharded over ranks (global batch = ``finetune.batch_size``, the last one
    partial and split like the others), full val."""
    if recipe.data is None:
        raise ValueError("data: the recipe names no data (e.g. data: digits)")
    train, val = build_datasets(recipe.data)
    world = ddp.world_size()
    batch = recipe.finetune.batch_size
    if batch % world:
        raise ValueError(f"finetune.batch_size: {batch} is not divisible by the {world} processes")
    sampler = ddp.GlobalBatchSampler(len(train), batch, world, ddp.rank(),
                                     shuffle=recipe.data.shuffle, seed=recipe.seed)
    return DataLoader(train, batch_sampler=sampler), DataLoader(val, batch_size=eval_batch)


def build_recipe_model(recipe: Recipe, weights: str | Path | None = None) -> nn.Module:
    """The recipe's model, initialised from ``recipe.seed`` (identical on every rank)."""
    if recipe.model is None:
        raise ValueError("model: the recipe names no model (e.g. model: prunekit:cnn2d)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = build_model(recipe.model)
    if weights is not None:
        state = load_weights(weights)  # safetensors, or .pt/.pth read with weights_only
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shapes differ
            first = str(e).strip().splitlines()[-1].strip()
            raise ValueError(f"--weights {weights}: tensors do not fit {recipe.model} ({first})"
                             ) from None
        if missing or unexpected:
            raise ValueError(f"--weights {weights}: keys do not match {recipe.model} "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


__all__ = ["build_datasets", "build_loaders", "build_recipe_model"]
