"""The plain-language "what this means" summary of a report.

Sentences are generated from the measured numbers only, and only from *reliable* cells
(interval within the tolerance, median-of-ratios and ratio-of-medians in agreement, no busy
machine; see :mod:`prunekit.bench.reliability`). An unreliable cell gets one sentence saying it
is not measurable on this machine now, and why; no conclusion is built on it. A speedup above
the MACs ratio is called noise when its interval reaches the ratio, and otherwise named as
exceeding the ideal with the usual cause. Where pruning lost (reliably slower than dense,
failed cells) the summary says so first.
"""

from __future__ import annotations

from typing import Any

UNITS = ("fraction", "percent")


def _setting(data: dict[str, Any], s: dict[str, Any]) -> str:
    cfg = data.get("config", {})
    return (f"{cfg.get('device', '?')}, {cfg.get('dtype', '?')}, {s['runtime']}, batch "
            f"{s['batch']}, {cfg.get('threads', '?')} threads")


def reliable(s: dict[str, Any]) -> bool:
    """A row a conclusion may be drawn from (rows without a verdict predate intervals)."""
    return s.get("status") == "ok" and bool(s.get("reliable", True))


def _interval(s: dict[str, Any]) -> str:
    if "ci_low" in s:
        return f"95% CI {s['ci_low']:.2f}–{s['ci_high']:.2f}×"
    return f"p10–p90 {s['speedup_p10']:.2f}–{s['speedup_p90']:.2f}×"


def _against_macs(s: dict[str, Any], pred: float) -> str:
    sp, lo = s["speedup"], s.get("ci_low", s.get("speedup_p10", s["speedup"]))
    if sp <= pred:
        return f"; it does {pred:.2f}× fewer MACs, so it realises {100 * sp / pred:.0f}% of that."
    if lo <= pred * (1 + s.get("tolerance", 0.05)):
        return (f"; it does {pred:.2f}× fewer MACs: the excess over that ideal is within the "
                "interval and tolerance, i.e. noise — read it as about the MACs ratio.")
    return (f"; this EXCEEDS the ideal of {pred:.2f}× fewer MACs. That can be real (the smaller "
            "model's weights and activations fit in cache, or the dense model was "
            "memory-bound), but it is not explained by the arithmetic saved.")


def _speedup_sentence(data: dict[str, Any], s: dict[str, Any]) -> str:
    pred = s.get("macs_ratio") or 1.0
    eff = s.get("effective_macs_ratio") or pred
    text = (f"{s['model']} on {_setting(data, s)}: {s['speedup']:.2f}× the speed of "
            f"{s['baseline']} ({_interval(s)}")
    text += f"; {s['load']})" if s.get("load") else ")"
    if pred > 1.05:
        text += _against_macs(s, pred)
    elif eff > 1.05 and s.get("ci_low", s["speedup_p10"]) > 1.05:  # sparse kernels paid off
        text += _against_macs(s, eff).replace("fewer MACs", "fewer effective MACs (non-zeros)")
    elif eff > 1.05:
        text += (f"; its zeros would allow {eff:.2f}× with an ideal sparse kernel, but dense "
                 "kernels multiply zeros too, so weight sparsity alone does not buy speed here.")
    else:
        text += "."
    if _slower(s):
        text = "SLOWER than the baseline — " + text
    return text


def _slower(s: dict[str, Any]) -> bool:
    return s["speedup"] < 0.97 and s.get("ci_high", s["speedup_p90"]) < 1.0


def _unmeasurable(data: dict[str, Any], s: dict[str, Any]) -> str:
    reasons = list(s.get("unreliable_reasons") or ["no interval"])
    reasons.sort(key=lambda r: not r.startswith("busy"))  # the machine's state first
    load = f"; {s['load']} while timing" if s.get("load") else ""
    return (f"{s['model']} on {_setting(data, s)}: not measurable on this machine now "
            f"({'; '.join(reasons)}{load}); no figure is stated — re-run when the machine is "
            "quiet or with a larger --budget.")


def accuracy_unit(data: dict[str, Any]) -> tuple[str, str]:
    """``(unit, source)``: the eval's declared unit, or inferred from the values' range."""
    unit = data.get("accuracy_unit")
    if unit in UNITS:
        return unit, "declared by the eval function"
    vals = [data.get("baseline_accuracy")] + [e.get("accuracy") for e in data.get("sweep", [])]
    vals = [v for v in vals if v is not None]
    if vals and all(0.0 <= v <= 1.0 for v in vals):
        return "fraction", "inferred: every accuracy lies in [0, 1]"
    return "percent", "inferred: accuracies above 1"


def _fastest_within(data: dict[str, Any], points: float = 1.0) -> str | None:
    base = data.get("baseline_accuracy")
    sweep = [e for e in data.get("sweep", []) if e["status"] == "ok"
             and e.get("accuracy") is not None]
    if not sweep or base is None:
        return None
    unit, source = accuracy_unit(data)
    step = points * (0.01 if unit == "fraction" else 1.0)
    cfg = data.get("config", {})
    rt, batch = (cfg.get("runtimes") or ["eager"])[0], (cfg.get("batches") or [1])[0]
    rows = {s["model"]: s for s in data.get("speedups", [])
            if s["runtime"] == rt and s["batch"] == batch}
    close = [e for e in sweep if e["accuracy"] >= base - step]
    faster = [(e, rows[n]) for e in close for n in (_name(e), _name(e) + "+sparse")
              if n in rows and reliable(rows[n]) and rows[n].get("ci_low", rows[n]["speedup"]) > 1]
    scale = (f"{points:g} point = {step:g} in the eval's units ({unit}; {source})")
    if not faster:
        unmeasured = [e for e in close if _name(e) in rows and not reliable(rows[_name(e)])]
        extra = (f"; {len(unmeasured)} of them could not be measured reliably"
                 if unmeasured else "")
        return (f"No swept setting within {points:g} point of dense's accuracy ({base:.4g}; "
                f"{scale}) was measured faster than dense at {rt}, batch {batch}{extra}.")
    e, s = max(faster, key=lambda p: p[1]["speedup"])
    return (f"Fastest setting within {points:g} point of dense's accuracy ({base:.4g}; {scale}): "
            f"{s['model']} — accuracy {e['accuracy']:.4g}, {s['speedup']:.2f}× dense "
            f"({_interval(s)}, {rt}, batch {batch}).")


def _name(e: dict[str, Any]) -> str:
    return f"{e['method']}@{e['ratio']:g}"


def summarize(data: dict[str, Any]) -> list[str]:
    """Plain sentences a person can act on, most important first."""
    out: list[str] = []
    ok = [s for s in data.get("speedups", []) if s["status"] == "ok"]
    rows = [s for s in ok if reliable(s)]
    shaky = [s for s in ok if not reliable(s)]
    slower = [s for s in rows if _slower(s)]
    out += [_speedup_sentence(data, s) for s in slower]
    out += [_speedup_sentence(data, s) for s in rows if s not in slower][:8]
    if len(rows) > 8 + len(slower):
        out.append(f"… and {len(rows) - 8 - len(slower)} more comparisons in the tables below.")
    out += [_unmeasurable(data, s) for s in shaky[:8]]
    if len(shaky) > 8:
        out.append(f"… and {len(shaky) - 8} more cells not measurable now (marked UNRELIABLE).")
    fastest = _fastest_within(data)
    if fastest:
        out.append(fastest)
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
