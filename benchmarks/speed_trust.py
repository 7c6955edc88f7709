"""Does ``analyze`` know when it is measuring noise? The same sweep, with and without a CPU hog.

1. ``quiet``: the sweep as the machine is (its load is recorded with every row).
2. ``hog``: the same sweep while ``--hogs`` processes spin on the CPU (started by this script).

Each cell's speedup comes with its 95% bootstrap interval and reliability verdict; the table
also gives an independent timing (plain ``time.perf_counter`` loop, dense and pruned
alternating, ratio of medians) so the interval can be checked against a second clock, and the
summary's sentences: under the hog every affected cell must be refused, in quiet it concludes.

    python benchmarks/speed_trust.py                  # 2 hog processes, 2 threads
    python benchmarks/speed_trust.py --hogs 2 --budget 15
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench import BenchConfig, analyze  # noqa: E402
from prunekit.bench.harness import fixed_threads, prepare_models  # noqa: E402
from prunekit.bench.methods import apply_method, parse_method  # noqa: E402
from prunekit.report.summary import summarize  # noqa: E402


HOG = "import time\nstop = time.time() + 3600\nwhile time.time() < stop:\n    pass\n"


def net() -> nn.Module:
    torch.manual_seed(0)
    layers, c = [], 3
    for w in (32, 64, 64, 128):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)).eval()


def independent_ratio(dense: nn.Module, pruned: nn.Module, x: torch.Tensor,
                      rounds: int = 300) -> float:
    """Ratio of medians from a plain alternating perf_counter loop (no prunekit timer)."""
    d, p = [], []
    with torch.inference_mode():
        for _ in range(5):
            dense(x), pruned(x)
        for _ in range(rounds):
            for m, acc in ((dense, d), (pruned, p)):
                t0 = time.perf_counter()
                m(x)
                acc.append(time.perf_counter() - t0)
    return statistics.median(d) / statistics.median(p)


def pruned_copies(model: nn.Module, x: torch.Tensor, cfg: BenchConfig) -> dict[str, nn.Module]:
    """The sweep's models rebuilt the same way (deterministic methods), BN folded alike."""
    models = {"dense": model}
    for name in ("l1", "2:4"):
        spec = parse_method(name)
        ratio = spec.fixed_ratio if spec.fixed_ratio is not None else 0.5
        models[f"{name}@{ratio:g}"] = apply_method(spec, copy.deepcopy(model), x, ratio).eval()
    return prepare_models(models, cfg, [])


def sweep(label: str, a: argparse.Namespace) -> tuple[list[list], list[str], str]:
    model, x = net(), torch.randn(1, 3, a.size, a.size)
    cfg = BenchConfig(threads=a.threads, repeats=20, max_repeats=a.max_repeats,
                      budget_s=a.budget, memory=False, energy=False)
    load_before = load_average()
    res = analyze(model, x, methods=["l1", "2:4"], ratios=[0.5], config=cfg,
                  sparse_backends=False)
    data = res.to_dict()
    with fixed_threads(a.threads):
        models = pruned_copies(model, x, cfg)
        rows = []
        for s in data["speedups"]:
            if s["status"] != "ok":
                rows.append([label, s["model"], "FAILED", "", "", "", s.get("error", ""), "", ""])
                continue
            ind = independent_ratio(models["dense"], models[s["model"]], x)
            inside = "inside" if s["ci_low"] <= ind <= s["ci_high"] else "outside"
            rows.append([label, s["model"], f"{s['speedup']:.2f}x",
                         f"{s['ci_low']:.2f}-{s['ci_high']:.2f}",
                         f"{s['ratio_of_medians']:.2f}x", "yes" if s["reliable"] else "NO",
                         "; ".join(s["unreliable_reasons"]) or "-", s.get("load", ""),
                         f"{ind:.2f}x ({inside})"])
    return rows, summarize(data), f"{label}: {load_before} before, {load_average()} after"


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=10.0)
    ap.add_argument("--max-repeats", type=int, default=200)
    ap.add_argument("--size", type=int, default=48)
    a = ap.parse_args(argv)
    quiet_rows, quiet_summary, quiet_load = sweep("quiet", a)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(a.hogs)]
    try:
        time.sleep(2)
        hog_rows, hog_summary, hog_load = sweep("hog", a)
    finally:
        for h in hogs:
            h.terminate()
            h.wait()
    cols = ["condition", "cell", "speedup", "95% CI", "ratio of medians", "reliable",
            "why unreliable", "load while timing", "independent timing (vs CI)"]
    refused = [s for s in hog_summary if "not measurable" in s]
    concluded = [s for s in quiet_summary if "the speed of dense" in s]
    tables = [
        {"title": "analyze cells with and without a CPU hog", "columns": cols,
         "rows": quiet_rows + hog_rows,
         "notes": (f"eager, batch 1, {a.threads} threads, 4-conv CNN at {a.size}x{a.size}; "
                   "speedup = median of paired interleaved rounds, 95% bootstrap CI, adaptive "
                   f"until +-5% or {a.budget:g} s per setting; hog = {a.hogs} spinning "
                   "processes")},
        {"title": "summary sentences", "columns": ["condition", "sentence"],
         "rows": [["quiet", s] for s in quiet_summary] + [["hog", s] for s in hog_summary],
         "notes": f"hog: {len(refused)} cells refused; quiet: {len(concluded)} conclusions"},
    ]
    caveats = [quiet_load, hog_load,
               "the machine is shared with other users: a 'quiet' run is only as quiet as "
               "the load recorded with it; cells flagged there are flagged for that reason"]
    path = write_result("speed_trust", "Speed you can trust: a CPU hog vs analyze", tables,
                        command="python benchmarks/speed_trust.py " + " ".join(argv),
                        caveats=caveats, load=f"{quiet_load}; {hog_load}")
    for t in tables:
        print(f"\n{t['title']}\n" + " | ".join(t["columns"]))
        for r in t["rows"]:
            print(" | ".join(str(v) for v in r))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
