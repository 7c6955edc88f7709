"""Build an :class:`EarlyExitModel`: attach heads, train them on frozen features, sweep.

:func:`early_exit` probes the feature shape at each exit, records the frozen backbone's
features on the training data once, and trains every head with cross-entropy (Adam).
:func:`exit_curve` measures, per threshold, accuracy, exit rates and the mean batch-1 latency
against the full model, both timed on the same sample in alternating order.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.bench.timer import Clock, WallClock
from prunekit.dynamic.early_exit import EarlyExitConfig, EarlyExitModel, make_head


def _batches(data: Any, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        for k in range(0, x.shape[0], batch_size):
            yield x[k:k + batch_size], y[k:k + batch_size]
    else:
        yield from data


def _features(backbone: nn.Module, at: Sequence[str], data: Any, batch_size: int
              ) -> tuple[list[Tensor], Tensor, int]:
    mods = dict(backbone.named_modules())
    store: dict[int, list[Tensor]] = {i: [] for i in range(len(at))}
    hs = [mods[n].register_forward_hook(
        lambda _m, _a, out, i=i: store[i].append(out.detach())) for i, n in enumerate(at)]
    ys, classes = [], 0
    try:
        with torch.no_grad():
            for x, y in _batches(data, batch_size):
                classes = backbone(x).shape[-1]
                ys.append(y)
    finally:
        for h in hs:
            h.remove()
    if not ys:
        raise ValueError("train_data: no batches")
    return [torch.cat(store[i]) for i in range(len(at))], torch.cat(ys), classes


def _conv1d_output(m: nn.Module) -> bool:
    """A 3-D output of a module holding ``Conv1d`` layers is ``(B, C, L)``, not tokens."""
    return any(isinstance(x, (nn.Conv1d, nn.BatchNorm1d)) for x in m.modules())


def _train_head(head: nn.Module, feats: Tensor, y: Tensor, cfg: EarlyExitConfig) -> None:
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    head.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(feats.shape[0], generator=gen)
        for k in range(0, feats.shape[0], cfg.batch_size):
            idx = perm[k:k + cfg.batch_size]
            loss = F.cross_entropy(head(feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()


def early_exit(model: nn.Module, at: Sequence[str], train_data: Any,
               threshold: float | None = None, *,
               config: EarlyExitConfig | None = None) -> EarlyExitModel:
    """Attach exit heads at the modules named ``at`` and train them with ``model`` frozen.

    Args:
        model: a classifier returning logits ``(B, classes)``; it is not modified.
        at: names of modules (``model.named_modules()``), in forward order.
        train_data: ``(x, y)`` tensors or an iterable of ``(x, y)`` batches.
        threshold: exit certainty (overrides ``config.threshold``).

    Returns:
        An :class:`EarlyExitModel` sharing ``model``'s modules.

    Raises:
        ValueError: an exit point that does not exist, no exit points, empty data.
    """
    cfg = config or EarlyExitConfig()
    if threshold is not None:
        cfg = EarlyExitConfig(**{**cfg.__dict__, "threshold": threshold})
    names = dict(model.named_modules())
    if not at:
        raise ValueError("at: name at least one module to exit after")
    missing = [n for n in at if n not in names or n == ""]
    if missing:
        raise ValueError(f"at: {type(model).__name__} has no module {missing[0]!r}")
    was_training = model.training
    model.eval()
    try:
        feats, y, classes = _features(model, at, train_data, cfg.batch_size)
    finally:
        model.train(was_training)
    torch.manual_seed(cfg.seed)
    heads = [make_head(f[:1], classes, _conv1d_output(names[n]))
             for f, n in zip(feats, at, strict=True)]
    for head, f in zip(heads, feats, strict=True):
        _train_head(head, f, y, cfg)
    return EarlyExitModel(model, at, heads, cfg).eval()


@dataclass(frozen=True)
class ExitPoint:
    """One threshold of the accuracy-vs-latency curve (latencies: mean ms per sample)."""

    threshold: float
    accuracy: float
    exit_rates: tuple[float, ...]
    mean_ms: float
    full_ms: float
    speedup: float
    speedup_ci: tuple[float, float] = (float("nan"), float("nan"))


def _ratio_ci(slow: list[float], fast: list[float], n_boot: int = 1000) -> tuple[float, float]:
    """95% bootstrap interval (resampling the samples) of ``mean(slow) / mean(fast)``."""
    s, f = torch.tensor(slow, dtype=torch.float64), torch.tensor(fast, dtype=torch.float64)
    idx = torch.randint(0, len(slow), (n_boot, len(slow)),
                        generator=torch.Generator().manual_seed(0))
    ratios = (s[idx].mean(1) / f[idx].mean(1)).sort().values
    return float(ratios[int(0.025 * n_boot)]), float(ratios[int(0.975 * n_boot) - 1])


def exit_curve(ee: EarlyExitModel, x: Tensor, y: Tensor, thresholds: Sequence[float],
               clock: Clock | None = None, repeats: int = 3) -> list[ExitPoint]:
    """Accuracy, exit rates and mean batch-1 latency per threshold.

    Each sample is classified ``repeats`` times by the early-exit model and the full model in
    alternating order; the fastest call of each counts (contention only adds time), and the
    latency of a threshold is the mean over samples; ``speedup_ci`` is a 95% bootstrap
    interval over samples.
    """
    clock = clock or WallClock()
    full = ee.backbone
    points = []
    saved = ee.threshold
    try:
        for t in thresholds:
            ee.threshold = float(t)
            ee.reset_counts()
            fast, slow, correct = [], [], 0
            with torch.no_grad():
                for i in range(x.shape[0]):
                    xi = x[i:i + 1]
                    out: list[Tensor] = []

                    def run_ee(xi: Tensor = xi, out: list[Tensor] = out) -> None:
                        out.append(ee(xi))

                    def run_full(xi: Tensor = xi) -> None:
                        full(xi)

                    f_ms, s_ms = [], []
                    for k in range(repeats):  # alternate; keep each one's fastest call
                        if (i + k) % 2 == 0:
                            f_ms.append(clock.time_call(run_ee))
                            s_ms.append(clock.time_call(run_full))
                        else:
                            s_ms.append(clock.time_call(run_full))
                            f_ms.append(clock.time_call(run_ee))
                    fast.append(min(f_ms))
                    slow.append(min(s_ms))
                    correct += int(out[0].argmax(-1).item() == int(y[i]))
            ee.exit_counts = [c // repeats for c in ee.exit_counts]
            n = x.shape[0]
            points.append(ExitPoint(float(t), correct / n,
                                    tuple(c / n for c in ee.exit_counts),
                                    statistics.fmean(fast), statistics.fmean(slow),
                                    statistics.fmean(slow) / statistics.fmean(fast),
                                    _ratio_ci(slow, fast)))
    finally:
        ee.threshold = saved
        ee.reset_counts()
    return points
