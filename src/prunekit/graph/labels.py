"""Channel labels and the union-find that couples them.

Every channel a prunable module produces gets a unique integer id. While tracing, each tensor
carries a *label tensor* of ids (``int64``) whose shape broadcasts to the tensor's shape: entry
``i`` names the channel that element ``i`` belongs to (``0`` = belongs to no prunable channel,
e.g. the model's input image). Labels are kept *canonical*: a dimension along which the label
does not vary is reduced to size 1, so a ``(B, C, H, W)`` activation carries a ``(1, C, 1, 1)``
label and shape operations stay cheap.

Two ids are *coupled* (must be removed together) when an operation puts them at the same
element, e.g. a residual add: :class:`Coupling` records that with union-find. An id is *fixed*
(never removable) when it meets something that cannot shrink with it (a constant tensor, the
model output, an operation we cannot interpret); the reason is kept for the summary.
"""

from __future__ import annotations

import torch
from torch import Tensor

FIXED = 0


class Coupling:
    """Union-find over channel ids with a 'fixed' flag (and reason) per class."""

    def __init__(self) -> None:
        self.parent: list[int] = [0]
        self.reason: dict[int, str] = {0: "not a prunable channel"}

    def __len__(self) -> int:
        return len(self.parent)

    def new(self, n: int) -> Tensor:
        """Allocate ``n`` fresh ids."""
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return torch.arange(start, start + n, dtype=torch.long)

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def union(self, a: int, b: int, why: str = "coupled with a fixed channel") -> None:
        if a == FIXED or b == FIXED:
            self.fix_one(b if a == FIXED else a, why)
            return
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        if rb in self.reason:
            self.reason.setdefault(ra, self.reason.pop(rb))

    def fix_one(self, a: int, why: str) -> None:
        if a == FIXED:
            return
        self.reason.setdefault(self.find(a), why)

    def fix(self, labels: Tensor | None, why: str) -> None:
        """Mark every id in ``labels`` as never removable, recording ``why``."""
        if labels is None:
            return
        for a in torch.unique(labels).tolist():
            self.fix_one(int(a), why)

    def union_pairs(self, a: Tensor, b: Tensor, why: str) -> None:
        """Couple ``a[i]`` with ``b[i]`` element-wise (shapes must broadcast)."""
        a, b = torch.broadcast_tensors(a, b)
        diff = a != b
        if not bool(diff.any()):
            return
        pairs = dict.fromkeys(zip(a[diff].tolist(), b[diff].tolist(), strict=True))  # dedupe, keep order
        find, union = self.find, self.union
        for x, y in pairs:
            if x != FIXED and y != FIXED and find(x) == find(y):
                continue
            union(x, y, why)

    def union_all(self, ids: Tensor, why: str) -> None:
        """Couple every id in ``ids`` into one class."""
        u = torch.unique(ids).tolist()
        for x in u[1:]:
            self.union(int(u[0]), int(x), why)

    def is_fixed(self, a: int) -> bool:
        return a == FIXED or self.find(a) in self.reason

    def why(self, a: int) -> str | None:
        return self.reason.get(self.find(a)) if a != FIXED else self.reason[0]

    def roots(self, ids: Tensor) -> Tensor:
        """Class representative of every id (same shape)."""
        flat = ids.reshape(-1).tolist()
        return torch.tensor([self.find(int(i)) for i in flat], dtype=torch.long).reshape(ids.shape)


def canon(label: Tensor | None) -> Tensor | None:
    """Reduce every dim along which ``label`` is constant to size 1; all-zero -> ``None``."""
    if label is None:
        return None
    if label.numel() == 0 or not bool(label.any()):
        return None
    for d in range(label.dim()):
        if label.shape[d] > 1:
            first = label.narrow(d, 0, 1)
            if torch.equal(label, first.expand_as(label)):
                label = first
    return label


def varying_dims(label: Tensor | None) -> set[int]:
    """Dims along which a canonical label varies."""
    if label is None:
        return set()
    return {d for d in range(label.dim()) if label.shape[d] > 1}


def expand_full(label: Tensor | None, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Materialise ``label`` (or zeros when ``None``) at ``shape`` as a contiguous tensor."""
    if label is None:
        return torch.zeros(shape, dtype=torch.long)
    while label.dim() < len(shape):
        label = label.unsqueeze(0)
    return label.expand(shape).contiguous()


def align(label: Tensor, ndim: int) -> Tensor:
    """Left-pad ``label`` with size-1 dims up to ``ndim`` (broadcast alignment)."""
    while label.dim() < ndim:
        label = label.unsqueeze(0)
    return label


def fiber(label: Tensor | None, shape: tuple[int, ...], dim: int, size: int) -> Tensor:
    """Labels along ``dim``: a ``(size, rest)`` matrix (rest = other dims, broadcast-reduced)."""
    if label is None:
        return torch.zeros(size, 1, dtype=torch.long)
    lab = align(label, len(shape))
    lab = lab.expand(*[shape[i] if i == dim else lab.shape[i] for i in range(len(shape))])
    return lab.movedim(dim, 0).reshape(size, -1)
