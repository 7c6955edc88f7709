"""Per-layer sensitivity analysis and sensitivity-driven per-layer ratios.

Han et al., "Learning both Weights and Connections", NeurIPS 2015 (Fig. 5) prune one layer at a
time over a range of ratios and read each layer's accuracy curve; the per-layer ratios are then
picked from the curves. We make the pick exact under the usual assumption that accuracy drops add
up across layers: a multiple-choice knapsack (dynamic programme over removed weights, discretised
to ``bins`` units, rounded conservatively) finds the per-layer ratios that remove at least the
global target fraction of the weights with the least summed measured drop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from prunekit.recover.training import describe, evaluate, peek, split_batch
from prunekit.weights import prune_weights, select_layers

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class SensitivityResult:
    """Measured curves: ``curves[layer][j]`` is the metric with only ``layer`` pruned to
    ``ratios[j]`` (weight masks, criterion ``criterion``)."""

    ratios: tuple[float, ...]
    dense_metric: float
    curves: dict[str, list[float]]
    numel: dict[str, int]
    criterion: str = "l1"

    def choose(self, target: float, bins: int = 1000) -> dict[str, float]:
        """Per-layer ratios removing >= ``target`` of all weights with the least summed drop."""
        return choose_ratios(self, target, bins)

    def reachable(self) -> float:
        """The largest fraction of the weights the measured ratios remove (every layer at the
        largest ratio, counted as :func:`choose_ratios` counts: rounded down)."""
        total = sum(self.numel.values())
        r = self.ratios[-1]
        return float(sum(np.floor(r * n + 1e-9) for n in self.numel.values()) / total) if total else 0.0

    def choose_closest(self, target: float, bins: int = 1000) -> tuple[dict[str, float], bool]:
        """:meth:`choose` for ``target``, or, when it is out of reach, every layer at the
        largest measured ratio (the most that can be removed). Returns ``(ratios, reached)``."""
        try:
            return self.choose(target, bins), True
        except ValueError:  # out of reach, or within the knapsack's rounding of the maximum
            return {n: self.ratios[-1] for n in self.curves}, bool(self.reachable() >= target - 1e-9)

    def predicted_drop(self, chosen: dict[str, float]) -> float:
        total = 0.0
        for name, r in chosen.items():
            if r > 0:
                total += max(self.dense_metric - self.curves[name][self.ratios.index(r)], 0.0)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"ratios": list(self.ratios), "dense_metric": self.dense_metric,
                "curves": self.curves, "numel": self.numel, "criterion": self.criterion}

    def plot(self, path: str | Path, chosen: dict[str, float] | None = None) -> Path:
        """Metric vs ratio, one line per layer (PNG, matplotlib Agg); chosen ratios marked."""
        from matplotlib.figure import Figure  # no pyplot: the user's backend stays as it is

        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for name, ys in self.curves.items():
            line, = ax.plot([0.0, *self.ratios], [self.dense_metric, *ys], marker=".", label=name)
            if chosen and chosen.get(name, 0) > 0:
                j = self.ratios.index(chosen[name])
                ax.plot([chosen[name]], [ys[j]], "o", ms=10, mfc="none", color=line.get_color())
        ax.set_xlabel("fraction of the layer's weights pruned")
        ax.set_ylabel("metric")
        ax.set_title("per-layer sensitivity" + (" (circles: chosen ratios)" if chosen else ""))
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path


def sensitivity(model: nn.Module, val_loader: Iterable, eval_fn: Callable | None = None, *,
                ratios: Sequence[float] = DEFAULT_RATIOS, criterion: str = "l1",
                exclude: Iterable[str] = (), calib_data: Iterable | None = None,
                loss_fn: Callable | None = None) -> SensitivityResult:
    """Prune each layer alone at each ratio (on a copy) and evaluate; ``model`` is untouched."""
    ratios = tuple(sorted(float(r) for r in ratios))
    if not ratios or ratios[0] <= 0 or ratios[-1] >= 1:
        raise ValueError(f"ratios must be in (0, 1), got {ratios}")
    layers = select_layers(model, tuple(exclude))
    try:
        dense = float(evaluate(model, val_loader, eval_fn))
    except (RuntimeError, TypeError, IndexError) as e:  # e.g. 3-channel model, 1-channel data
        x, _ = split_batch(peek(val_loader), "val_loader")
        raise ValueError(f"val_loader: the model cannot run on its batches (inputs "
                         f"{describe(x)}): {str(e).strip().splitlines()[0]}") from e
    calib = list(calib_data) if calib_data is not None else None
    curves: dict[str, list[float]] = {}
    for name in layers:
        others = tuple(exclude) + tuple(n for n in layers if n != name)
        curves[name] = []
        for r in ratios:
            trial = copy.deepcopy(model)
            prune_weights(trial, sparsity=r, criterion=criterion, exclude=others,
                          calib_data=calib, loss_fn=loss_fn)
            curves[name].append(float(evaluate(trial, val_loader, eval_fn)))
    numel = {n: int(m.weight.numel()) for n, m in layers.items()}
    return SensitivityResult(ratios, dense, curves, numel, criterion)


def choose_ratios(res: SensitivityResult, target: float, bins: int = 1000) -> dict[str, float]:
    """Multiple-choice knapsack over the measured curves (see module docstring).

    Raises:
        ValueError: ``target`` not in [0, 1) or unreachable with the measured ratios.
    """
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target must be in [0, 1), got {target}")
    names = list(res.curves)
    total = sum(res.numel.values())
    unit = total / bins
    need = int(np.ceil(target * bins - 1e-9))
    options = [0.0, *res.ratios]
    inf = float("inf")
    dp = np.full(need + 1, inf)
    dp[0] = 0.0
    back = np.zeros((len(names), need + 1, 2), dtype=np.int64)  # (option, previous units)
    for i, name in enumerate(names):
        new = np.full(need + 1, inf)
        for j, r in enumerate(options):
            w = int(np.floor(r * res.numel[name] / unit + 1e-9))
            cost = 0.0 if j == 0 else max(res.dense_metric - res.curves[name][j - 1], 0.0)
            for u in np.nonzero(np.isfinite(dp))[0]:
                v = min(need, u + w)
                if dp[u] + cost < new[v] - 1e-12:
                    new[v], back[i, v] = dp[u] + cost, (j, u)
        dp = new
    if not np.isfinite(dp[need]):
        raise ValueError(f"target {target} is unreachable with per-layer ratios up to "
                         f"{res.ratios[-1]} (at most {res.reachable():.4f} of the weights)")
    chosen, v = {}, need
    for i in range(len(names) - 1, -1, -1):
        j, u = back[i, v]
        chosen[names[i]] = options[j]
        v = u
    return {n: chosen[n] for n in names}


__all__ = ["DEFAULT_RATIOS", "SensitivityResult", "choose_ratios", "sensitivity"]
