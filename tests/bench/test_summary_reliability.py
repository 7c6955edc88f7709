"""The summary concludes only from reliable cells (synthetic timings, hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from prunekit.bench.reliability import paired_speedup
from prunekit.report.summary import accuracy_unit, summarize
from prunekit.report.tables import speedup_table


def _row(model: str, base: np.ndarray, pruned: np.ndarray, macs_ratio: float = 2.0,
         busy: str = "") -> dict:
    est = paired_speedup(base, pruned)
    if busy:
        est = est.with_reasons([f"busy: {busy}"])
    ratios = base / pruned
    return dict(est.to_dict(), model=model, baseline="dense", runtime="eager", batch=1,
                status="ok", macs_ratio=macs_ratio, effective_macs_ratio=macs_ratio,
                speedup_p10=float(np.quantile(ratios, 0.1)),
                speedup_p90=float(np.quantile(ratios, 0.9)), load="load average 0.3 on 2 CPUs")


def _data(rows: list[dict], **extra) -> dict:
    cfg = {"device": "cpu", "dtype": "fp32", "threads": 2, "runtimes": ["eager"], "batches": [1]}
    return dict({"config": cfg, "speedups": rows, "cells": [], "sweep": []}, **extra)


def _timings(n: int, noise: float, true_speedup: float, seed: int):
    rng = np.random.default_rng(seed)
    base = 4.0 * np.exp(rng.normal(0, noise, n))
    return base, base / true_speedup * np.exp(rng.normal(0, noise, n))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 30), noise=st.floats(0.3, 1.5), true=st.floats(0.3, 5.0),
       seed=st.integers(0, 10_000))
def test_noisy_timings_yield_no_conclusion(n, noise, true, seed):
    base, pruned = _timings(n, noise, true, seed)
    row = _row("l1@0.5", base, pruned)
    assume(not row["reliable"])
    text = " ".join(summarize(_data([row])))
    assert "not measurable on this machine now" in text
    assert "the speed of" not in text and "SLOWER" not in text and "realises" not in text
    assert f"{row['speedup']:.2f}×" not in text
    assert speedup_table(_data([row]))[2][0][-1].startswith("UNRELIABLE")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(20, 60), noise=st.floats(0.0, 0.01), true=st.floats(0.3, 1.9),
       seed=st.integers(0, 10_000))
def test_clean_timings_conclude(n, noise, true, seed):
    base, pruned = _timings(n, noise, true, seed)
    row = _row("l1@0.5", base, pruned)
    assert row["reliable"]
    text = " ".join(summarize(_data([row])))
    assert "the speed of dense" in text and "not measurable" not in text
    assert f"{row['speedup']:.2f}×" in text


def test_busy_machine_refuses_even_a_tight_cell():
    base, pruned = _timings(30, 0.001, 2.0, 0)
    row = _row("l1@0.5", base, pruned, busy="the reference workload got 40% of 2 core(s)")
    text = " ".join(summarize(_data([row])))
    assert "not measurable on this machine now (busy: the reference workload got 40%" in text


def test_claims_above_the_macs_ratio_are_explained_or_called_noise():
    base, pruned = _timings(40, 0.001, 3.0, 1)
    tight = " ".join(summarize(_data([_row("a", base, pruned, macs_ratio=2.0)])))
    assert "EXCEEDS the ideal of 2.00× fewer MACs" in tight and "cache" in tight
    base, pruned = _timings(40, 0.001, 2.0, 2)
    close = " ".join(summarize(_data([_row("a", base, pruned * 0.995, macs_ratio=2.0)])))
    assert "noise" in close or "realises" in close


def _sweep(name_acc: dict[str, float]) -> list[dict]:
    return [{"method": k.split("@")[0], "ratio": float(k.split("@")[1]), "status": "ok",
             "accuracy": v} for k, v in name_acc.items()]


def test_fastest_within_compares_against_dense_and_states_units():
    fast, _ = _timings(40, 0.001, 1.0, 3)
    slow_row = _row("l1@0.2", fast, fast * 3.0)  # 3x SLOWER than dense, same accuracy
    data = _data([slow_row], baseline_accuracy=0.95, sweep=_sweep({"l1@0.2": 0.95}))
    text = " ".join(summarize(data))
    assert "No swept setting within 1 point of dense's accuracy" in text
    assert "fraction; inferred" in text
    good = _row("l1@0.4", fast, fast / 1.8)
    data = _data([slow_row, good], baseline_accuracy=95.0,
                 sweep=_sweep({"l1@0.2": 95.0, "l1@0.4": 94.2}))
    text = " ".join(summarize(data))
    assert "l1@0.4 — accuracy 94.2, 1.80× dense" in text and "1 point = 1 in the eval's units (percent" in text
    # an eval returning fractions: 94.2% vs 95% is 0.8 points in fraction units too
    data["accuracy_unit"] = "fraction"
    assert accuracy_unit(data) == ("fraction", "declared by the eval function")
    text = " ".join(summarize(data))
    assert "No swept setting within 1 point" in text  # 0.8 > 0.01: outside 1 point


def test_reports_mark_unreliable_cells(tmp_path):
    from prunekit.report import write_report

    base, pruned = _timings(10, 0.8, 2.0, 5)
    row = _row("l1@0.5", base, pruned)
    assume_unreliable = not row["reliable"]
    assert assume_unreliable
    paths = write_report(_data([row], baseline="dense"), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "**UNRELIABLE:" in md and "not measurable on this machine now" in md
    assert 'class="failed">UNRELIABLE' in open(paths["html"]).read()


def test_sparse_kernel_speedups_are_measured_against_the_nonzeros():
    base, pruned = _timings(40, 0.001, 3.0, 7)
    row = dict(_row("unstructured@0.9+sparse", base, pruned, macs_ratio=1.0),
               effective_macs_ratio=10.0)
    text = " ".join(summarize(_data([row])))
    assert "10.00× fewer effective MACs (non-zeros), so it realises 30%" in text
    base, pruned = _timings(40, 0.001, 1.0, 8)
    row = dict(_row("unstructured@0.9", base, pruned, macs_ratio=1.0), effective_macs_ratio=10.0)
    assert "weight sparsity alone does not buy speed" in " ".join(summarize(_data([row])))
