"""Recommender models and embedding-table compression (rows, dimensions, entries, mixed widths,
product-quantised weight sharing).

Models (MF, NCF, DLRM), the MovieLens-100k loader, trainers (with distillation and validation
early stopping), HR@K / NDCG@K, :func:`prune_embeddings` and frequency-allocated mixed widths.
See ``docs/recsys.md``.
"""

from prunekit.recsys.data import Interactions, leave_one_out, load_movielens100k, random_split
from prunekit.recsys.entries import ENTRY_METHODS, GradualEntryMasks
from prunekit.recsys.export import export_tables
from prunekit.recsys.metrics import evaluate_ranking, hit_ndcg, ndcg_at_k, rmse
from prunekit.recsys.mixed import EntryMasks, frequency_widths, mixed_masks
from prunekit.recsys.models import DLRM, MF, NCF
from prunekit.recsys.pep import PEPConfig, PEPSearch, pep_search
from prunekit.recsys.prune import EmbeddingPruneReport, TableReport, prune_embeddings
from prunekit.recsys.rows import ROW_CRITERIA
from prunekit.recsys.shared import SHARING_METHODS, PQEmbedding, choose_pq, kmeans
from prunekit.recsys.select import BestOnValidation, fit_validated, validation_split
from prunekit.recsys.tables import PEPEmbedding, RemappedEmbedding, SparseEmbedding
from prunekit.recsys.train import TrainConfig, train_explicit, train_implicit

__all__ = [
    "BestOnValidation", "EntryMasks", "fit_validated", "frequency_widths", "mixed_masks",
    "validation_split", "DLRM", "ENTRY_METHODS", "EmbeddingPruneReport", "GradualEntryMasks", "Interactions", "MF", "NCF", "PEPConfig",
    "PEPEmbedding", "PEPSearch", "ROW_CRITERIA", "RemappedEmbedding", "SparseEmbedding", "TableReport",
    "TrainConfig", "evaluate_ranking", "export_tables", "hit_ndcg", "leave_one_out",
    "load_movielens100k", "ndcg_at_k", "pep_search", "prune_embeddings", "random_split", "rmse",
    "train_explicit", "train_implicit", "SHARING_METHODS", "PQEmbedding", "choose_pq", "kmeans",
]
