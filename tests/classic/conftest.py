"""Real datasets that ship with scikit-learn, split train/validation, and fast prune options."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from prunekit.classic import ClassicConfig  # noqa: E402


def _split(X, y, stratify=True):
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y if stratify else None)


@pytest.fixture(scope="session")
def digits():
    return _split(*load_digits(return_X_y=True))


@pytest.fixture(scope="session")
def cancer():
    return _split(*load_breast_cancer(return_X_y=True))


@pytest.fixture(scope="session")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return _split(X, y, stratify=False)


@pytest.fixture()
def fast():
    """No latency measurement: the tests check what is pruned, not how fast it runs."""
    return ClassicConfig(measure=False, max_candidates=16)


def fingerprint(est) -> bytes:
    """Pickle of an estimator: equal before/after means the input was left untouched."""
    import pickle

    return pickle.dumps(est)


@pytest.fixture()
def untouched():
    return fingerprint


def rows(X, n=50, seed=0):
    return X[np.random.default_rng(seed).integers(0, X.shape[0], n)]
