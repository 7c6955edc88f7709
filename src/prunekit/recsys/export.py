"""Export pruned tables for TorchRec/FBGEMM-style serving.

``export_tables(model, out_dir)`` writes

* ``embedding_tables.json`` — one entry per table: ``name``, ``layout`` (``dense`` | ``remapped``
  | ``csr`` | ``pq``), ``num_embeddings`` (the id space), ``num_embeddings_post_pruning`` (stored rows),
  ``embedding_dim``, ``fallback_row`` (remapped: the shared row pruned ids read), ``nnz`` (csr),
  ``pooling`` (``none``/``sum``/``mean``) and the tensor keys below;
* ``embedding_tables.safetensors`` — ``<name>.weight`` (stored rows), ``<name>.remap`` (int32,
  one entry per id: its stored row), ``<name>.remap_pruned_minus_one`` (the same with pruned ids
  set to ``-1``: FBGEMM's ``index_remappings`` convention, whose pruned lookups return zeros
  instead of the fallback row), for CSR tables ``<name>.crow``/``.col``/``.values``, and for
  product-quantised tables (``layout: "pq"``) ``<name>.codes`` (one unsigned byte per code,
  ``(num_embeddings, subspaces)``; int32 when ``centroids > 256``) and ``<name>.codebooks``
  (``(subspaces, centroids, embedding_dim / subspaces)``): the vector of id ``i`` is the
  concatenation over subspaces ``m`` of ``codebooks[m, codes[i, m]]``. The JSON entry adds
  ``subspaces``, ``centroids`` and ``code_bits`` (one int, or one per subspace when bits were
  allocated per column: the codebooks are then padded to the largest ``K``) and
  ``packed_code_bytes`` (the size of the codes
  packed at ``code_bits`` each, the figure the size reports count).

With TorchRec, ``num_embeddings_post_pruning`` and the remap array are what an
``EmbeddingBagConfig`` and FBGEMM's pruned inference kernels take; TorchRec itself is not needed
to write or read these files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from prunekit.io import atomic_path
from prunekit.recsys.shared import PQEmbedding, code_bits
from prunekit.recsys.tables import RemappedEmbedding, SparseEmbedding

TABLES_JSON = "embedding_tables.json"
TABLES_TENSORS = "embedding_tables.safetensors"


def _entry(name: str, t: nn.Module, tensors: dict[str, Tensor]) -> dict[str, Any]:
    mode = None if isinstance(t, nn.Embedding) else getattr(t, "mode", None)
    e: dict[str, Any] = {"name": name, "num_embeddings": int(t.num_embeddings),
                         "embedding_dim": int(t.embedding_dim), "pooling": mode or "none"}
    if isinstance(t, SparseEmbedding):
        e.update(layout="csr", nnz=int(t.values.numel()),
                 num_embeddings_post_pruning=int((t.crow[1:] > t.crow[:-1]).sum()))
        for k in ("crow", "col", "values"):
            tensors[f"{name}.{k}"] = getattr(t, k).detach().clone()
        return e
    if isinstance(t, PQEmbedding):
        e.update(layout="pq", num_embeddings_post_pruning=int(t.num_embeddings),
                 subspaces=t.subspaces, centroids=t.centroids,
                 code_bits=code_bits(t.centroids) if isinstance(t.centroids, int)
                 else [code_bits(k) for k in t.centroids],
                 packed_code_bytes=t.code_bytes())
        tensors[f"{name}.codes"] = t.codes.detach().clone()
        tensors[f"{name}.codebooks"] = t.codebooks.detach().clone()
        return e
    tensors[f"{name}.weight"] = t.weight.detach().clone()
    if isinstance(t, RemappedEmbedding):
        fallback = t.weight.shape[0] - 1
        remap = t.remap.detach().clone()
        tensors[f"{name}.remap"] = remap
        tensors[f"{name}.remap_pruned_minus_one"] = torch.where(
            remap == fallback, torch.full_like(remap, -1), remap)
        e.update(layout="remapped", num_embeddings_post_pruning=fallback + 1,
                 fallback_row=fallback)
    else:
        e.update(layout="dense", num_embeddings_post_pruning=int(t.num_embeddings))
    return e


def export_tables(model: nn.Module, out_dir: str | Path) -> Path:
    """Write the serving description of every table of ``model`` (see the module docstring)."""
    if not hasattr(model, "table_features"):
        raise ValueError(f"export_tables: {type(model).__name__} does not declare its tables")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    entries = [_entry(n, model.get_submodule(n), tensors) for n in model.table_features()]
    with atomic_path(out / TABLES_TENSORS) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    with atomic_path(out / TABLES_JSON) as tmp:
        tmp.write_text(json.dumps({"format": 1, "tables": entries}, indent=2))
    return out
