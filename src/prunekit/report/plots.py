"""Report plots (matplotlib figures rendered to PNG), each a pure function of the report data.

Every function returns PNG bytes, or ``None`` when the report holds nothing to draw.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

_MARKERS = {"eager": "o", "compile": "s", "cudagraph": "^", "onnxruntime": "D"}


def _subplots(*shape: int, figsize: tuple[float, float], **kw: Any):
    """``(figure, axes)`` on a bare :class:`~matplotlib.figure.Figure`: no pyplot state and no
    global backend change (PNG bytes are rendered by Agg on save)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*shape, **kw)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _predicted(s: dict[str, Any]) -> float:
    pred = s.get("macs_ratio") or 1.0
    eff = s.get("effective_macs_ratio") or pred
    return eff if eff > pred * 1.01 else pred


def speedup_vs_macs(data: dict[str, Any]) -> bytes | None:
    """Measured speedup against the MACs reduction, with the ideal ``y = x`` line."""
    rows = [s for s in data.get("speedups", []) if s["status"] == "ok"]
    if not rows:
        return None
    fig, ax = _subplots(figsize=(6.4, 4.6))
    hi = max(max(_predicted(s) for s in rows), max(s["speedup_p90"] for s in rows), 1.0) * 1.1
    ax.plot([0, hi], [0, hi], "--", color="grey", label="ideal (speedup = MACs ratio)")
    ax.axhline(1.0, color="black", lw=0.6)
    for rt in sorted({s["runtime"] for s in rows}):
        for b in sorted({s["batch"] for s in rows if s["runtime"] == rt}):
            pts = [s for s in rows if s["runtime"] == rt and s["batch"] == b]
            for ok in (True, False):  # hollow markers: unreliable cells
                sel = [s for s in pts if bool(s.get("reliable", True)) is ok]
                if not sel:
                    continue
                lo = [s.get("ci_low", s["speedup_p10"]) for s in sel]
                hi_ = [s.get("ci_high", s["speedup_p90"]) for s in sel]
                y = [s["speedup"] for s in sel]
                err = [[max(0.0, v - a) for v, a in zip(y, lo, strict=True)],
                       [max(0.0, b - v) for v, b in zip(y, hi_, strict=True)]]
                ax.errorbar([_predicted(s) for s in sel], y, yerr=err,
                            fmt=_MARKERS.get(rt, "o"), capsize=3, mfc=None if ok else "none",
                            label=f"{rt}, batch {b}" + ("" if ok else " (unreliable)"))
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("MACs reduction (dense MACs / pruned MACs), predicted")
    ax.set_ylabel("measured speedup (median, 95% CI)")
    ax.set_title("Measured speedup vs MACs reduction")
    ax.legend(fontsize=7)
    return _png(fig)


