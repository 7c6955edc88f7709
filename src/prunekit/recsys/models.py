"""Recommender models whose parameters sit mostly in embedding tables.

* :class:`MF` — matrix factorisation with user/item biases (Koren et al., "Matrix Factorization
  Techniques for Recommender Systems", IEEE Computer 2009).
* :class:`NCF` — NeuMF: GMF + MLP towers fused by a final linear layer (He et al., "Neural
  Collaborative Filtering", WWW 2017).
* :class:`DLRM` — ``nn.EmbeddingBag`` tables + dense features through a bottom MLP, pairwise dot
  interactions, top MLP (Naumov et al., "Deep Learning Recommendation Model", 2019).

Every model scores user-item pairs with ``score(users, items)`` and declares its pruning
structure: ``table_features()`` (table -> the id features that index it) and ``dim_groups()``
(the column slices that must be removed together: tables meeting in a dot product, and the
downstream weights reading those columns).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunekit.recsys.tables import check_ids

# A column slice: (parameter path, axis, offset); a group is a list of slices of equal width.
Slice = tuple[str, int, int]


def _record(model: nn.Module, name: str, **kwargs) -> None:
    """Remember how to rebuild the dense model, for :func:`prunekit.save`."""
    model.__dict__["_prunekit_spec"] = f"module:prunekit.recsys.models:{name}"
    model.__dict__["_prunekit_spec_kwargs"] = kwargs


def _check_sizes(n_users: int, n_items: int, dim: int) -> None:
    for arg, v in (("n_users", n_users), ("n_items", n_items), ("dim", dim)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{arg} must be a positive int, got {v!r}")


class MF(nn.Module):
    """Biased matrix factorisation: ``<p_u, q_i> + b_u + b_i + mu``."""

    def __init__(self, n_users: int, n_items: int, dim: int = 32, bias: bool = True) -> None:
        super().__init__()
        _check_sizes(n_users, n_items, dim)
        self.n_users, self.n_items, self.bias = n_users, n_items, bias
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        if bias:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
            self.mu = nn.Parameter(torch.zeros(1))
        _record(self, "MF", n_users=n_users, n_items=n_items, dim=dim, bias=bias)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        check_ids(users, self.n_users, "user")
        check_ids(items, self.n_items, "item")
        out = (self.user(users) * self.item(items)).sum(-1)
        if self.bias:
            out = out + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) \
                + self.mu
        return out

    score = forward

    def table_features(self) -> dict[str, tuple[str, ...]]:
        out = {"user": ("users",), "item": ("items",)}
        if self.bias:
            out.update(user_bias=("users",), item_bias=("items",))
        return out

    def dim_groups(self) -> list[list[Slice]]:
        return [[("user.weight", 1, 0), ("item.weight", 1, 0)]]


class NCF(nn.Module):
    """NeuMF: ``predict([p_u * q_i, MLP([p'_u, q'_i])])`` (one logit per pair).

    Args:
        dim: GMF factors and the width of each MLP embedding.
        mlp: hidden widths of the MLP tower (the paper's tower halves each layer).
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 32,
                 mlp: tuple[int, ...] = (64, 32, 16)) -> None:
        super().__init__()
        _check_sizes(n_users, n_items, dim)
        mlp = tuple(int(h) for h in mlp)
        if not mlp or min(mlp) < 1:
            raise ValueError(f"mlp must be non-empty positive widths, got {mlp!r}")
        self.n_users, self.n_items = n_users, n_items
        self.gmf_user = nn.Embedding(n_users, dim)
        self.gmf_item = nn.Embedding(n_items, dim)
        self.mlp_user = nn.Embedding(n_users, dim)
        self.mlp_item = nn.Embedding(n_items, dim)
        for t in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(t.weight, std=0.01)
        layers: list[nn.Module] = []
        width = 2 * dim
        for h in mlp:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers)
        self.predict = nn.Linear(dim + width, 1)
        _record(self, "NCF", n_users=n_users, n_items=n_items, dim=dim, mlp=list(mlp))

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        check_ids(users, self.n_users, "user")
        check_ids(items, self.n_items, "item")
        gmf = self.gmf_user(users) * self.gmf_item(items)
        h = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], -1))
        return self.predict(torch.cat([gmf, h], -1)).squeeze(-1)

    score = forward

    def table_features(self) -> dict[str, tuple[str, ...]]:
        return {"gmf_user": ("users",), "gmf_item": ("items",), "mlp_user": ("users",),
                "mlp_item": ("items",)}

    def dim_groups(self) -> list[list[Slice]]:
        mlp_dim = self.mlp_user.embedding_dim
        return [[("gmf_user.weight", 1, 0), ("gmf_item.weight", 1, 0), ("predict.weight", 1, 0)],
                [("mlp_user.weight", 1, 0), ("mlp.0.weight", 1, 0)],
                [("mlp_item.weight", 1, 0), ("mlp.0.weight", 1, mlp_dim)]]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class DLRM(nn.Module):
    """DLRM-style model: ``EmbeddingBag`` tables, a bottom MLP over dense features, pairwise dot
    interactions of all vectors, a top MLP to one logit.

    Args:
        table_sizes: rows per table.
        feature_tables: table index used by each sparse feature (a table may serve several).
        feature_names: the interaction-log field of each feature for :meth:`score`
            (``"users"``/``"items"``), used for frequency counts.
        n_dense: dense features; ``score`` uses ``log1p`` interaction counts of the user and the
            item (set with :meth:`set_dense_counts`).
    """

    def __init__(self, table_sizes: list[int], dim: int = 16, n_dense: int = 2,
                 feature_tables: list[int] | None = None,
                 feature_names: list[str] | None = None, bottom: tuple[int, ...] = (32,),
                 top: tuple[int, ...] = (64, 32)) -> None:
        super().__init__()
        feature_tables = list(range(len(table_sizes))) if feature_tables is None \
            else list(feature_tables)
        if any(not 0 <= t < len(table_sizes) for t in feature_tables):
            raise ValueError(f"feature_tables must index table_sizes, got {feature_tables}")
        names = list(feature_names or ["users", "items"][:len(feature_tables)])
        if len(names) != len(feature_tables):
            raise ValueError("feature_names must name every sparse feature")
        self.feature_tables, self.feature_names = feature_tables, names
        self.tables = nn.ModuleList(nn.EmbeddingBag(n, dim, mode="sum") for n in table_sizes)
        for t in self.tables:
            nn.init.normal_(t.weight, std=0.05)
        self.bottom = _mlp([n_dense, *bottom, dim])
        n_vec = len(feature_tables) + 1
        self.top = _mlp([dim + n_vec * (n_vec - 1) // 2, *top, 1])
        self.register_buffer("user_counts", torch.zeros(table_sizes[0]))
        self.register_buffer("item_counts", torch.zeros(table_sizes[-1]))
        _record(self, "DLRM", table_sizes=list(table_sizes), dim=dim, n_dense=n_dense,
                feature_tables=feature_tables, feature_names=names, bottom=list(bottom),
                top=list(top))

    def forward(self, dense: Tensor, indices: list[Tensor], offsets: list[Tensor]) -> Tensor:
        if len(indices) != len(self.feature_tables) or len(offsets) != len(indices):
            raise ValueError(f"DLRM: expected {len(self.feature_tables)} sparse features")
        vecs = [self.bottom(dense)]
        for f, (ids, offs) in enumerate(zip(indices, offsets, strict=False)):
            table = self.tables[self.feature_tables[f]]
            check_ids(ids, table.num_embeddings, f"tables.{self.feature_tables[f]}")
            vecs.append(table(ids, offs))
        z = torch.stack(vecs, 1)  # (B, F+1, d)
        dots = z @ z.transpose(1, 2)
        i, j = torch.triu_indices(z.shape[1], z.shape[1], 1)
        return self.top(torch.cat([vecs[0], dots[:, i, j]], -1)).squeeze(-1)

    def set_dense_counts(self, users: Tensor, items: Tensor) -> None:
        """Dense features for :meth:`score`: interaction counts per user and per item."""
        self.user_counts.copy_(torch.bincount(users, minlength=self.user_counts.numel()).float())
        self.item_counts.copy_(torch.bincount(items, minlength=self.item_counts.numel()).float())

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        shape = users.shape
        u, i = users.reshape(-1), items.reshape(-1)
        check_ids(u, self.user_counts.numel(), "users")
        check_ids(i, self.item_counts.numel(), "items")
        dense = torch.stack([self.user_counts[u].log1p(), self.item_counts[i].log1p()], -1)
        offs = torch.arange(u.numel(), device=u.device)
        by_name = {"users": u, "items": i}
        ids = [by_name[n] for n in self.feature_names]
        return self.forward(dense, ids, [offs] * len(ids)).reshape(shape)

    def table_features(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for f, t in enumerate(self.feature_tables):
            out[f"tables.{t}"] = out.get(f"tables.{t}", ()) + (self.feature_names[f],)
        return out

    def dim_groups(self) -> list[list[Slice]]:
        last = len(self.bottom) - 1
        group = [(f"tables.{t}.weight", 1, 0) for t in range(len(self.tables))]
        group += [(f"bottom.{last}.weight", 0, 0), (f"bottom.{last}.bias", 0, 0),
                  ("top.0.weight", 1, 0)]
        return [group]
