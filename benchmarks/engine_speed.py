"""Structural engine speed: trace + plan + apply on ResNet-50, prunekit vs Torch-Pruning.

Same model (random weights), same input (1x3x224x224), same setting: L1 filter-norm group
importance, 50% of channels removed per group (local), classifier output kept. Each repetition
prunes a fresh deep copy; the two engines are interleaved in one process. Torch-Pruning is an
optional benchmark-only dependency (``pip install torch-pruning``).

Usage: python benchmarks/engine_speed.py [--reps 5] [--size 224]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import statistics
import time

import torch
import torchvision
from results_schema import load_average, write_result

import prunekit as pk


def run_prunekit(model, x, checked: bool) -> int:
    plan = pk.plan_structured(model, x, criterion="l1", ratio=0.5, scope="local",
                              per_layer_max=1.0, check=checked)
    plan.apply() if checked else plan.apply(validate=False)
    return sum(p.numel() for p in model.parameters())


def run_tp(model, x) -> int:
    import torch_pruning as tp

    imp = tp.importance.GroupMagnitudeImportance(p=1)
    pruner = tp.pruner.MagnitudePruner(model, x, importance=imp, pruning_ratio=0.5,
                                       ignored_layers=[model.fc])
    pruner.step()
    return sum(p.numel() for p in model.parameters())


def pct(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.manual_seed(0)
    base = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, args.size, args.size)
    engines = {"prunekit (default: trial on a copy)": lambda m: run_prunekit(m, x, True),
               "prunekit check=False, validate=False": lambda m: run_prunekit(m, x, False)}
    try:
        import torch_pruning  # noqa: F401

        engines["torch-pruning " + torch_pruning.__version__] = lambda m: run_tp(m, x)
    except ImportError:
        print("torch-pruning not installed: prunekit only")
    times = {k: [] for k in engines}
    params = {}
    load0 = load_average()
    with torch.no_grad():
        base(x)  # warm up kernels for this input size
    for _ in range(args.reps):
        for name, fn in engines.items():
            m = copy.deepcopy(base)
            gc.collect()  # the previous engine's garbage is not charged to this one
            t = time.perf_counter()
            params[name] = fn(m)
            times[name].append(time.perf_counter() - t)
    n0 = sum(p.numel() for p in base.parameters())
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads,"
          f" torch {torch.__version__}; ResNet-50 {args.size}x{args.size}, reps={args.reps}")
    rows = [[name, f"{statistics.median(v):.2f}", f"{pct(v, 0.1):.2f}", f"{pct(v, 0.9):.2f}",
             f"{params[name] / 1e6:.2f}M / {n0 / 1e6:.2f}M"] for name, v in times.items()]
    cols = ["engine", "median s", "p10 s", "p90 s", "params after"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    write_result("structural_engine_speed", "Structural engine speed: ResNet-50, prunekit vs "
                 "Torch-Pruning", [{
                     "title": "", "columns": cols, "rows": rows,
                     "notes": (f"Trace + plan + apply, L1 group norm, 50% of channels per group, "
                               f"classifier kept, {args.size}x{args.size} input; a fresh deep copy "
                               f"per repetition and gc.collect() before each timed call; engines "
                               f"interleaved in one process; {args.reps} repetitions, median with "
                               f"p10/p90; {torch.get_num_threads()} threads.")}],
                 caveats=["The default tries the plan on a copy that shares the model's "
                          "parameters and compares its outputs with a masked reference (values, "
                          "not only shapes) on the example input and two perturbed copies, in "
                          "one batch: that check is the difference to the bare engine."]
                 + _busy(load0),
                 load=f"{load0} at start, {load_average()} at end")


def _busy(load: str) -> list[str]:
    try:
        one = float(load.split()[2])
    except (IndexError, ValueError):
        return []
    if one <= 2:
        return []
    return [f"The machine was shared with other jobs (1-minute load {one:.1f} on "
            f"{os.cpu_count()} cores): absolute times are inflated; the engines are "
            "interleaved, so their ratio is the more reliable figure."]


if __name__ == "__main__":
    main()
