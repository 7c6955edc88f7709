"""Trained weight sharing of embedding tables: product quantisation with trained codebooks.

A table of width ``d`` is split into ``M`` subspaces of ``d / M`` columns; each subspace holds
``K`` centroids (a ``(M, K, d / M)`` float codebook, trainable) and each id stores ``M`` codes of
``ceil(log2 K)`` bits. A lookup gathers the id's centroid in every subspace and concatenates
them. ``M = d`` (one column per subspace) is per-column scalar quantisation with trained levels,
the weight sharing of Deep Compression; ``M = 1`` is vector quantisation of whole rows.

References: Jégou et al., "Product Quantization for Nearest Neighbor Search", TPAMI 2011
(the codebooks, initialised by k-means per subspace); Han et al., "Deep Compression", ICLR 2016
(trained weight sharing: centroids fine-tuned with the task loss, assignments fixed); Chen et
al., "Differentiable Product Quantization for End-to-End Embedding Compression", ICML 2020 and
Lian et al., "LightRec", WWW 2020 (product-quantised embedding tables for recommenders).

Sharing methods (registered in :data:`SHARING_METHODS`) turn a dense table into a
:class:`PQEmbedding`; ``pq`` runs k-means (k-means++ seeding, Lloyd iterations, float64,
deterministic given the seed) on each subspace. After :func:`prunekit.recsys.prune_embeddings`
(``shared=R`` or ``subspaces=``/``centroids=``), the usual trainers fine-tune the codebooks: the
codes are a buffer and stay fixed, the codebooks are parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit._registry import Registry
from prunekit.recsys.tables import IdTable, _bag, _check_mode, check_ids
from prunekit.recsys.transform import allocate_bits

CENTROID_CHOICES = (2, 4, 8, 16, 32, 64, 128, 256)


def code_bits(centroids: int) -> int:
    """Bits of one code: ``ceil(log2 K)`` (0 for a single centroid)."""
    return math.ceil(math.log2(centroids))


def per_subspace(centroids: int | list[int], subspaces: int) -> list[int]:
    """``K`` of every subspace (an int applies to all)."""
    return [centroids] * subspaces if isinstance(centroids, int) else list(centroids)


class PQEmbedding(IdTable):
    """A product-quantised table: ``codes`` (num_ids, M) index ``codebooks`` (M, K, d / M).

    Args:
        num_ids: size of the id space.
        embedding_dim: width ``d`` of a looked-up vector.
        subspaces: ``M``; must divide ``embedding_dim``.
        centroids: ``K`` per subspace, 1..65536: one int for all subspaces, or a list with
            one ``K`` per subspace (bits allocated by importance, :func:`allocate_bits`).
        mode: ``None`` (``nn.Embedding``) or ``"sum"``/``"mean"`` (``nn.EmbeddingBag``).
        table: the table's name in the model, used in error messages.
    """

    def __init__(self, num_ids: int, embedding_dim: int, subspaces: int,
                 centroids: int | list[int], mode: str | None = None,
                 table: str = "table") -> None:
        super().__init__()
        _check_mode(mode)
        check_pq_shape(table, embedding_dim, subspaces, centroids)
        self.num_ids, self.dim, self.mode, self.table = num_ids, embedding_dim, mode, table
        self.subspaces = subspaces
        self.centroids = centroids if isinstance(centroids, int) else list(centroids)
        self.per_subspace = per_subspace(centroids, subspaces)
        k_max = max(self.per_subspace)
        # (M, K_max, d / M); a subspace with fewer centroids leaves its last rows unused
        self.codebooks = nn.Parameter(torch.zeros(subspaces, k_max, embedding_dim // subspaces))
        dtype = torch.uint8 if k_max <= 256 else torch.int32
        self.register_buffer("codes", torch.zeros(num_ids, subspaces, dtype=dtype))

    def spec_kwargs(self) -> dict:
        """Constructor arguments, recorded for :func:`prunekit.save`."""
        return {"num_ids": self.num_ids, "embedding_dim": self.dim, "subspaces": self.subspaces,
                "centroids": self.centroids, "mode": self.mode, "table": self.table}

    def lookup(self, ids: Tensor) -> Tensor:
        check_ids(ids, self.num_ids, self.table)
        m, k_max, width = self.codebooks.shape
        offsets = torch.arange(0, m * k_max, k_max, device=ids.device)
        rows = F.embedding(self.codes[ids.reshape(-1)].long() + offsets,  # (B, M) flat ids
                           self.codebooks.reshape(m * k_max, width))  # (B, M, d / M)
        return rows.reshape(*ids.shape, self.dim)

    def to_dense(self) -> Tensor:
        """The reconstructed ``(num_ids, d)`` table."""
        return self.lookup(torch.arange(self.num_ids, device=self.codes.device)).detach()

    def forward(self, ids: Tensor, offsets: Tensor | None = None) -> Tensor:
        rows = self.lookup(ids)
        if self.mode is None:
            return rows
        return _bag(rows, offsets, offsets.numel() if offsets is not None else 0, self.mode)

    def code_bytes(self) -> int:
        """Bytes of the codes packed as one bit stream (``ceil(log2 K_m)`` bits per subspace
        and id)."""
        return packed_code_bytes(self.num_ids, self.per_subspace)

    def stored_values(self) -> int:
        """Float values stored: the used codebook entries."""
        return sum(self.per_subspace) * (self.dim // self.subspaces)

    def stored_bytes(self) -> int:
        """Packed codes + the used codebook entries at their dtype."""
        return pq_bytes(self.num_ids, self.dim, self.subspaces, self.centroids,
                        self.codebooks.element_size())


def check_pq_shape(table: str, dim: int, subspaces: int, centroids: int) -> None:
    """``ValueError`` naming ``table`` unless ``subspaces`` divides ``dim`` and every
    ``centroids`` lies in [1, 65536] (one int, or one per subspace)."""
    if not isinstance(subspaces, int) or subspaces < 1 or dim % subspaces:
        raise ValueError(f"table {table!r}: subspaces must be a positive divisor of its width "
                         f"{dim}, got {subspaces!r}")
    ks = [centroids] if isinstance(centroids, int) else list(centroids)
    if (not isinstance(centroids, int) and len(ks) != subspaces) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 65536 for k in ks):
        raise ValueError(f"table {table!r}: centroids must be an int in [1, 65536] or one per "
                         f"subspace ({subspaces}), got {centroids!r}")


def kmeans(x: Tensor, k: int, iters: int = 25, seed: int = 0) -> tuple[Tensor, Tensor]:
    """k-means of the rows of ``x`` (n, s): k-means++ seeding (Arthur & Vassilvitskii, 2007),
    then Lloyd iterations, in float64. Returns ``(centroids (k, s), assignment (n,))``.

    Deterministic given ``seed``. With ``k`` at least the number of distinct rows every row is
    its own centroid exactly (distances are computed without the matmul shortcut).
    """
    x = x.detach().double()
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    idx = [int(torch.randint(0, n, (1,), generator=gen))]
    d2 = ((x - x[idx[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        nxt = int(torch.multinomial(d2 / total, 1, generator=gen)) if total > 0 \
            else int(torch.randint(0, n, (1,), generator=gen))
        idx.append(nxt)
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(1))
    cent = x[idx].clone()
    assign = _nearest(x, cent)
    for _ in range(iters):
        sums = torch.zeros_like(cent).index_add_(0, assign, x)
        count = torch.bincount(assign, minlength=k)
        filled = count > 0  # an empty cluster keeps its centroid
        cent[filled] = sums[filled] / count[filled].unsqueeze(1).double()
        new = _nearest(x, cent)
        if torch.equal(new, assign):
            break
        assign = new
    return cent, assign


def _nearest(x: Tensor, cent: Tensor) -> Tensor:
    return torch.cdist(x, cent, compute_mode="donot_use_mm_for_euclid_dist").argmin(1)


@dataclass(frozen=True)
class SharingContext:
    """What a sharing method reads: the dense table, its name, ``M``, ``K``, the seed."""

    weight: Tensor
    table: str
    subspaces: int
    centroids: int | list[int]
    mode: str | None
    seed: int = 0
    iters: int = 25


SharingMethod = Callable[[SharingContext], PQEmbedding]
SHARING_METHODS: Registry[SharingMethod] = Registry("sharing method")


@SHARING_METHODS.register("pq")
def pq_kmeans(ctx: SharingContext) -> PQEmbedding:
    """Product quantisation: k-means on each subspace (Jégou et al., TPAMI 2011)."""
    w = ctx.weight.detach()
    n, d = w.shape
    table = PQEmbedding(n, d, ctx.subspaces, ctx.centroids, ctx.mode, ctx.table)
    width = d // ctx.subspaces
    with torch.no_grad():
        for m, k in enumerate(per_subspace(ctx.centroids, ctx.subspaces)):
            k = min(k, n)
            cent, assign = kmeans(w[:, m * width:(m + 1) * width], k, ctx.iters, ctx.seed + m)
            table.codebooks[m, :k] = cent.to(table.codebooks.dtype)
            table.codes[:, m] = assign.to(table.codes.dtype)
    return table.to(w.device)


def pq_choices(dim: int) -> list[tuple[int, int]]:
    """Every ``(M, K)``: ``M`` a divisor of ``dim``, ``K`` a power of two up to 256."""
    return [(m, k) for m in range(1, dim + 1) if dim % m == 0 for k in CENTROID_CHOICES]


def packed_code_bytes(num_ids: int, ks: list[int]) -> int:
    """Bytes of ``num_ids`` ids' codes packed as one bit stream, ``ceil(log2 K_m)`` bits for
    each subspace ``m`` (``ks``: its ``K`` per subspace)."""
    return math.ceil(num_ids * sum(code_bits(k) for k in ks) / 8)


def pq_bytes(num_ids: int, dim: int, subspaces: int, centroids: int | list[int],
             float_bytes: int = 4) -> int:
    """Stored bytes of an ``(M, K)`` table (``K`` one int or one per subspace): the packed
    codes plus the used codebook entries."""
    ks = per_subspace(centroids, subspaces)
    return packed_code_bytes(num_ids, ks) + sum(ks) * (dim // subspaces) * float_bytes


def choose_pq(shapes: dict[str, tuple[int, int]], ratio: float, float_bytes: int = 4
              ) -> dict[str, tuple[int, int]]:
    """``(M, K)`` per table so the tables together store at most ``1 - ratio`` of their dense
    bytes.

    One level of code bits per stored value (``M * log2 K / d``) for every table, the highest
    that fits; at that level each table takes the choice with the most code bits not above it,
    then the fewest bytes (smaller subspaces, fewer centroids). ``shapes``: table ->
    ``(num_ids, dim)``. ``ValueError`` naming ``shared`` when no level fits.
    """
    budget = (1.0 - ratio) * sum(n * d * float_bytes for n, d in shapes.values())
    levels = sorted({m * code_bits(k) / d for n, d in shapes.values()
                     for m, k in pq_choices(d)}, reverse=True)
    for level in levels:
        pick = {}
        for name, (n, d) in shapes.items():
            fits = [(m * code_bits(k), -pq_bytes(n, d, m, k, float_bytes), m, k)
                    for m, k in pq_choices(d) if m * code_bits(k) <= level * d + 1e-9]
            if not fits:
                break
            _, _, m, k = max(fits)
            pick[name] = (m, k)
        if len(pick) == len(shapes) and sum(
                pq_bytes(*shapes[n], m, k, float_bytes) for n, (m, k) in pick.items()) <= budget:
            return pick
    raise ValueError(f"prune_embeddings: shared={ratio} removes more bytes than the smallest "
                     "product quantisation of these tables allows")


def choose_allocated(shapes: dict[str, tuple[int, int]], importance: dict[str, Tensor],
                     ratio: float, float_bytes: int = 4) -> dict[str, list[int]]:
    """Per table, one scalar codebook per column (``M = d``) with ``K_j = 2 ** bits_j``
    centroids, the bits allocated by :func:`~prunekit.recsys.transform.allocate_bits` from the
    columns' ``importance``; every table gets the same mean bits per value, the highest at
    which packed codes + codebooks fit in ``1 - ratio`` of the dense bytes (binary search:
    the bytes grow with the level). ``ValueError`` naming ``shared`` when none fits."""
    budget = (1.0 - ratio) * sum(n * d * float_bytes for n, d in shapes.values())
    levels = sorted({b / d for _, d in shapes.values() for b in range(1, 8 * d + 1)})

    def plan(level: float) -> tuple[dict[str, list[int]], int]:
        out, total = {}, 0
        for name, (n, d) in shapes.items():
            out[name] = [2 ** b for b in allocate_bits(importance[name], int(level * d + 1e-9))]
            total += pq_bytes(n, d, d, out[name], float_bytes)
        return out, total

    lo, hi, best = 0, len(levels) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        pick, total = plan(levels[mid])
        if total <= budget:
            best, lo = pick, mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise ValueError(f"prune_embeddings: shared={ratio} removes more bytes than the smallest "
                         "bit allocation of these tables allows")
    return best
