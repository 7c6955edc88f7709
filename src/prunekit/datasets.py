"""Small real data and models that ship offline: the one home of the digits data, its split and
the small networks the demo, recipes, tests and benchmarks train.

* :func:`digits_split`: scikit-learn's ``load_digits()`` — 1,797 real 8x8 handwritten digits as
  ``(N, 1, 8, 8)`` float in [0, 1] — split 80/20 with a fixed seed, stratified so both parts keep
  the class balance (1,437 / 360). The demo, the recipes' ``digits`` task and the benchmarks use
  this one split.
* :class:`DigitsCNN` (the demo's network), :func:`small_cnn` (1-D or 2-D) and :func:`mlp`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover
        raise ImportError("the digits data needs scikit-learn: pip install 'prunekit[dev]'") from None
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_split(seed: int = 0, test_size: float = 0.2) -> tuple[TensorDataset, TensorDataset]:
    """``(train, test)`` TensorDatasets of the real digits, inputs ``(N, 1, 8, 8)`` in [0, 1].

    Args:
        seed: seed of the stratified split.
        test_size: fraction of the digits held out, in (0, 1).
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) \
            or not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    x, y = _digits()  # raises a clear ImportError without scikit-learn
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y)
    xs = torch.from_numpy(x)[:, None]  # (N, 1, 8, 8)
    ys = torch.from_numpy(y)
    return TensorDataset(xs[tr], ys[tr]), TensorDataset(xs[te], ys[te])


class DigitsCNN(nn.Module):
    """3 conv layers (32/64/128, BN, ReLU) + 2 linear layers for 1x8x8 digits."""

    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * 4, 128), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(128, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 8, 8) -> (B, classes)
        return self.classifier(self.features(x))


def small_cnn(dim: int = 2, in_channels: int = 1, num_classes: int = 10,
              widths: tuple[int, ...] = (64, 128, 128)) -> nn.Sequential:
    """Conv-BN-ReLU x len(widths) (stride 2 after the first), global average pool, linear."""
    conv = nn.Conv2d if dim == 2 else nn.Conv1d
    bn = nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d
    pool = nn.AdaptiveAvgPool2d(1) if dim == 2 else nn.AdaptiveAvgPool1d(1)
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        layers += [conv(c, w, 3, stride=1 if i == 0 else 2, padding=1, bias=False), bn(w),
                   nn.ReLU()]
        c = w
    layers += [pool, nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


def mlp(in_features: int = 64, hidden: int = 64, num_classes: int = 10) -> nn.Sequential:
    """Flatten -> Linear -> ReLU -> Linear -> ReLU -> Linear (no BatchNorm)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


# ``prunekit:<name>`` model specs (see :data:`prunekit.io.MODEL_SPECS`)
BUILTIN_MODELS = {
    "cnn2d": lambda: small_cnn(2),
    "cnn1d": lambda: small_cnn(1),
    "mlp": mlp,
}

__all__ = ["BUILTIN_MODELS", "DigitsCNN", "digits_split", "mlp", "small_cnn"]
