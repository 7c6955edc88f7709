"""What activation sparsity did to each layer, printable and JSON-ready."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerRow:
    """One sparsified layer: threshold, target and realised (held-out) sparsity, kernel."""

    name: str
    threshold: float
    target: float
    heldout_sparsity: float
    kernel: str
    times_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class ActivationSparsityReport:
    """Result of :func:`prunekit.dynamic.sparsify_activations`.

    Attributes:
        layers: one row per sparsified layer, in model order.
        sparsity: the requested target; ``mean_heldout`` is the parameter-weighted realised
            sparsity of the layer inputs on the held-out calibration samples.
    """

    layers: tuple[LayerRow, ...]
    sparsity: float
    allocation: str
    mean_heldout: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        head = (f"activation sparsity {self.allocation} target {self.sparsity:.0%}: "
                f"{len(self.layers)} layers, held-out sparsity {self.mean_heldout:.1%} "
                "(parameter-weighted)")
        lines = [head, f"{'layer':40s} {'thresh':>8s} {'target':>6s} {'held':>6s} "
                 f"{'kernel':14s} {'time ms':>8s} {'dense ms':>8s}"]
        for r in self.layers:
            chosen = r.times_ms.get(_label(r), float("nan"))
            dense = r.times_ms.get("masked_dense", float("nan"))
            lines.append(f"{r.name[-40:]:40s} {r.threshold:8.4f} {r.target:6.1%} "
                         f"{r.heldout_sparsity:6.1%} {r.kernel:14s} {chosen:8.3f} {dense:8.3f}"
                         + (f"  {r.note}" if r.note else ""))
        return "\n".join(lines)


def _label(r: LayerRow) -> str:
    return r.kernel
