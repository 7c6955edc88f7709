"""Tables shared by the Markdown and HTML reports (one place decides what a row shows).

Every table is ``(title, header, rows)``; failed cells read ``FAILED: <reason>``.
"""

from __future__ import annotations

from typing import Any

Table = tuple[str, list[str], list[list[str]]]


def fmt(v: Any, digits: int = 3) -> str:
    """Human formatting: floats to ``digits`` significant figures, None as an en dash."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def _big(n: Any, unit: str = "") -> str:
    if n is None:
        return "–"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {suf}{unit}"
    return f"{n:.3g} {unit}".strip()


def failed(reason: str | None) -> str:
    text = (reason or "unknown error").replace("\n", " ").replace("|", "/")
    return "FAILED: " + (text[:160] + "…" if len(text) > 160 else text)


def int8_text(q: dict[str, Any] | None) -> str:
    """``static int8 of pruned, 12.3 kB .onnx, rel. err 0.01, top-1 agree 100%, 0 fp32 nodes``."""
    if not q:
        return "–"
    parts = [f"{q['mode']} int8 of {q['source']}", f"{_big(q['onnx_bytes'], 'B')} .onnx",
             f"rel. err {fmt(q['rel_err'])}"]
    if q.get("top1_agree") is not None:
        parts.append(f"top-1 agree {100 * q['top1_agree']:.0f}%")
    parts.append(f"{len(q.get('fp32_nodes', []))} fp32 nodes")
    return ", ".join(parts)


def models_table(data: dict[str, Any]) -> Table:
    """Static costs; "compressed size" (bitmask format), ".pkc size" and "int8" columns
    appear when some model has them."""
    models = data.get("models", {})
    extra = [(key, title) for key, title in (("compressed_bytes", "compressed size"),
                                             ("pkc_bytes", ".pkc size"), ("int8", "int8"))
             if any(key in c for c in models.values())]
    header = ["model", "params", "non-zero params", "size", "MACs / sample",
              "effective MACs / sample"] + [title for _, title in extra]
    rows = []
    for name, c in models.items():
        row = [name, _big(c["params"]), _big(c["nonzero_params"]), _big(c["size_bytes"], "B"),
               _big(c["macs"]), _big(c["effective_macs"])]
        for key, _ in extra:
            row.append(int8_text(c.get(key)) if key == "int8" else _big(c.get(key), "B"))
        rows.append(row)
    return "Models", header, rows


def latency_table(data: dict[str, Any]) -> Table:
    header = ["model", "runtime", "batch", "median ms", "p10–p90 ms", "spread",
              "samples/s", "peak memory", "energy J"]
    rows = []
    for c in data.get("cells", []):
        if c["status"] != "ok":
            rows.append([c["model"], c["runtime"], str(c["batch"]), failed(c.get("error")),
                         "", "", "", "", ""])
            continue
        rows.append([c["model"], c["runtime"], str(c["batch"]), fmt(c["median_ms"]),
                     f"{fmt(c['p10_ms'])}–{fmt(c['p90_ms'])}", f"{100 * c['spread']:.1f}%",
                     fmt(c["throughput"]), _big(c.get("peak_bytes"), "B"), fmt(c.get("energy_j"))])
    return "Latency (every number measured; runtime named)", header, rows


def speedup_table(data: dict[str, Any]) -> Table:
    header = ["model", "runtime", "batch", "predicted (MACs ratio)", "measured speedup",
              "95% CI", "ratio of medians", "measured / predicted", "reliable"]
    rows = []
    int8 = any("int8_over_fp32" in s for s in data.get("speedups", []))
    for s in data.get("speedups", []):
        pred = s.get("macs_ratio")
        if s.get("effective_macs_ratio") and s.get("effective_macs_ratio") > (pred or 0) * 1.01:
            pred = s["effective_macs_ratio"]  # weight sparsity: the ideal sparse-kernel ratio
        if s["status"] != "ok":
            rows.append([s["model"], s["runtime"], str(s["batch"]), f"{fmt(pred)}×",
                         failed(s.get("error")), "", "", "", ""])
            continue
        ci = (f"{fmt(s['ci_low'])}–{fmt(s['ci_high'])}×" if "ci_low" in s
              else f"p10–p90 {fmt(s['speedup_p10'])}–{fmt(s['speedup_p90'])}×")
        verdict = "yes" if s.get("reliable", True) else unreliable(s)
        rows.append([s["model"], s["runtime"], str(s["batch"]), f"{fmt(pred)}×",
                     f"{fmt(s['speedup'])}×", ci, f"{fmt(s.get('ratio_of_medians'))}×",
                     f"{fmt(s['speedup'] / pred) if pred else '–'}", verdict])
    if int8:  # int8 variants timed: each one's gain over its own fp32 model, same run
        header.append("int8 over its fp32")
        for r, s in zip(rows, data["speedups"], strict=True):
            gain = s.get("int8_over_fp32")
            r.append(f"{fmt(gain)}×" if gain else "–")
    return (f"Speedup over {data.get('baseline', 'baseline')} (median of paired per-round "
            "ratios, bootstrap 95% interval)", header, rows)


def unreliable(s: dict[str, Any]) -> str:
    """``UNRELIABLE: <reasons>`` for a cell no conclusion may be drawn from."""
    text = "; ".join(s.get("unreliable_reasons") or ["no interval"]).replace("|", "/")
    return "UNRELIABLE: " + text + (f" ({s['load']})" if s.get("load") else "")


def _kept(e: dict[str, Any]) -> str:
    if e.get("kind") == "structured" and e.get("params_kept") is not None:
        return f"{100 * e['params_kept']:.1f}% params kept"
    return f"{100 * e['sparsity']:.1f}% zero weights" if e.get("sparsity") is not None else "–"


SWEEP_EXTRA = (("compressed_bytes", "compressed size"), ("huffman_bytes", "Deep Compression size"),
               ("int8_speedup", "int8 speedup"), ("int8_over_fp32", "int8 over its fp32"))


def sweep_table(data: dict[str, Any]) -> Table:
    """One row per (method, ratio); size and int8 columns appear when the sweep has them."""
    extra = [(k, t) for k, t in SWEEP_EXTRA if any(k in e for e in data.get("sweep", []))]
    header = ["method", "ratio", "status", "accuracy", "MACs ratio",
              "weight sparsity / params kept", "latency ms"] + [t for _, t in extra]
    rows = []
    for e in data.get("sweep", []):
        if e["status"] != "ok":
            rows.append([e["method"], fmt(e["ratio"]), failed(e.get("error")), fmt(e.get("accuracy")),
                         "", "", ""] + [""] * len(extra))
            continue
        rows.append([e["method"], fmt(e["ratio"]), "ok", fmt(e.get("accuracy"), 4),
                     fmt(e.get("macs_ratio")), _kept(e), fmt(e.get("latency_ms"))]
                    + [_big(e.get(k), "B") if k.endswith("bytes")
                       else (f"{fmt(e[k])}×" if e.get(k) else "–") for k, _ in extra])
    return "Sweep: methods × ratios", header, rows


def stages_table(data: dict[str, Any]) -> Table:
    """Deep Compression's stages, one row each per model: where the bytes went."""
    header = ["model", "stage", "size", "ratio vs dense fp32"]
    rows = [[r["model"], r["label"], _big(r["bytes"], "B"), f"{fmt(r['ratio'])}×"]
            for r in data.get("compression_stages", [])]
    return "Where the bytes went: Deep Compression stages (whole state_dict)", header, rows


def decisions_table(data: dict[str, Any]) -> Table:
    header = ["layer", "shape", "sparsity", "chosen backend", "dense ms", "candidates (ms)"]
    rows = []
    for d in data.get("sparse_decisions", []):
        cands = ", ".join(f"{k} {fmt(v)}" if v is not None else f"{k} failed"
                          for k, v in d.get("timings_ms", {}).items())
        layer = f"{d['model']}: {d['layer']}" if d.get("model") else d["layer"]
        rows.append([layer, str(d.get("shape")), fmt(d.get("sparsity")), d["backend"],
                     fmt(d.get("timings_ms", {}).get("dense")), cands])
    return "Sparse backend decisions (chosen only where measured faster)", header, rows


def all_tables(data: dict[str, Any]) -> list[Table]:
    """The non-empty tables of a report, in reading order."""
    tables = [sweep_table(data), speedup_table(data), latency_table(data), models_table(data),
              stages_table(data), decisions_table(data)]
    return [t for t in tables if t[2]]
