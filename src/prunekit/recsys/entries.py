"""Per-entry embedding sparsity, stored CSR.

Entry methods (registered in :data:`ENTRY_METHODS`):

* ``pep`` — Learnable Embedding sizes via Pruning (Liu et al., "Learnable Embedding Sizes for
  Recommender Systems", ICLR 2021): tables are re-parametrised as
  ``sign(v) * relu(|v| - sigmoid(s))`` with learnable thresholds ``s`` and trained with the
  task loss, so entries whose magnitude does not pay for itself fall to exactly zero. After
  training, the ``1 - ratio`` largest re-parametrised entries over all tables are kept (an exact
  size target; PEP instead stops when its learned sparsity reaches the target).
* ``magnitude`` — keep the largest ``|v|`` entries (one-shot baseline).

Both select entries over all tables together, so each table's (and each id's) size follows from
the scores — PEP's point: sizes are learned, not fixed per table.

Mixed dimensions live in :mod:`prunekit.recsys.mixed`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunekit._registry import Registry
from prunekit.recover.schedules import events
from prunekit.recsys.data import Interactions
from prunekit.recsys.pep import PEPConfig, PEPSearch, fit, pep_search, swap_module
from prunekit.recsys.tables import SparseEmbedding


def keep_top_entries(scores: Tensor, ratio: float) -> Tensor:
    """Bool mask keeping the ``1 - ratio`` highest scores (at least one entry)."""
    flat = scores.reshape(-1)
    k = max(1, flat.numel() - int(round(ratio * flat.numel())))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.topk(flat, k).indices] = True
    return mask.view_as(scores)


def global_masks(scores: dict[str, Tensor], ratio: float) -> dict[str, Tensor]:
    """Keep the ``1 - ratio`` highest scores over all tables together (each table's share is
    decided by its scores, as PEP's learned thresholds decide each feature's size)."""
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1) for n in names])
    mask = keep_top_entries(flat, ratio)
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = mask[start:start + size].view_as(scores[n])
        start += size
    return out


def masked_csr(weight: Tensor, mask: Tensor, mode: str | None) -> SparseEmbedding:
    """CSR of ``weight`` at ``mask``; kept entries that are exactly zero are stored too."""
    w = weight.detach().clone()
    w[~mask] = 0.0
    w[mask & (w == 0)] = torch.finfo(w.dtype).tiny  # keep the pattern exact
    return SparseEmbedding.from_dense(w, mode)


def table_mode(table: nn.Module) -> str | None:
    return None if isinstance(table, nn.Embedding) else getattr(table, "mode", None)


@dataclass
class EntryResult:
    """New CSR tables by name, and (PEP) the trained copy whose other layers the caller adopts."""

    tables: dict[str, SparseEmbedding]
    trained: nn.Module | None = None
    search: PEPSearch | None = None


EntryMethod = Callable[..., EntryResult]
ENTRY_METHODS: Registry[EntryMethod] = Registry("entry method")


@ENTRY_METHODS.register("magnitude")
def magnitude_entries(model: nn.Module, names: list[str], ratio: float, **_: object
                      ) -> EntryResult:
    """Keep the largest-magnitude ``1 - ratio`` entries over all tables in ``names``."""
    tables = {n: model.get_submodule(n) for n in names}
    masks = global_masks({n: t.weight.detach().abs() for n, t in tables.items()}, ratio)
    return EntryResult({n: masked_csr(t.weight, masks[n], table_mode(t)) for n, t in tables.items()})


@ENTRY_METHODS.register("pep")
def pep_entries(model: nn.Module, names: list[str], ratio: float, *, train: Interactions,
                feedback: str = "implicit", pep: PEPConfig | None = None, **_: object
                ) -> EntryResult:
    """PEP (:mod:`prunekit.recsys.pep`): search the mask by soft thresholding from ``model``'s
    current weights, rewind to them and retrain with the mask fixed. ``model`` is not modified:
    the caller adopts the returned copy (transactional)."""
    pep = pep or PEPConfig()
    found = pep_search(model, names, ratio, train, feedback, pep)
    if pep.rewind:
        base = copy.deepcopy(model)
        weights = {n: base.get_submodule(n).weight for n in names}
    else:
        base = found.model
        weights = {n: base.get_submodule(n).soft_weight() for n in names}
    modes = {n: table_mode(model.get_submodule(n)) for n in names}
    tables = {n: masked_csr(weights[n], found.masks[n], modes[n]) for n in names}
    for n, t in tables.items():
        swap_module(base, n, t)
    retrain = pep.retrain if pep.retrain is not None else pep.train
    if retrain.epochs:
        fit(base, train, feedback, retrain)
    found.model = None
    return EntryResult(tables, base, found)


class GradualEntryMasks:
    """Magnitude masks on embedding entries raised along a pruning schedule during training.

    Called before every optimizer step (``on_step`` of the trainers): at the schedule's events
    (:func:`prunekit.recover.schedules.events` — one-shot, iterative or the cubic ramp of Zhu &
    Gupta, 2017) each table's mask is recomputed at the new amount; pruned entries are re-zeroed
    at every step, so the final tables hold exactly ``amount`` zeros per table. :meth:`finish`
    converts them to CSR tables.
    """

    def __init__(self, model: nn.Module, names: list[str], amount: float, schedule: object,
                 total_steps: int) -> None:
        self.model, self.names = model, names
        self.events = dict(events(schedule, amount, total_steps))
        self.masks: dict[str, Tensor] = {}

    def apply(self) -> None:
        """Zero the pruned entries now."""
        with torch.no_grad():
            for name, mask in self.masks.items():
                self.model.get_submodule(name).weight.mul_(mask)

    def __call__(self, step: int) -> None:
        level = self.events.get(step)
        if level is not None:
            for name in self.names:
                w = self.model.get_submodule(name).weight.detach()
                self.masks[name] = keep_top_entries(w.abs(), level).to(w.dtype)
        self.apply()

    def finish(self) -> dict[str, SparseEmbedding]:
        """Apply the final masks and return the CSR tables (not yet swapped in)."""
        self.apply()
        return {n: masked_csr(self.model.get_submodule(n).weight, self.masks[n].bool(),
                           table_mode(self.model.get_submodule(n))) for n in self.names}
