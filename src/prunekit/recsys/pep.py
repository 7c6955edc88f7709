"""PEP: learnable embedding sizes by soft thresholding, searched from scratch, then retrained.

Liu et al., "Learnable Embedding Sizes for Recommender Systems" (PEP), ICLR 2021:

1. **Search.** Every table is re-parametrised as ``sign(v) * relu(|v| - sigmoid(s))``
   (:class:`~prunekit.recsys.tables.PEPEmbedding`) with learnable thresholds ``s`` (one per
   entry: the paper's feature-dimension granularity) starting very negative (``s_init=-15``, a
   threshold of ~3e-7, i.e. the dense model). Weights and thresholds are trained jointly with the
   task loss from the model's current (usually freshly initialised) weights; entries whose
   magnitude falls under their threshold become exactly zero and stay there (no gradient flows
   through ``relu`` at zero), so sparsity emerges from training. The search stops at the first
   step where the zeros over all tables reach the target; the non-zero pattern is the mask.
2. **Retrain.** As in the paper's lottery-ticket step, the model is rewound to its initial
   weights and retrained with the found mask fixed.

Tables that start all zero (e.g. MF biases) would never leave zero under the re-parametrisation;
they are trained without thresholds and kept whole (they still count in the sparsity).
If the search budget ends before the target sparsity, the mask keeps the largest ``1 - ratio``
soft-thresholded entries (:attr:`PEPSearch.reached` is ``False``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunekit.recsys.data import Interactions
from prunekit.recsys.tables import PEPEmbedding
from prunekit.recsys.train import TrainConfig, train_explicit, train_implicit


@dataclass(frozen=True)
class PEPConfig:
    """PEP settings.

    Args:
        granularity: threshold shape (``entry`` — the paper's feature-dimension granularity —,
            ``dimension``, ``feature``, ``global``).
        s_init: initial threshold logit (the paper starts near the dense model, e.g. -15).
        train: the search run; ``train.epochs`` is its maximum length.
        threshold_lr: Adam learning rate of the thresholds (``None``: ``train.lr``).
        retrain: the retrain run with the mask fixed (``None``: the same as ``train``;
            ``epochs=0``: keep the searched weights, no retrain).
        rewind: retrain from the initial weights (the paper's lottery-ticket step) rather than
            from the searched ones.
    """

    granularity: str = "entry"
    s_init: float = -15.0
    train: TrainConfig = TrainConfig(epochs=20, lr=1e-3)
    threshold_lr: float | None = None
    retrain: TrainConfig | None = None
    rewind: bool = True

    def __post_init__(self) -> None:
        if self.granularity not in PEPEmbedding._SHAPES:
            raise ValueError(f"PEPConfig.granularity must be one of "
                             f"{sorted(PEPEmbedding._SHAPES)}, got {self.granularity!r}")
        if self.threshold_lr is not None and self.threshold_lr <= 0:
            raise ValueError(f"PEPConfig.threshold_lr must be > 0, got {self.threshold_lr}")


@dataclass
class PEPSearch:
    """Outcome of the search: masks by table, the sparsity they give, and when it was reached."""

    masks: dict[str, Tensor]
    sparsity: float
    reached: bool
    step: int
    sparsity_per_epoch: list[float] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False)


class _Reached(Exception):
    pass


def _sparsity(tables: dict[str, PEPEmbedding], plain: dict[str, nn.Module]
              ) -> tuple[float, dict[str, Tensor]]:
    """Zero fraction over all tables; ``plain`` tables (trained without thresholds) keep all."""
    with torch.no_grad():
        nz = {n: t.soft_weight() != 0 for n, t in tables.items()}
        nz.update({n: torch.ones_like(t.weight, dtype=torch.bool) for n, t in plain.items()})
    total = sum(m.numel() for m in nz.values())
    return 1.0 - sum(int(m.sum()) for m in nz.values()) / total, nz


def swap_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` in ``model``; return the module it replaces (no history)."""
    parent, _, attr = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    old = getattr(owner, attr)
    setattr(owner, attr, new)
    return old


def fit(model: nn.Module, train: Interactions, feedback: str, cfg: TrainConfig,
        on_step=None, params=None) -> list[float]:
    """Train with the loss of ``feedback`` (``implicit`` BCE or ``explicit`` MSE)."""
    trainer = train_implicit if feedback == "implicit" else train_explicit
    return trainer(model, train, cfg, on_step=on_step, params=params)


def pep_search(model: nn.Module, names: list[str], ratio: float, train: Interactions,
               feedback: str = "implicit", cfg: PEPConfig | None = None) -> PEPSearch:
    """Train ``model``'s tables with learnable thresholds (on a copy) until ``ratio`` of their
    entries are zero; return the masks (see the module docstring)."""
    cfg = cfg or PEPConfig()
    work = copy.deepcopy(model)
    tables, plain = {}, {}
    for name in names:
        old = work.get_submodule(name)
        if not bool(old.weight.detach().any()):  # all-zero init (biases): relu would freeze it
            plain[name] = old
            continue
        tables[name] = PEPEmbedding(old.weight, cfg.granularity, cfg.s_init,
                                    getattr(old, "mode", None)
                                    if not isinstance(old, nn.Embedding) else None)
        swap_module(work, name, tables[name])
    thresholds = [t.s for t in tables.values()]
    ids = {id(p) for p in thresholds}
    groups = [{"params": [p for p in work.parameters() if id(p) not in ids]},
              {"params": thresholds, "lr": cfg.threshold_lr or cfg.train.lr}]
    state = {"step": 0, "per_epoch": []}
    per_epoch = -(-len(train) // cfg.train.batch_size)

    def on_step(step: int) -> None:
        state["step"] = step
        if step == 0:
            return
        sparsity, nz = _sparsity(tables, plain)
        if step % per_epoch == 0:
            state["per_epoch"].append(sparsity)
        if sparsity >= ratio:
            state["masks"], state["sparsity"] = nz, sparsity
            raise _Reached

    try:
        fit(work, train, feedback, cfg.train, on_step, groups)
    except _Reached:
        work.eval()
        return PEPSearch(state["masks"], state["sparsity"], True, state["step"],
                         state["per_epoch"], work)
    sparsity, nz = _sparsity(tables, plain)
    if sparsity >= ratio:
        return PEPSearch(nz, sparsity, True, state["step"] + 1, state["per_epoch"], work)
    scores = {n: t.soft_weight().detach().abs() + 1e-12 * t.weight.detach().abs()
              for n, t in tables.items()}
    scores.update({n: torch.full_like(t.weight, float("inf")) for n, t in plain.items()})
    return PEPSearch(_top(scores, ratio), ratio, False, state["step"] + 1, state["per_epoch"],
                     work)


def _top(scores: dict[str, Tensor], ratio: float) -> dict[str, Tensor]:
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    k = max(1, flat.numel() - int(round(ratio * flat.numel())))
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, k).indices] = True
    out, start = {}, 0
    for n, s in scores.items():
        out[n] = keep[start:start + s.numel()].view_as(s)
        start += s.numel()
    return out
