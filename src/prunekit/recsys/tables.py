"""Pruned embedding tables: drop-in replacements for ``nn.Embedding`` / ``nn.EmbeddingBag``.

* :class:`RemappedEmbedding` — row pruning. ``remap[id]`` gives the stored row of every id; all
  pruned ids share one fallback row (the last row). This is the layout TorchRec/FBGEMM serve as
  ``num_embeddings_post_pruning`` + an index-remapping array.
* :class:`SparseEmbedding` — per-entry sparsity (PEP) and mixed dimensions, stored CSR:
  ``crow`` (ids + 1), ``col`` and ``values`` (only ``values`` is trainable).
* :class:`PEPEmbedding` — the training-time table of PEP: ``sign(v) * relu(|v| - sigmoid(s))``
  with learnable thresholds ``s`` (Liu et al., "Learnable Embedding Sizes for Recommender
  Systems", ICLR 2021).

Every table is an ordinary module: its state_dict holds tensors only and its constructor takes
sizes only, so :func:`prunekit.save` records how to rebuild it and :func:`prunekit.load` restores
it.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BAG_MODES = (None, "sum", "mean")


def _check_mode(mode: str | None) -> None:
    if mode not in BAG_MODES:
        raise ValueError(f"mode must be one of {BAG_MODES}, got {mode!r}")


def check_ids(ids: Tensor, size: int, table: str) -> None:
    """``ValueError`` naming ``table`` when an id lies outside ``[0, size)``."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
        raise ValueError(f"ids for table {table!r} must lie in [0, {size}), got "
                         f"[{int(ids.min())}, {int(ids.max())}]")


def _bag(rows: Tensor, offsets: Tensor | None, n_bags: int, mode: str) -> Tensor:
    """Reduce looked-up ``rows`` (N, d) into bags given by ``offsets`` (B,)."""
    if offsets is None:
        raise ValueError("an EmbeddingBag-style table needs offsets")
    lengths = torch.diff(offsets, append=offsets.new_tensor([rows.shape[0]]))
    bag = torch.repeat_interleave(torch.arange(n_bags, device=rows.device), lengths)
    out = rows.new_zeros(n_bags, rows.shape[1]).index_add(0, bag, rows)
    if mode == "mean":
        out = out / lengths.clamp(min=1).unsqueeze(1).to(out.dtype)
    return out


class IdTable(nn.Module):
    """A table over ``num_ids`` ids whose lookups are ``dim`` wide, sized like ``nn.Embedding``
    (``num_embeddings``, ``embedding_dim``) for code that reads those attributes."""

    num_ids: int
    dim: int

    @property
    def embedding_dim(self) -> int:
        return self.dim

    @property
    def num_embeddings(self) -> int:
        return self.num_ids


class RemappedEmbedding(nn.Module):
    """Row-pruned table: ``num_ids`` ids map to ``num_rows`` stored rows (last = fallback).

    Args:
        num_ids: size of the id space (the original ``num_embeddings``).
        num_rows: rows stored, kept rows + 1 shared fallback row.
        embedding_dim: columns.
        mode: ``None`` (``nn.Embedding``) or ``"sum"``/``"mean"`` (``nn.EmbeddingBag``).
    """

    def __init__(self, num_ids: int, num_rows: int, embedding_dim: int,
                 mode: str | None = None) -> None:
        super().__init__()
        _check_mode(mode)
        if not 1 <= num_rows <= num_ids + 1:
            raise ValueError(f"num_rows must be in [1, num_ids + 1], got {num_rows}")
        self.num_ids, self.mode = num_ids, mode
        self.weight = nn.Parameter(torch.zeros(num_rows, embedding_dim))
        self.register_buffer("remap", torch.full((num_ids,), num_rows - 1, dtype=torch.int32))

    @property
    def embedding_dim(self) -> int:
        return self.weight.shape[1]

    @property
    def num_embeddings(self) -> int:
        return self.num_ids

    def forward(self, ids: Tensor, offsets: Tensor | None = None) -> Tensor:
        rows = self.remap[ids].long()
        if self.mode is None:
            return F.embedding(rows, self.weight)
        return F.embedding_bag(rows, self.weight, offsets, mode=self.mode)


