"""Transform coding of embedding tables: a score-preserving change of basis that concentrates
each coupled group's contribution in few columns, and code bits allocated to columns by their
share of it.

Quantising every column with the same number of bits spends as many bits on a column that
carries 1% of the score as on one that carries 30%. Classic transform coding (Huang &
Schultheiss, 1963; Gersho & Gray, "Vector Quantization and Signal Compression", 1992, ch. 8)
first decorrelates (here: the SVD of what the tables contribute), then gives each coefficient
bits by greedy reverse water-filling on its variance. For embedding tables the basis change
must leave the model's scores unchanged; the models' ``dim_groups()`` say how the columns are
read:

* two tables meeting in a (weighted) dot product — MF's ``p_u . q_i``, NCF's GMF
  ``sum_j w_j p_uj q_ij``: the bilinear form ``P diag(w) Q^T = U S V^T`` becomes
  ``P' = U S^1/2``, ``Q' = V S^1/2`` and ``w' = 1``;
* one table read by a linear layer — NCF's MLP tables, ``P W^T = U S V^T``: ``P' = U S``,
  ``W' = V``.

Column ``j`` then carries importance ``s_j^2`` (the variance of its column times the energy of
what it is multiplied with), which :func:`allocate_bits` turns into bits.
"""

from __future__ import annotations

import heapq

import torch
from torch import Tensor, nn


def _module_of(path: str) -> str:
    return path.rpartition(".")[0]


def _split(model: nn.Module, group) -> tuple[list, list]:
    names = set(model.table_features())
    tables = [s for s in group if _module_of(s[0]) in names]
    return tables, [s for s in group if _module_of(s[0]) not in names]


def _param(model: nn.Module, path: str) -> Tensor:
    return model.get_parameter(path)


def _bilinear(model: nn.Module, tables, rest) -> None:
    (p_path, _, _), (q_path, _, _) = tables
    p, q = _param(model, p_path), _param(model, q_path)
    d = p.shape[1]
    w = torch.ones(d, dtype=torch.float64)
    if rest:
        v_path, _, off = rest[0]
        w = _param(model, v_path)[0, off:off + d].detach().double()
    qp, rp = torch.linalg.qr(p.detach().double() * w)
    qq, rq = torch.linalg.qr(q.detach().double())
    u, s, vh = torch.linalg.svd(rp @ rq.T)
    with torch.no_grad():
        p.copy_(qp @ u * s.sqrt())
        q.copy_(qq @ vh.T * s.sqrt())
        if rest:
            _param(model, v_path)[0, off:off + d] = 1.0


def _linear(model: nn.Module, table, read) -> None:
    p, w = _param(model, table[0]), _param(model, read[0])
    d, off = p.shape[1], read[2]
    qp, rp = torch.linalg.qr(p.detach().double())
    u, s, vh = torch.linalg.svd(rp @ w[:, off:off + d].detach().double().T,
                                full_matrices=False)
    with torch.no_grad():
        p.copy_(qp @ u * s)
        w[:, off:off + d] = vh.T


def svd_basis(model: nn.Module) -> None:
    """Rotate every coupled group of ``model`` (in place) to its SVD basis; scores unchanged
    up to rounding. ``ValueError`` naming the group when it is neither two tables in a dot
    product (with at most one weight vector) nor one table read by one linear layer."""
    for group in model.dim_groups():
        tables, rest = _split(model, group)
        if any(ax != 1 or off for _, ax, off in tables) or any(ax != 1 for _, ax, _ in rest):
            kind = "other"
        elif len(tables) == 2 and len(rest) <= 1 and all(
                _param(model, r[0]).shape[0] == 1 for r in rest):
            kind = "bilinear"
        elif len(tables) == 1 and len(rest) == 1 and \
                _param(model, rest[0][0]).shape[0] >= _param(model, tables[0][0]).shape[1] and \
                _param(model, tables[0][0]).shape[0] >= _param(model, tables[0][0]).shape[1]:
            kind = "linear"
        else:
            kind = "other"
        if kind == "other":
            raise ValueError(f"transform='svd': the coupled columns {[s[0] for s in group]} are "
                             "neither two tables in a dot product nor one table read by a "
                             "linear layer")
        if any(_param(model, t[0]).shape[0] < _param(model, t[0]).shape[1] for t in tables):
            raise ValueError(f"transform='svd': a table of {[s[0] for s in group]} has fewer "
                             "rows than columns")
        if kind == "bilinear":
            _bilinear(model, tables, rest)
        else:
            _linear(model, tables[0], rest[0])


def column_importance(model: nn.Module) -> dict[str, Tensor]:
    """Per table, each column's variance times the energy of what it is multiplied with (the
    other table's column variance and the weight vector squared, or the reading layer's column
    norm squared); tables outside every group: the column variance."""
    out = {n: model.get_submodule(n).weight.detach().double().var(0)
           for n in model.table_features()}
    for group in model.dim_groups():
        tables, rest = _split(model, group)
        own = {_module_of(t[0]): out[_module_of(t[0])] for t in tables}
        for path, _, _ in tables:
            name = _module_of(path)
            partner = torch.ones_like(own[name])
            for other in own:
                if other != name:
                    partner = partner * own[other]
            for r_path, _, off in rest:
                w = _param(model, r_path).detach().double()[:, off:off + partner.numel()]
                partner = partner * (w ** 2).sum(0)
            out[name] = own[name] * partner
    return out


def allocate_bits(importance: Tensor, total: int, max_bits: int = 8) -> list[int]:
    """``total`` code bits over the columns by greedy reverse water-filling: each bit goes to
    the column whose quantisation error ``importance_j * 4 ** -bits_j`` is largest (at most
    ``max_bits`` per column)."""
    imp = [float(v) for v in importance]
    bits = [0] * len(imp)
    heap = [(-v, j) for j, v in enumerate(imp)]
    heapq.heapify(heap)
    for _ in range(min(total, max_bits * len(imp))):
        _, j = heapq.heappop(heap)
        bits[j] += 1
        if bits[j] < max_bits:
            heapq.heappush(heap, (-imp[j] * 4.0 ** -bits[j], j))
    return bits
