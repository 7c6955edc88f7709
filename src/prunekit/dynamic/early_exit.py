"""Early exit: classifiers attached inside a network; a confident input stops there.

BranchyNet (Teerapittayanon et al., ICPR 2016) and DeeBERT (Xin et al., ACL 2020): a small
head after an intermediate module predicts the class; when its certainty exceeds a threshold
the rest of the network is not run. Heads are trained with the backbone frozen.

At batch 1 the exit really stops: a forward hook on the exit module computes the head and, if
certain, raises an internal signal that unwinds the backbone's forward — no later module
runs. Batches above one run the whole backbone and pick, per sample, the first certain exit,
which gives the same predictions as batch 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class EarlyExitConfig:
    """Training and exit rule of the heads.

    Args:
        threshold: an exit is taken when its certainty is strictly above this, in [0, 1]
            (1.0: never exit early, the full model's answer).
        criterion: ``"confidence"`` (max softmax probability) or ``"entropy"``
            (``1 - H(p) / log(classes)``).
        epochs, lr, batch_size, weight_decay: head training (Adam, backbone frozen).
    """

    threshold: float = 0.9
    criterion: Literal["confidence", "entropy"] = "confidence"
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")
        if self.criterion not in ("confidence", "entropy"):
            raise ValueError(f"criterion must be 'confidence' or 'entropy', "
                             f"got {self.criterion!r}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")


class _Exit(Exception):  # noqa: N818 - control flow, never seen by users
    def __init__(self, index: int, logits: Tensor) -> None:
        self.index, self.logits = index, logits


def make_head(feature: Tensor, classes: int, channels_first: bool = False) -> nn.Module:
    """A linear classifier on pooled features.

    ``(B, C, H, W)`` maps are average-pooled to 2x2 (the coarse layout is kept: a global
    average discards where strokes are); 3-D features are ``(B, C, L)`` 1-D maps when
    ``channels_first`` (pooled to 8 cells: a 1-D signal's shape is spread along it), else
    ``(B, T, C)`` tokens, averaged.
    """
    if feature.dim() == 2:
        return nn.Linear(feature.shape[1], classes)
    if feature.dim() == 3 and not channels_first:
        return nn.Sequential(_TokenMean(), nn.Linear(feature.shape[2], classes))
    pool = nn.AdaptiveAvgPool2d(2) if feature.dim() == 4 else nn.AdaptiveAvgPool1d(8)
    cells = 4 if feature.dim() == 4 else 8
    return nn.Sequential(pool, nn.Flatten(), nn.Linear(feature.shape[1] * cells, classes))


class _TokenMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1)


def certainty(logits: Tensor, criterion: str) -> Tensor:
    p = logits.float().softmax(-1)
    if criterion == "confidence":
        return p.max(-1).values
    ent = -(p * p.clamp_min(1e-12).log()).sum(-1)
    return 1.0 - ent / math.log(p.shape[-1])


class EarlyExitModel(nn.Module):
    """``backbone`` with exit heads at named modules (see the module docstring).

    Attributes:
        exit_counts: how many samples left at each exit (last entry: the full model) since the
            last :meth:`reset_counts`.
    """

    def __init__(self, backbone: nn.Module, at: Sequence[str], heads: Sequence[nn.Module],
                 config: EarlyExitConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.at = tuple(at)
        self.heads = nn.ModuleList(heads)
        self.threshold = float(config.threshold)
        self.criterion = config.criterion
        self.exit_counts = [0] * (len(self.at) + 1)
        mods = dict(backbone.named_modules())
        self._points = [mods[n] for n in self.at]  # plain list: not registered twice

    def reset_counts(self) -> None:
        self.exit_counts = [0] * (len(self.at) + 1)

    @contextmanager
    def _hooks(self, fn: Any) -> Iterator[None]:
        hs = [m.register_forward_hook(fn(i)) for i, m in enumerate(self._points)]
        try:
            yield
        finally:
            for h in hs:
                h.remove()

    def _single(self, x: Tensor) -> Tensor:
        def fn(i: int):
            def hook(_m: nn.Module, _a: Any, out: Tensor) -> None:
                logits = self.heads[i](out)
                if float(certainty(logits, self.criterion)[0]) > self.threshold:
                    raise _Exit(i, logits)
            return hook

        try:
            with self._hooks(fn):
                out = self.backbone(x)
        except _Exit as e:
            self.exit_counts[e.index] += 1
            return e.logits
        self.exit_counts[-1] += 1
        return out

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] == 1 and not torch.is_grad_enabled():
            return self._single(x)
        return self.all_exits(x, pick=True)[-1]

    def all_exits(self, x: Tensor, pick: bool = False) -> list[Tensor]:
        """Logits of every head and of the backbone; with ``pick`` the last entry is replaced
        by each sample's first certain exit (batch-1 semantics)."""
        feats: dict[int, Tensor] = {}

        def fn(i: int):
            def hook(_m: nn.Module, _a: Any, out: Tensor) -> None:
                feats[i] = self.heads[i](out)
            return hook

        with self._hooks(fn):
            final = self.backbone(x)
        outs = [feats[i] for i in range(len(self.at))] + [final]
        if not pick:
            return outs
        chosen = final.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for i, logits in enumerate(outs[:-1]):
            take = (certainty(logits, self.criterion) > self.threshold) & ~done
            chosen[take] = logits[take].to(chosen.dtype)
            self.exit_counts[i] += int(take.sum())
            done |= take
        self.exit_counts[-1] += int((~done).sum())
        return outs[:-1] + [chosen]