class SparseEmbedding(IdTable):
    """A CSR-stored table (per-entry sparsity or mixed dimensions): ``nnz`` stored values.

    Lookups gather each id's stored entries into a dense ``(B, embedding_dim)`` output; missing
    entries are zero.
    """

    def __init__(self, num_ids: int, embedding_dim: int, nnz: int,
                 mode: str | None = None) -> None:
        super().__init__()
        _check_mode(mode)
        self.num_ids, self.mode = num_ids, mode
        self.dim = embedding_dim
        self.values = nn.Parameter(torch.zeros(nnz))
        self.register_buffer("crow", torch.zeros(num_ids + 1, dtype=torch.int64))
        self.register_buffer("col", torch.zeros(nnz, dtype=torch.int16))

    @classmethod
    def from_dense(cls, weight: Tensor, mode: str | None = None) -> SparseEmbedding:
        """CSR of the non-zero entries of ``weight`` (num_ids, dim)."""
        w = weight.detach()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            csr = w.to_sparse_csr()
        table = cls(w.shape[0], w.shape[1], int(csr.values().numel()), mode)
        table.crow.copy_(csr.crow_indices())
        table.col.copy_(csr.col_indices().to(torch.int16))
        with torch.no_grad():
            table.values.copy_(csr.values())
        return table

    def to_dense(self) -> Tensor:
        rows = torch.repeat_interleave(torch.arange(self.num_ids), torch.diff(self.crow))
        out = self.values.new_zeros(self.num_ids, self.dim)
        out[rows, self.col.long()] = self.values.detach()
        return out

    def lookup(self, ids: Tensor) -> Tensor:
        flat = ids.reshape(-1)
        start, stop = self.crow[flat], self.crow[flat + 1]
        lengths = stop - start
        owner = torch.repeat_interleave(torch.arange(flat.numel(), device=ids.device), lengths)
        first = torch.repeat_interleave(start - torch.cumsum(lengths, 0) + lengths, lengths)
        pos = first + torch.arange(owner.numel(), device=ids.device)
        out = self.values.new_zeros(flat.numel(), self.dim)
        out = out.index_put((owner, self.col[pos].long()), self.values[pos])
        return out.reshape(*ids.shape, self.dim)

    def forward(self, ids: Tensor, offsets: Tensor | None = None) -> Tensor:
        rows = self.lookup(ids)
        if self.mode is None:
            return rows
        return _bag(rows, offsets, offsets.numel() if offsets is not None else 0, self.mode)


class PEPEmbedding(nn.Module):
    """Training-time PEP table: ``v_hat = sign(v) * relu(|v| - sigmoid(s))``.

    Args:
        weight: initial dense table (num_ids, dim), copied.
        granularity: threshold shape — ``"entry"`` (one per entry, PEP's feature-dimension
            granularity), ``"dimension"``, ``"feature"`` or ``"global"``.
        s_init: initial threshold logit (PEP uses large negative values, e.g. -15).
    """

    _SHAPES = {"entry": lambda n, d: (n, d), "dimension": lambda n, d: (1, d),
               "feature": lambda n, d: (n, 1), "global": lambda n, d: (1, 1)}

    def __init__(self, weight: Tensor, granularity: str = "entry", s_init: float = -8.0,
                 mode: str | None = None) -> None:
        super().__init__()
        if granularity not in self._SHAPES:
            raise ValueError(f"granularity must be one of {sorted(self._SHAPES)}, "
                             f"got {granularity!r}")
        _check_mode(mode)
        self.mode = mode
        self.weight = nn.Parameter(weight.detach().clone())
        self.s = nn.Parameter(torch.full(self._SHAPES[granularity](*weight.shape), float(s_init)))

    @property
    def embedding_dim(self) -> int:
        return self.weight.shape[1]

    @property
    def num_embeddings(self) -> int:
        return self.weight.shape[0]

    def soft_weight(self) -> Tensor:
        w = self.weight
        return torch.sign(w) * F.relu(w.abs() - torch.sigmoid(self.s))

    def forward(self, ids: Tensor, offsets: Tensor | None = None) -> Tensor:
        if self.mode is None:
            return F.embedding(ids, self.soft_weight())
        return F.embedding_bag(ids, self.soft_weight(), offsets, mode=self.mode)


def table_params(table: nn.Module) -> int:
    """Stored float embedding values of a (pruned or dense) table (a product-quantised table:
    its codebooks); index buffers and codes are not counted."""
    if isinstance(table, SparseEmbedding):
        return table.values.numel()
    if hasattr(table, "stored_values"):
        return int(table.stored_values())
    return table.weight.numel()


def table_bytes(table: nn.Module) -> int:
    """Stored embedding bytes: values at their dtype, plus a product-quantised table's codes
    packed at ``ceil(log2 K)`` bits each; remap and CSR indices are not counted
    (:func:`table_index_bytes`)."""
    if hasattr(table, "stored_bytes"):
        return int(table.stored_bytes())
    values = table.values if isinstance(table, SparseEmbedding) else table.weight
    return values.numel() * values.element_size()


def table_index_bytes(table: nn.Module) -> int:
    """Bytes of index metadata (remap, CSR row pointers and column ids); product-quantisation
    codes are stored values, counted by :func:`table_bytes`."""
    return sum(b.numel() * b.element_size() for n, b in table.named_buffers() if n != "codes")
