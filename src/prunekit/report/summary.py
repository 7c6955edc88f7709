"""The plain-language "what this means" summary of a report.

Sentences are generated from the measured numbers only; where pruning lost (slower than
dense, far below the MACs prediction, failed cells) the summary says so first.
"""

from __future__ import annotations

from typing import Any


def _setting(data: dict[str, Any], s: dict[str, Any]) -> str:
    cfg = data.get("config", {})
    return (f"{cfg.get('device', '?')}, {cfg.get('dtype', '?')}, {s['runtime']}, batch "
            f"{s['batch']}, {cfg.get('threads', '?')} threads")


def _speedup_sentence(data: dict[str, Any], s: dict[str, Any]) -> str:
    pred = s.get("macs_ratio") or 1.0
    eff = s.get("effective_macs_ratio") or pred
    sp = s["speedup"]
    text = (f"{s['model']} on {_setting(data, s)}: {sp:.2f}× the speed of {s['baseline']} "
            f"(p10–p90 {s['speedup_p10']:.2f}–{s['speedup_p90']:.2f}×)")
    if pred > 1.05:
        text += f"; it does {pred:.2f}× fewer MACs, so it realises {100 * sp / pred:.0f}% of that."
    elif eff > 1.05:
        text += (f"; its zeros would allow {eff:.2f}× with an ideal sparse kernel, but dense "
                 "kernels multiply zeros too, so weight sparsity alone does not buy speed here.")
    else:
        text += "."
    if sp < 0.97 and s["speedup_p90"] < 1.0:
        text = "SLOWER than the baseline — " + text
    return text


def summarize(data: dict[str, Any]) -> list[str]:
    """Plain sentences a person can act on, most important first."""
    out: list[str] = []
    rows = [s for s in data.get("speedups", []) if s["status"] == "ok"]
    slower = [s for s in rows if s["speedup"] < 0.97 and s["speedup_p90"] < 1.0]
    out += [_speedup_sentence(data, s) for s in slower]
    out += [_speedup_sentence(data, s) for s in rows if s not in slower][:8]
    if len(rows) > 8 + len(slower):
        out.append(f"… and {len(rows) - 8 - len(slower)} more comparisons in the tables below.")
    sweep = [e for e in data.get("sweep", []) if e["status"] == "ok"
             and e.get("accuracy") is not None and e.get("latency_ms") is not None]
    base = data.get("baseline_accuracy")
    if sweep and base is not None:
        best = min((e for e in sweep if e["accuracy"] >= base - 0.01),
                   key=lambda e: e["latency_ms"], default=None)
        if best:
            out.append(f"Fastest setting within 1 point of the baseline accuracy ({base:.4g}): "
                       f"{best['method']} at ratio {best['ratio']:g} — accuracy "
                       f"{best['accuracy']:.4g}, {best['latency_ms']:.3g} ms.")
        else:
            out.append("No swept setting stays within 1 point of the baseline accuracy "
                       f"({base:.4g}); fine-tune after pruning or prune less.")
    fails = [c for c in data.get("cells", []) if c["status"] != "ok"]
    fails += [e for e in data.get("sweep", []) if e["status"] != "ok"]
    if fails:
        out.append(f"{len(fails)} cell(s) failed and are marked FAILED below; the rest were "
                   "measured normally.")
    chosen = [d for d in data.get("sparse_decisions", []) if d["backend"] != "dense"]
    if data.get("sparse_decisions"):
        out.append(f"Sparse kernels were measured faster than dense on {len(chosen)} of "
                   f"{len(data['sparse_decisions'])} layers and used only there.")
    if any("BatchNorm" in n for n in data.get("notes", [])):
        out.append("BatchNorm was folded into the preceding layers of every model (dense and "
                   "pruned alike) before timing.")
    if not out:
        out.append("Nothing was compared: add a pruned model or a sweep.")
    return out
