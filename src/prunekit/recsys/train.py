"""Trainers for explicit (rating regression, RMSE) and implicit (sampled negatives, BCE)
feedback. Implicit training follows NCF (He et al., WWW 2017): each observed pair is a positive,
``negatives`` unobserved items per positive are drawn afresh every epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.recsys.data import Interactions

StepHook = Callable[[int], None]
EpochHook = Callable[[int], bool]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both trainers (Adam)."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 1024
    weight_decay: float = 0.0
    negatives: int = 4
    seed: int = 0
    distill: float = 0.0
    temperature: float = 1.0
    distill_items: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")
        if not 0.0 <= self.distill <= 1.0:
            raise ValueError(f"distill must be in [0, 1], got {self.distill}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.distill_items < 0:
            raise ValueError(f"distill_items must be >= 0, got {self.distill_items}")


def seen_matrix(log: Interactions) -> Tensor:
    """``(n_users, n_items)`` bool matrix of observed pairs."""
    seen = torch.zeros(log.n_users, log.n_items, dtype=torch.bool)
    seen[log.users, log.items] = True
    return seen


def sample_negatives(users: Tensor, seen: Tensor, n: int, gen: torch.Generator) -> Tensor:
    """``(len(users), n)`` item ids each user has not interacted with (rejection sampling)."""
    items = torch.randint(0, seen.shape[1], (users.numel(), n), generator=gen)
    for _ in range(50):
        bad = seen[users.unsqueeze(1).expand_as(items), items]
        if not bad.any():
            break
        items[bad] = torch.randint(0, seen.shape[1], (int(bad.sum()),), generator=gen)
    return items


def _check_log(log: Interactions, model: nn.Module, where: str) -> None:
    if len(log) == 0:
        raise ValueError(f"{where}: the interaction log is empty")
    for attr, size in (("n_users", log.n_users), ("n_items", log.n_items)):
        own = getattr(model, attr, None)
        if own is not None and own != size:
            raise ValueError(f"{where}: the log has {attr}={size}, the model {own}")


def _score(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    return model.score if hasattr(model, "score") else model


def _loop(model: nn.Module, n: int, cfg: TrainConfig, batch_loss: Callable[[Tensor, int], Tensor],
          on_step: StepHook | None, params: list | None,
          on_epoch: EpochHook | None = None) -> list[float]:
    opt = torch.optim.Adam(params or [p for p in model.parameters() if p.requires_grad],
                           lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    history, step = [], 0
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            if on_step is not None:
                on_step(step)
            idx = perm[start:start + cfg.batch_size]
            loss = batch_loss(idx, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
            step += 1
        history.append(total / n)
        if on_epoch is not None and on_epoch(len(history)):
            break
    model.eval()
    return history


def steps_per_epoch(log: Interactions, cfg: TrainConfig) -> int:
    return -(-len(log) // cfg.batch_size)


def train_explicit(model: nn.Module, train: Interactions, cfg: TrainConfig | None = None,
                   on_step: StepHook | None = None, params: list | None = None,
                   on_epoch: EpochHook | None = None) -> list[float]:
    """Fit ratings with mean squared error; returns the per-epoch training MSE."""
    cfg = cfg or TrainConfig()
    _check_log(train, model, "train_explicit")
    score = _score(model)

    def batch_loss(idx: Tensor, _step: int) -> Tensor:
        return F.mse_loss(score(train.users[idx], train.items[idx]), train.ratings[idx])

    return _loop(model, len(train), cfg, batch_loss, on_step, params, on_epoch)


def implicit_loss(model: nn.Module, users: Tensor, pos: Tensor, neg: Tensor,
                  teacher: nn.Module | None = None, distill: float = 0.0,
                  temperature: float = 1.0, extra: Tensor | None = None) -> Tensor:
    """BCE of one positive and ``neg.shape[1]`` negatives per row.

    With a ``teacher``, ``distill`` of the loss is the BCE against the teacher's probabilities
    ``sigmoid(t / temperature)`` on the same pairs (Hinton et al., "Distilling the Knowledge in
    a Neural Network", 2015; logits distillation of sampled pairs as in Tang & Wang, "Ranking
    Distillation", KDD 2018), the rest the BCE against the observed labels. ``extra``
    (``(B, m)`` item ids, e.g. drawn uniformly from the catalogue) adds pairs that enter only
    the distillation term, so the student also learns the teacher's scores of items that are
    neither the positive nor a sampled negative.
    """
    score = _score(model)
    u = users.unsqueeze(1).expand(-1, 1 + neg.shape[1]).reshape(-1)
    items = torch.cat([pos.unsqueeze(1), neg], 1).reshape(-1)
    logits = score(u, items)
    target = torch.zeros_like(logits).view(-1, 1 + neg.shape[1])
    target[:, 0] = 1.0
    loss = F.binary_cross_entropy_with_logits(logits, target.reshape(-1))
    if teacher is None or distill == 0.0:
        return loss
    if extra is not None and extra.numel():
        u = torch.cat([u, users.unsqueeze(1).expand(-1, extra.shape[1]).reshape(-1)])
        items = torch.cat([items, extra.reshape(-1)])
        logits = torch.cat([logits, score(u[logits.numel():], items[logits.numel():])])
    with torch.no_grad():
        soft = torch.sigmoid(_score(teacher)(u, items) / temperature)
    kd = F.binary_cross_entropy_with_logits(logits / temperature, soft) * temperature ** 2
    return (1.0 - distill) * loss + distill * kd


def train_implicit(model: nn.Module, train: Interactions, cfg: TrainConfig | None = None,
                   on_step: StepHook | None = None, params: list | None = None,
                   on_epoch: EpochHook | None = None,
                   teacher: nn.Module | None = None) -> list[float]:
    """Fit observed pairs against sampled negatives with BCE; returns per-epoch loss.

    ``on_step(t)`` runs before optimizer step ``t`` (used by gradual pruning schedules);
    ``on_epoch(e)`` after epoch ``e`` (1-based) and stops training when it returns ``True``
    (validation early stopping, :class:`prunekit.recsys.select.BestOnValidation`);
    ``params`` (parameters or Adam parameter groups) defaults to every trainable parameter;
    ``teacher`` (with ``cfg.distill > 0``) adds knowledge distillation (:func:`implicit_loss`;
    ``cfg.distill_items`` uniformly drawn items per positive enter its distillation term only).
    """
    cfg = cfg or TrainConfig()
    _check_log(train, model, "train_implicit")
    seen = seen_matrix(train)
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    def batch_loss(idx: Tensor, _step: int) -> Tensor:
        users = train.users[idx]
        neg = sample_negatives(users, seen, cfg.negatives, gen)
        extra = None
        if teacher is not None and cfg.distill and cfg.distill_items:
            extra = torch.randint(0, train.n_items, (users.numel(), cfg.distill_items),
                                  generator=gen)
        return implicit_loss(model, users, train.items[idx], neg, teacher, cfg.distill,
                             cfg.temperature, extra)

    if teacher is not None:
        teacher.eval()
    return _loop(model, len(train), cfg, batch_loss, on_step, params, on_epoch)
