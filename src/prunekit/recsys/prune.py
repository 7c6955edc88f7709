"""``prune_embeddings``: rows, dimensions, entries or mixed dimensions of a recommender's tables.

Steps (everything is planned and built on copies first; the model changes only at the end, so a
bad argument leaves it untouched):

1. validate the ratios, the interaction log and the tables (sizes match the log; a module that
   serves several features is pruned once with the counts of all of them);
2. ``dims`` — :mod:`prunekit.recsys.dims` (coupled column groups, checked against the
   zeroed-column reference);
3. ``rows`` — :mod:`prunekit.recsys.rows` (criterion ``by``, index remap + fallback row);
4. ``entries`` (``method="pep"`` or ``"magnitude"``) or ``mixed`` —
   :mod:`prunekit.recsys.entries` (CSR tables); or ``shared`` / ``subspaces`` + ``centroids``
   — :mod:`prunekit.recsys.shared` (product-quantised tables: codes + trainable codebooks);
5. swap the new tables in and record each swap in the model's history so :func:`prunekit.save`
   / :func:`prunekit.load` rebuild them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunekit.recsys import dims as _dims
from prunekit.recsys.data import Interactions
from prunekit.recsys.entries import ENTRY_METHODS, masked_csr, table_mode
from prunekit.recsys.mixed import mixed_masks
from prunekit.recsys.pep import PEPConfig, PEPSearch
from prunekit.recsys.rows import ROW_CRITERIA, RowContext, keep_rows, remapped_table
from prunekit.recsys.shared import (SHARING_METHODS, SharingContext, check_pq_shape,
                                    choose_allocated, choose_pq)
from prunekit.recsys.transform import column_importance, svd_basis
from prunekit.recsys.tables import table_bytes, table_index_bytes, table_params
from prunekit.recsys.train import implicit_loss, sample_negatives, seen_matrix


@dataclass(frozen=True)
class TableReport:
    """One table before/after: stored float values, rows, columns, index bytes, layout, and
    stored bytes (values at their dtype + packed product-quantisation codes)."""

    name: str
    layout: str
    params_before: int
    params_after: int
    rows_after: int
    dim_after: int
    index_bytes: int
    bytes_before: int = 0
    bytes_after: int = 0


@dataclass
class EmbeddingPruneReport:
    """What :func:`prune_embeddings` did.

    ``removed`` is the fraction of stored embedding bytes removed (float values at their dtype,
    plus packed codes for product-quantised tables; remap and CSR indices are reported apart as
    ``index_bytes``). ``removed_params`` is the fraction of float values removed; the two agree
    for every layout except product quantisation, whose float values are its codebooks only.
    """

    tables: list[TableReport] = field(default_factory=list)
    dims_max_diff: float | None = None
    pep: PEPSearch | None = None

    @property
    def params_before(self) -> int:
        return sum(t.params_before for t in self.tables)

    @property
    def params_after(self) -> int:
        return sum(t.params_after for t in self.tables)

    @property
    def bytes_before(self) -> int:
        return sum(t.bytes_before for t in self.tables)

    @property
    def bytes_after(self) -> int:
        return sum(t.bytes_after for t in self.tables)

    @property
    def removed(self) -> float:
        return 1.0 - self.bytes_after / max(1, self.bytes_before)

    @property
    def removed_params(self) -> float:
        return 1.0 - self.params_after / max(1, self.params_before)


def _ratio(value: float | None, arg: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"prune_embeddings: {arg} must be a ratio in [0, 1), got {value!r}")
    return float(value)


def _tables(model: nn.Module, train: Interactions) -> dict[str, tuple[list[str], Tensor]]:
    """``{first name: (all names of that module, summed id counts)}``."""
    if not hasattr(model, "table_features"):
        raise ValueError(f"prune_embeddings: {type(model).__name__} does not declare its "
                         "embedding tables (table_features); use MF, NCF, DLRM or add it")
    by_module: dict[int, tuple[list[str], Tensor]] = {}
    for name, feats in model.table_features().items():
        table = model.get_submodule(name)
        counts = sum(train.counts(f) for f in feats)
        if counts.numel() != table.num_embeddings:
            raise ValueError(f"prune_embeddings: table {name!r} has {table.num_embeddings} rows "
                             f"but the log has {counts.numel()} {'/'.join(feats)} ids")
        names, total = by_module.get(id(table), ([], torch.zeros_like(counts)))
        by_module[id(table)] = (names + [name], total + counts)
    return {names[0]: (names, counts) for names, counts in by_module.values()}


def taylor_rows(model: nn.Module, train: Interactions, names: list[str], batches: int = 20,
                batch_size: int = 2048, seed: int = 0) -> dict[str, Tensor]:
    """Per-row ``sum |w * dL/dw|`` of each table over ``batches`` implicit-loss batches."""
    work = copy.deepcopy(model).train()
    acc = {n: torch.zeros(work.get_submodule(n).weight.shape[0]) for n in names}
    seen, gen = seen_matrix(train), torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(train))
    for _ in range(max(1, min(batches, 4 * len(train) // batch_size))):
        idx = torch.randint(0, len(train), (batch_size,), generator=gen)
        users = train.users[idx]
        work.zero_grad(set_to_none=True)
        implicit_loss(work, users, train.items[idx], sample_negatives(users, seen, 4, gen)
                      ).backward()
        for n in names:
            w = work.get_submodule(n).weight
            if w.grad is not None:
                acc[n] += (w.detach() * w.grad).abs().sum(1)
    return acc


def _row_tables(model: nn.Module, tables, ratio: float, by: str, train: Interactions
                ) -> dict[str, nn.Module]:
    crit = ROW_CRITERIA.get(by)
    taylor = taylor_rows(model, train, list(tables)) if by == "gradient" else {}
    out = {}
    for name, (_, counts) in tables.items():
        table = model.get_submodule(name)
        weight = table.weight.detach()
        if hasattr(table, "remap"):
            weight = weight[table.remap.long()]
        scores = crit(RowContext(weight, counts, taylor.get(name)))
        out[name] = remapped_table(table, keep_rows(scores, ratio))
    return out


def _record_swap(model: nn.Module, name: str, table: nn.Module) -> None:
    kwargs = {"num_ids": table.num_ids, "mode": table.mode}
    if hasattr(table, "spec_kwargs"):
        kwargs = table.spec_kwargs()
    elif hasattr(table, "remap"):
        kwargs.update(num_rows=table.weight.shape[0], embedding_dim=table.weight.shape[1])
    else:
        kwargs.update(embedding_dim=table.dim, nnz=table.values.numel())
    hist = model.__dict__.setdefault("_prunekit_history", [])
    hist.append({"op": "replace_module", "name": name, "kwargs": kwargs,
                 "spec": f"module:{type(table).__module__}:{type(table).__name__}"})


def install_table(model: nn.Module, names: list[str], table: nn.Module) -> None:
    """Put pruned ``table`` at every name in ``names`` and record it for :func:`prunekit.save`."""
    for name in names:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, table)
        _record_swap(model, name, table)


TRANSFORMS = (None, "svd")


def _check_sharing(shared, subspaces, centroids, sharing, transform, others) -> bool:
    """Validate the weight-sharing arguments; ``True`` when tables are to be quantised."""
    if transform not in TRANSFORMS:
        raise ValueError(f"prune_embeddings: transform must be one of {TRANSFORMS}, "
                         f"got {transform!r}")
    if transform is not None and shared is None:
        raise ValueError("prune_embeddings: transform='svd' allocates bits to meet shared=; "
                         "give shared=")
    explicit = subspaces is not None or centroids is not None
    if explicit and (subspaces is None or centroids is None):
        raise ValueError("prune_embeddings: subspaces= and centroids= go together")
    for arg, v in (("subspaces", subspaces), ("centroids", centroids)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"prune_embeddings: {arg} must be a positive int, got {v!r}")
    if explicit and shared is not None:
        raise ValueError("prune_embeddings: give shared= (a byte target) or subspaces= and "
                         "centroids=, not both")
    if (explicit or shared is not None) and any(v is not None for v in others):
        raise ValueError("prune_embeddings: shared=/subspaces= combine with dims= only")
    if sharing not in SHARING_METHODS:
        raise ValueError(f"prune_embeddings: sharing must be one of {SHARING_METHODS.names()}, "
                         f"got {sharing!r}")
    return explicit or shared is not None


def _rotate(work: nn.Module, train: Interactions, seed: int) -> None:
    """:func:`~prunekit.recsys.transform.svd_basis` on ``work``, checked: the scores of 512
    training pairs must not move by more than 1e-4 of their scale."""
    ref, mode = copy.deepcopy(work).eval(), work.training
    svd_basis(work)
    probe = torch.randint(0, len(train), (512,), generator=torch.Generator().manual_seed(seed))
    users, items = train.users[probe], train.items[probe]
    with torch.no_grad():
        before, after = ref.score(users, items), work.eval().score(users, items)
    work.train(mode)
    diff = float((before - after).abs().max())
    if diff > 1e-4 * (1.0 + float(before.abs().max())):
        raise ValueError(f"transform='svd': the change of basis moved scores by {diff:.3g}")


def _shared_tables(work: nn.Module, tables, shared, subspaces, centroids, sharing, seed,
                   transform=None, train=None) -> dict[str, nn.Module]:
    """Product-quantised copies of ``work``'s (dense) tables (after the change of basis when
    ``transform`` is ``"svd"``: one scalar codebook per column, bits allocated)."""
    shapes = {}
    for name in tables:
        t = work.get_submodule(name)
        if not isinstance(t, (nn.Embedding, nn.EmbeddingBag)):
            raise ValueError(f"prune_embeddings: table {name!r} is already pruned "
                             f"({type(t).__name__}); weight sharing quantises dense tables")
        shapes[name] = tuple(t.weight.shape)
    size = work.get_submodule(name).weight.element_size()
    if transform == "svd":
        _rotate(work, train, seed)
        imp = column_importance(work)
        pick = {n: (shapes[n][1], ks) for n, ks in
                choose_allocated(shapes, {n: imp[n] for n in shapes}, shared, size).items()}
    elif shared is not None:
        pick = choose_pq(shapes, shared, size)
    else:
        pick = {n: (min(subspaces, d), centroids) for n, (_, d) in shapes.items()}
        for n, (m, k) in pick.items():
            check_pq_shape(n, shapes[n][1], m, k)
    method = SHARING_METHODS.get(sharing)
    return {n: method(SharingContext(work.get_submodule(n).weight, n, m, k,
                                     table_mode(work.get_submodule(n)), seed))
            for n, (m, k) in pick.items()}


def _check(model, train, rows, dims, entries, mixed, by, method, feedback, sharing=False):
    if len(train) == 0:
        raise ValueError("prune_embeddings: train (the interaction log) is empty")
    if all(v is None for v in (rows, dims, entries, mixed)) and not sharing:
        raise ValueError("prune_embeddings: give at least one of rows=, dims=, entries=, "
                         "mixed=, shared= (or subspaces= and centroids=)")
    if entries is not None and mixed is not None:
        raise ValueError("prune_embeddings: entries= and mixed= both store CSR tables; pick one")
    if rows is not None and (entries is not None or mixed is not None):
        raise ValueError("prune_embeddings: rows= combines with dims= only")
    if by not in ROW_CRITERIA:
        raise ValueError(f"prune_embeddings: by must be one of {ROW_CRITERIA.names()}, got {by!r}")
    if method not in ENTRY_METHODS:
        raise ValueError(f"prune_embeddings: method must be one of {ENTRY_METHODS.names()}, "
                         f"got {method!r}")
    if feedback not in ("implicit", "explicit"):
        raise ValueError(f"prune_embeddings: feedback must be 'implicit' or 'explicit', "
                         f"got {feedback!r}")


def prune_embeddings(model: nn.Module, train: Interactions, *, rows: float | None = None,
                     dims: float | None = None, entries: float | None = None,
                     mixed: float | None = None, by: str = "frequency", method: str = "pep",
                     dim_criterion: str = "l2", feedback: str = "implicit", alpha: float = 0.5,
                     pep: PEPConfig | None = None, shared: float | None = None,
                     subspaces: int | None = None, centroids: int | None = None,
                     sharing: str = "pq", transform: str | None = None,
                     seed: int = 0) -> EmbeddingPruneReport:
    """Prune ``model``'s embedding tables in place (see the module docstring).

    Args:
        rows: fraction of rows removed per table (ids remapped to a shared fallback row).
        dims: fraction of columns removed per coupled group (with their downstream weights).
        entries: fraction of entries removed per table (``method``: ``"pep"``/``"magnitude"``).
        mixed: fraction of entry values removed over all tables by frequency-allocated
            widths ``min(d, floor(lam * count ** alpha))`` (:mod:`prunekit.recsys.mixed`;
            width-1 tables such as MF biases are kept whole).
        by: row criterion (``frequency``, ``norm``, ``gradient``).
        dim_criterion: group criterion scoring columns (``l2``, ``l1``, ``random``).
        feedback: loss used by PEP training (``implicit`` BCE or ``explicit`` MSE).
        alpha: popularity exponent of ``mixed`` (0 = one width for all ids).
        shared: fraction of the tables' bytes removed by trained weight sharing (product
            quantisation, :mod:`prunekit.recsys.shared`): ``M`` subspaces and ``K`` centroids
            per table chosen by :func:`~prunekit.recsys.shared.choose_pq` so the packed codes
            plus fp32 codebooks fit (after ``dims``, when given).
        subspaces, centroids: instead of ``shared``, ``M`` and ``K`` for every table (``M``
            capped at a narrower table's width, e.g. 1 for MF's bias tables).
        sharing: sharing method (``pq``: k-means per subspace).
        transform: ``"svd"`` — before quantising, rotate each coupled group to the SVD basis
            of what its tables contribute (scores unchanged, other layers absorb the rotation)
            and give each column its own scalar codebook with bits allocated by importance
            (:mod:`prunekit.recsys.transform`); needs ``shared``.

    Returns:
        Per-table sizes before and after.
    """
    rows, dims = _ratio(rows, "rows"), _ratio(dims, "dims")
    entries, mixed = _ratio(entries, "entries"), _ratio(mixed, "mixed")
    shared = _ratio(shared, "shared")
    share = _check_sharing(shared, subspaces, centroids, sharing, transform,
                           (rows, entries, mixed))
    _check(model, train, rows, dims, entries, mixed, by, method, feedback, share)
    tables = _tables(model, train)
    before = {n: (table_params(model.get_submodule(n)), table_bytes(model.get_submodule(n)))
              for n in tables}
    work, report = copy.deepcopy(model), EmbeddingPruneReport()
    if dims:
        plan = _dims.plan_dims(work, dims, dim_criterion, seed)
        masked = _dims.zero_dims(work, plan)
        _dims.apply_dims(work, plan)
        probe = torch.randint(0, len(train), (512,), generator=torch.Generator().manual_seed(seed))
        report.dims_max_diff = _dims.verify_dims(masked, work, train.users[probe],
                                                 train.items[probe])
    new: dict[str, nn.Module] = {}
    if share:
        new = _shared_tables(work, tables, shared, subspaces, centroids, sharing, seed,
                             transform, train)
    elif rows:
        new = _row_tables(work, tables, rows, by, train)
    elif mixed is not None:
        masks = mixed_masks(work, {n: c for n, (_, c) in tables.items()}, mixed, alpha,
                            dim_criterion)
        new = {n: masked_csr(work.get_submodule(n).weight, masks[n], table_mode(work.get_submodule(n)))
               for n in tables}
    elif entries is not None:
        res = ENTRY_METHODS.get(method)(work, list(tables), entries, train=train,
                                        feedback=feedback, pep=pep)
        new, work, report.pep = res.tables, (res.trained or work), res.search
    for name, table in new.items():
        install_table(work, tables[name][0], table)
    _adopt(model, work)
    report.tables = [_table_report(model, name, *before[name]) for name in tables]
    return report


def _table_report(model: nn.Module, name: str, params_before: int, bytes_before: int
                  ) -> TableReport:
    t = model.get_submodule(name)
    rows = t.weight.shape[0] if hasattr(t, "weight") else t.num_embeddings
    return TableReport(name, type(t).__name__, params_before, table_params(t), rows,
                       t.embedding_dim, table_index_bytes(t), bytes_before, table_bytes(t))


def _adopt(model: nn.Module, work: nn.Module) -> None:
    """Make ``model`` the pruned ``work`` copy: same modules and history, in place."""
    history = work.__dict__.get("_prunekit_history", [])
    model.__dict__.update({k: v for k, v in work.__dict__.items()
                           if k in ("_modules", "_parameters", "_buffers")})
    model.__dict__["_prunekit_history"] = list(history)
