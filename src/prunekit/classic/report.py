"""The report :func:`prunekit.classic.prune` returns: what was pruned, size and validation
score before/after, and measured predict latency per runtime and batch size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from prunekit.classic.serving import LatencyRow, ModelSize


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


@dataclass(frozen=True)
class ClassicReport:
    """Result of pruning one classical model.

    Attributes:
        estimator: class name of the pruned estimator.
        method: what was pruned (e.g. "tree-subset selection + cost-complexity pruning").
        metric: "accuracy" (classifiers) or "r2" (regressors), on the validation data.
        max_drop: allowed drop of the validation metric.
        amount: the chosen setting (``ccp_alpha``, ``n_estimators``, ``n_support_vectors``).
        val_before / val_after: validation metric of the input and of the result.
        before / after: :class:`~prunekit.classic.serving.ModelSize` of input and result.
        latency: measured :class:`~prunekit.classic.serving.LatencyRow` per runtime and batch.
        candidates: ``(setting, validation score)`` of every candidate scored.
        clock: the clock the latencies were taken with.
        onnx_agreement: fraction of validation rows where ONNX Runtime and scikit-learn
            predict the same label (classifiers; ``None`` when not converted).
        shrink: the size target asked for (``prune(..., shrink=S)``), else ``None``.
    """

    estimator: str
    method: str
    metric: str
    max_drop: float
    amount: dict[str, float]
    val_before: float
    val_after: float
    before: ModelSize
    after: ModelSize
    latency: tuple[LatencyRow, ...] = ()
    candidates: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    clock: str = "wall"
    onnx_agreement: float | None = None
    shrink: float | None = None

    @property
    def drop(self) -> float:
        """Validation metric lost (negative when the pruned model scores higher)."""
        return self.val_before - self.val_after

    @property
    def size_ratio(self) -> float:
        """Pickle bytes before over after."""
        return self.before.pickle_bytes / self.after.pickle_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (latency samples included)."""
        return {
            "estimator": self.estimator, "method": self.method, "metric": self.metric,
            "max_drop": self.max_drop, "amount": {k: float(v) for k, v in self.amount.items()},
            "val_before": self.val_before, "val_after": self.val_after, "drop": self.drop,
            "before": dataclasses.asdict(self.before), "after": dataclasses.asdict(self.after),
            "latency": [{"runtime": r.runtime, "batch": r.batch, "speedup": r.speedup,
                         "paired_speedup": r.paired_speedup, "dense": r.dense.to_dict(),
                         "pruned": r.pruned.to_dict()} for r in self.latency],
            "candidates": [[float(a), float(b)] for a, b in self.candidates], "clock": self.clock,
            "onnx_agreement": self.onnx_agreement, "shrink": self.shrink,
        }

    def summary(self) -> str:
        """Plain-text table: structure, bytes, validation metric and latency before -> after."""
        b, a = self.before, self.after
        amount = ", ".join(f"{k}={v:.6g}" for k, v in self.amount.items())
        lines = [f"{self.estimator}: {self.method} ({amount})",
                 f"  {'':22s}{'before':>14s}{'after':>14s}{'ratio':>9s}"]

        def row(name: str, x: Any, y: Any, ratio: str = "") -> None:
            lines.append(f"  {name:22s}{x!s:>14s}{y!s:>14s}{ratio:>9s}")

        for name in ("n_trees", "n_nodes", "n_leaves", "n_support_vectors"):
            x, y = getattr(b, name), getattr(a, name)
            if x is not None:
                row(name.replace("n_", "") if name != "n_support_vectors" else "support vectors",
                    x, y, _ratio(x, y))
        row("pickle size", _fmt_bytes(b.pickle_bytes), _fmt_bytes(a.pickle_bytes),
            _ratio(b.pickle_bytes, a.pickle_bytes))
        if b.onnx_bytes is not None and a.onnx_bytes is not None:
            row("onnx size", _fmt_bytes(b.onnx_bytes), _fmt_bytes(a.onnx_bytes),
                _ratio(b.onnx_bytes, a.onnx_bytes))
        row(f"val {self.metric}", f"{self.val_before:.4f}", f"{self.val_after:.4f}",
            f"{-self.drop:+.4f}")
        for r in self.latency:
            row(f"{r.runtime} b={r.batch} ms", f"{r.dense.median:.4g}", f"{r.pruned.median:.4g}",
                f"{r.speedup:.2f}x")
        if self.latency:
            worst = max(max(r.dense.spread, r.pruned.spread) for r in self.latency)
            lines.append(f"  latency: median of {self.latency[0].dense.repeats} interleaved "
                         f"rounds, {self.clock} clock, 1 thread; widest p10-p90 spread "
                         f"{worst:.0%} of the median")
        if self.shrink is not None:
            lines.append(f"  size asked for: >= {self.shrink:g}x smaller; validation drop "
                         f"{self.drop:+.4f} (max_drop {self.max_drop:g}"
                         + (", exceeded)" if self.drop > self.max_drop else ")"))
        if b.onnx_error:
            lines.append(f"  onnx: {b.onnx_error}")
        return "\n".join(lines)