def pareto(data: dict[str, Any]) -> bytes | None:
    """Accuracy against latency for the sweep, with the Pareto front drawn."""
    pts = [e for e in data.get("sweep", []) if e["status"] == "ok"
           and e.get("accuracy") is not None and e.get("latency_ms") is not None]
    if not pts:
        return None
    fig, ax = _subplots(figsize=(6.4, 4.6))
    for m in sorted({e["method"] for e in pts}):
        es = [e for e in pts if e["method"] == m]
        ax.scatter([e["latency_ms"] for e in es], [e["accuracy"] for e in es], label=m)
        for e in es:
            ax.annotate(f"{e['ratio']:g}", (e["latency_ms"], e["accuracy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    front, best = [], float("-inf")
    for e in sorted(pts, key=lambda e: (e["latency_ms"], -e["accuracy"])):
        if e["accuracy"] > best:
            front.append(e)
            best = e["accuracy"]
    ax.step([e["latency_ms"] for e in front], [e["accuracy"] for e in front], where="post",
            color="black", lw=1, label="Pareto front")
    if data.get("baseline_accuracy") is not None and data.get("baseline_latency_ms"):
        ax.scatter([data["baseline_latency_ms"]], [data["baseline_accuracy"]], marker="*",
                   s=160, color="gold", edgecolor="black", label="dense", zorder=5)
    ax.set_xlabel(f"latency ms ({data.get('latency_setting', 'median')})")
    ax.set_ylabel("accuracy (user eval)")
    ax.set_title("Accuracy vs latency")
    ax.legend(fontsize=7)
    return _png(fig)


def layer_bars(data: dict[str, Any], limit: int = 4) -> bytes | None:
    """Per-layer kept fraction (channels for structured, weights for unstructured)."""
    entries = [e for e in data.get("sweep", []) if e["status"] == "ok" and e.get("layers")]
    if not entries:
        return None
    by_method: dict[str, dict[str, Any]] = {}
    for e in entries:  # the strongest ratio of each method
        if e["method"] not in by_method or e["ratio"] > by_method[e["method"]]["ratio"]:
            by_method[e["method"]] = e
    chosen = list(by_method.values())[:limit]
    fig, axes = _subplots(len(chosen), 1, figsize=(8, 2.2 * len(chosen)), squeeze=False)
    for ax, e in zip(axes[:, 0], chosen, strict=True):
        layers = e["layers"]
        ax.bar(range(len(layers)), [lay["kept"] for lay in layers], color="tab:blue")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("kept fraction")
        ax.set_title(f"{e['method']} @ {e['ratio']:g}: kept {e.get('unit', 'weights')} per layer",
                     fontsize=9)
        if len(layers) <= 30:
            ax.set_xticks(range(len(layers)))
            ax.set_xticklabels([lay["name"] for lay in layers], rotation=90, fontsize=6)
        else:
            ax.set_xlabel(f"layer index (0–{len(layers) - 1})")
    return _png(fig)


def predicted_vs_measured(data: dict[str, Any]) -> bytes | None:
    """Bars: predicted (MACs) vs measured speedup per model, runtime and batch."""
    rows = [s for s in data.get("speedups", []) if s["status"] == "ok"]
    if not rows:
        return None
    rows = rows[:24]
    fig, ax = _subplots(figsize=(max(6.4, 0.45 * len(rows) + 2), 4.2))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [_predicted(s) for s in rows], 0.4, label="predicted (MACs)")
    ax.bar([x + 0.2 for x in xs], [s["speedup"] for s in rows], 0.4, label="measured",
           yerr=[[s["speedup"] - s["speedup_p10"] for s in rows],
                 [s["speedup_p90"] - s["speedup"] for s in rows]], capsize=2)
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{s['model']}\n{s['runtime']} b{s['batch']}" for s in rows],
                       rotation=60, fontsize=6, ha="right")
    ax.set_ylabel("speedup over baseline (×)")
    ax.set_title("Predicted vs measured")
    ax.legend(fontsize=7)
    return _png(fig)


def per_runtime(data: dict[str, Any]) -> bytes | None:
    """Median latency of every model under every runtime (failed cells marked with ✗)."""
    cells = data.get("cells", [])
    runtimes = list(dict.fromkeys(c["runtime"] for c in cells))
    if not cells or len(runtimes) < 1:
        return None
    batches = sorted({c["batch"] for c in cells})
    models = list(dict.fromkeys(c["model"] for c in cells))
    fig, axes = _subplots(1, len(batches), figsize=(4.2 * len(batches), 3.8), squeeze=False)
    width = 0.8 / max(len(models), 1)
    for ax, b in zip(axes[0], batches, strict=True):
        for i, m in enumerate(models):
            for j, rt in enumerate(runtimes):
                c = next((c for c in cells if (c["model"], c["runtime"], c["batch"]) == (m, rt, b)),
                         None)
                x = j - 0.4 + width * (i + 0.5)
                if c is None or c["status"] != "ok":
                    ax.text(x, 0, "✗", ha="center", va="bottom", color="red", fontsize=12)
                    continue
                ax.bar(x, c["median_ms"], width, color=f"C{i}", label=m if j == 0 else None,
                       yerr=[[c["median_ms"] - c["p10_ms"]], [c["p90_ms"] - c["median_ms"]]],
                       capsize=2)
        ax.set_xticks(range(len(runtimes)))
        ax.set_xticklabels(runtimes, fontsize=8)
        ax.set_title(f"batch {b}", fontsize=9)
        ax.set_ylabel("median latency ms (p10–p90)")
        ax.legend(fontsize=6)
    fig.suptitle("Per-runtime comparison (✗ = failed)", fontsize=10)
    return _png(fig)


PLOTS: dict[str, tuple[str, Callable[[dict[str, Any]], bytes | None]]] = {
    "speedup_vs_macs": ("Measured speedup vs MACs reduction", speedup_vs_macs),
    "pareto": ("Accuracy vs latency (Pareto front)", pareto),
    "layers": ("Per-layer kept channels / weights", layer_bars),
    "predicted_vs_measured": ("Predicted vs measured", predicted_vs_measured),
    "per_runtime": ("Per-runtime comparison", per_runtime),
}


def render_plots(data: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """``name -> (title, png)`` of every plot that has data."""
    out = {}
    for name, (title, fn) in PLOTS.items():
        png = fn(data)
        if png:
            out[name] = (title, png)
    return out
