"""Recovery benchmark: prunekit recipes vs torch.nn.utils.prune and Torch-Pruning, side by side.

Same model (3 conv 64/128/128 + BN CNN), same dense training, same MACs target, same fine-tuning
budget (optimizer, epochs, lr schedule) for every row; 3 seeds; accuracy mean +- std; CPU
latency of dense and pruned timed interleaved in one process (eager PyTorch, fp32, 1 intra-op
thread) at batch 1 and 256; training batch 128, SGD momentum 0.9, cosine (median of the repeats; speedup = dense median / pruned median).

    python benchmarks/recovery_bench.py            # the committed command (~20 min, 2 cores)
    python benchmarks/recovery_bench.py --quick    # smoke run

Torch-Pruning is a benchmark-only dependency (benchmarks/requirements.txt).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import prunekit as pk
from prunekit.bench.timer import compare_latency
from prunekit.recover.loop import finetune
from prunekit.recover.training import default_accuracy
from prunekit.recover.run import weight_sparsity
from prunekit.recover.structured import count_macs
from prunekit.recover.tasks import load_task, small_cnn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_schema import load_average, write_result  # noqa: E402


def loaders(task: str, seed: int, batch: int = 128):
    tr, va = load_task(task)
    g = torch.Generator().manual_seed(seed)
    return (DataLoader(tr, batch_size=batch, shuffle=True, generator=g),
            DataLoader(va, batch_size=500), tr)


def ft_cfg(a) -> pk.Finetune:
    return pk.Finetune(epochs=a.ft_epochs, lr=a.ft_lr, weight_decay=5e-4)


# --- baselines ---------------------------------------------------------------------------------

def torch_prune_global(model, a, tl, vl):
    from torch.nn.utils import prune

    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d,
                                                                       nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=a.sparsity)
    finetune(model, tl, F.cross_entropy, ft_cfg(a))
    for m, n in params:
        prune.remove(m, n)
    return model


def torch_pruning_l1(model, a, tl, vl, x):
    import torch_pruning as tp

    dense = count_macs(model, x)

    def pruned(ratio):
        m = copy.deepcopy(model)
        tp.pruner.MetaPruner(m, x, importance=tp.importance.MagnitudeImportance(p=1),
                             pruning_ratio=ratio, ignored_layers=[m[-1]]).step()
        return m

    lo, hi = 0.0, 0.95
    for _ in range(14):  # bisection on the channel ratio for the MACs target
        mid = (lo + hi) / 2
        if count_macs(pruned(mid), x) / dense > a.macs:
            lo = mid
        else:
            hi = mid
    m = pruned(hi)
    finetune(m, tl, F.cross_entropy, ft_cfg(a))
    return m


# --- prunekit recipes ---------------------------------------------------------------------------

def pk_recipe(model, a, tl, vl, **kw):
    recipe = pk.Recipe(finetune=ft_cfg(a), seed=a.seed_now, **kw)
    pk.run_recipe(recipe, model, tl, vl)
    return model


def pk_sensitivity(model, a, tl, vl, tr):
    sel = DataLoader(torch.utils.data.Subset(tr, range(512)), batch_size=512)
    res = pk.sensitivity(model, sel, ratios=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98))
    chosen = res.choose(a.sparsity)
    return pk_recipe(model, a, tl, vl, method="unstructured", target=pk.TargetSpec(ratio=a.sparsity),
                     overrides=tuple(chosen.items()))  # every layer, 0.0 included


def rows(a):
    structured = dict(target=pk.TargetSpec(macs=a.macs))
    sp = dict(target=pk.TargetSpec(ratio=a.sparsity))
    return [
        ("torch.nn.utils.prune global L1", "unstructured",
         lambda m, tl, vl, tr, x: torch_prune_global(m, a, tl, vl)),
        ("Torch-Pruning L1 (MetaPruner)", "structured",
         lambda m, tl, vl, tr, x: torch_pruning_l1(m, a, tl, vl, x)),
        ("prunekit structured L1, one-shot", "structured",
         lambda m, tl, vl, tr, x: pk_recipe(m, a, tl, vl, method="structured", criterion="l1",
                                            **structured)),
        ("prunekit structured Taylor, one-shot", "structured",
         lambda m, tl, vl, tr, x: pk_recipe(m, a, tl, vl, method="structured", criterion="taylor",
                                            **structured)),
        ("prunekit structured L1, iterative x3", "structured",
         lambda m, tl, vl, tr, x: pk_recipe(m, a, tl, vl, method="structured", criterion="l1",
                                            schedule=pk.Iterative(steps=3), **structured)),
        ("prunekit structured L1 + distillation", "structured",
         lambda m, tl, vl, tr, x: pk_recipe(m, a, tl, vl, method="structured", criterion="l1",
                                            distill=pk.Distill(temperature=4.0, alpha=0.7),
                                            **structured)),
        ("prunekit Network Slimming", "structured",
         lambda m, tl, vl, tr, x: pk_recipe(
             m, a, tl, vl, method="slimming", criterion="bn_scale", l1=a.slim_l1,
             pretrain=pk.Finetune(epochs=a.slim_epochs, lr=a.ft_lr * 2, weight_decay=5e-4),
             **structured)),
        ("prunekit unstructured L1, uniform", "unstructured",
         lambda m, tl, vl, tr, x: pk_recipe(m, a, tl, vl, method="unstructured", **sp)),
        ("prunekit unstructured L1, sensitivity ratios", "unstructured",
         lambda m, tl, vl, tr, x: pk_sensitivity(m, a, tl, vl, tr)),
    ]


def speedups(dense, pruned, shape, a) -> dict[str, float]:
    out = {}
    for bs, reps in ((1, a.reps1), (256, a.reps256)):
        r = compare_latency({"dense": dense.eval(), "pruned": pruned.eval()},
                            lambda i, bs=bs: torch.randn(bs, *shape), warmup=5, repeats=reps)
        out[f"b{bs}"] = r["dense"].median_ms / r["pruned"].median_ms
        out[f"b{bs}_spread"] = max(r["dense"].spread, r["pruned"].spread)
    return out


def run_task(task: str, a) -> dict:
    shape = (1, 8, 8) if task == "digits" else (1, 40)
    dim = 2 if task == "digits" else 1
    results: dict = {"dense": []}
    for seed in a.seeds:
        a.seed_now = seed
        torch.manual_seed(seed)
        tl, vl, tr = loaders(task, seed)
        dense = small_cnn(dim)
        t0 = time.time()
        finetune(dense, tl, F.cross_entropy, pk.Finetune(epochs=a.dense_epochs, lr=a.dense_lr,
                                                          weight_decay=5e-4))
        acc = default_accuracy(dense.eval(), vl)
        results["dense"].append({"acc": acc, "macs": 1.0, "b1": 1.0, "b256": 1.0})
        print(f"[{task} seed {seed}] dense {acc:.2f}% ({time.time() - t0:.0f}s)", flush=True)
        x = torch.randn(2, *shape)
        dense_macs = count_macs(dense, x)
        for name, _kind, fn in rows(a):
            t0 = time.time()
            torch.manual_seed(seed)
            m = fn(copy.deepcopy(dense).train(), tl, vl, tr, x)
            pk.finalize(m)
            acc = default_accuracy(m.eval(), vl)
            rec = {"acc": acc, "macs": count_macs(m, x) / dense_macs,
                   "sparsity": weight_sparsity(m)}
            rec.update(speedups(dense, m, shape, a))
            results.setdefault(name, []).append(rec)
            print(f"[{task} seed {seed}] {name}: {acc:.2f}% macs {rec['macs']:.3f} "
                  f"b1 {rec['b1']:.2f}x b256 {rec['b256']:.2f}x ({time.time() - t0:.0f}s)",
                  flush=True)
    return results


def _ms(xs: list[float], fmt: str = "{:.2f}") -> str:
    """mean ± sample std (the std printed without a sign)."""
    if len(xs) == 1:
        return fmt.format(xs[0])
    std_fmt = fmt.replace("+", "")
    return f"{fmt.format(statistics.fmean(xs))} ± {std_fmt.format(statistics.stdev(xs))}"


def markdown(all_results: dict, a) -> str:
    lines = []
    for task, res in all_results.items():
        lines += [f"**{task}** (dense {a.dense_epochs} epochs; every row {a.ft_epochs} "
                  f"fine-tuning epochs; seeds {','.join(map(str, a.seeds))})", "",
                  "| method | accuracy % | Δ vs dense | MACs kept | weight sparsity | "
                  "speedup b1 | speedup b256 |", "|---|---|---|---|---|---|---|"]
        dense = [r["acc"] for r in res["dense"]]
        for name, recs in res.items():
            accs = [r["acc"] for r in recs]
            delta = [x - d for x, d in zip(accs, dense, strict=True)]
            sparsity = "—" if name == "dense" else _ms([r["sparsity"] for r in recs], "{:.2f}")
            lines.append(
                f"| {name} | {_ms(accs)} | {'—' if name == 'dense' else _ms(delta, '{:+.2f}')} | "
                f"{_ms([r['macs'] for r in recs], '{:.3f}')} | {sparsity} | "
                f"{_ms([r['b1'] for r in recs])}× | {_ms([r['b256'] for r in recs])}× |")
        lines.append("")
    return "\n".join(lines)


TITLES = {"digits": "digits", "mnist1d": "MNIST-1D"}
COLUMNS = ["method", "accuracy %", "Δ vs dense", "MACs kept", "weight sparsity", "speedup b1",
           "speedup b256"]


def tables(all_results: dict, a) -> list[dict]:
    """One results-schema table per task (the rows of :func:`markdown`)."""
    notes = ("Same CNN (3 conv 64/128/128 + BN, global average pool, linear), same dense training "
             "(SGD momentum 0.9, lr {lr:g} cosine, weight decay 5e-4, batch 128), same MACs target for "
             "every structured row (Torch-Pruning's channel ratio bisected to the same target), same "
             "fine-tuning budget. Accuracy on the held-out split (digits: the seeded, stratified "
             "80/20 split of prunekit.datasets.digits_split, 360 images; MNIST-1D: the standard "
             "1,000-sample test split), mean ± sample std over seeds {seeds}. Speedup = dense median "
             "/ pruned median latency, eager fp32, 1 intra-op thread, interleaved ({r1} repeats at "
             "batch 1, {r256} at batch 256); ± is the spread over seeds.").format(
        lr=a.dense_lr, seeds=", ".join(map(str, a.seeds)), r1=a.reps1, r256=a.reps256)
    out = []
    for task, res in all_results.items():
        dense = [r["acc"] for r in res["dense"]]
        rows = []
        for name, recs in res.items():
            accs = [r["acc"] for r in recs]
            delta = [x - d for x, d in zip(accs, dense, strict=True)]
            rows.append([name, _ms(accs), "—" if name == "dense" else _ms(delta, "{:+.2f}"),
                         _ms([r["macs"] for r in recs], "{:.3f}"),
                         "—" if name == "dense" else _ms([r["sparsity"] for r in recs], "{:.2f}"),
                         _speedup(recs, "b1"), _speedup(recs, "b256")])
        out.append({"title": f"{TITLES.get(task, task)} (dense {a.dense_epochs} epochs; every row "
                             f"{a.ft_epochs} fine-tuning epochs; keep {a.macs:.0%} of the MACs)",
                    "columns": COLUMNS, "rows": rows, "notes": notes if not out else ""})
    return out


NOISE = 1.25  # a speedup this far above the MACs prediction (1 / MACs kept) is noise


def _above_prediction(recs: list[dict], key: str) -> bool:
    return _mean(recs, key) > NOISE / _mean(recs, "macs")


def _speedup(recs: list[dict], key: str) -> str:
    """mean ± std over seeds; † marks a figure above what the MACs ratio predicts."""
    return _ms([r[key] for r in recs]) + "×" + (" †" if _above_prediction(recs, key) else "")


def _mean(recs: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in recs)


def caveats(all_results: dict) -> list[str]:
    """Facts read off the tables (computed, so they follow the figures)."""
    import torch_pruning as tp

    out = ["Baselines: torch.nn.utils.prune.global_unstructured (L1, 90%) and Torch-Pruning "
           f"{tp.__version__} MetaPruner with MagnitudeImportance(p=1)."]
    for task, res in all_results.items():
        dense = _mean(res["dense"], "acc")
        structured = {n: r for n, r in res.items() if _mean(r, "macs") < 0.5}
        if not structured:
            continue
        drop = {n: _mean(r, "acc") - dense for n, r in structured.items()}
        b1 = {n: _mean(r, "b1") for n, r in structured.items()}
        worst = min(drop, key=drop.get)
        out.append(f"{TITLES.get(task, task)}: the structured rows run {min(b1.values()):.2f}–"
                   f"{max(b1.values()):.2f}× faster at batch 1 and change accuracy by "
                   f"{min(drop.values()):+.2f} to {max(drop.values()):+.2f} points; the lowest "
                   f"accuracy is {worst!r}.")
        one, kd = "prunekit structured L1, one-shot", "prunekit structured L1 + distillation"
        if one in drop and kd in drop:
            verb = "raised" if drop[kd] > drop[one] else "did not raise"
            out.append(f"{TITLES.get(task, task)}: distillation (T = 4, α = 0.7) {verb} accuracy "
                       f"over the one-shot L1 row ({drop[kd]:+.2f} vs {drop[one]:+.2f} points).")
    noisy = [f"{TITLES.get(t, t)} {n} ({k})" for t, res in all_results.items()
             for n, r in res.items() for k in ("b1", "b256") if _above_prediction(r, k)]
    if noisy:
        out.append(f"† {len(noisy)} speedup cells are more than {NOISE:g}× above the MACs "
                   f"prediction (1 / MACs kept) and are noise from other processes on the "
                   f"machine, not a result: {'; '.join(noisy)}.")
    dense_macs = [_mean(r, "b1") for res in all_results.values() for n, r in res.items()
                  if n != "dense" and _mean(r, "macs") > 0.99]
    if dense_macs:
        out.append(f"Unstructured rows (weights zeroed, MACs unchanged) run at {min(dense_macs):.2f}–"
                   f"{max(dense_macs):.2f}× of dense at batch 1: dense kernels do not skip zeros.")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="digits,mnist1d")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--macs", type=float, default=0.12, help="MACs kept by structured rows")
    p.add_argument("--sparsity", type=float, default=0.9, help="unstructured rows")
    p.add_argument("--dense-epochs", type=int, default=12)
    p.add_argument("--dense-lr", type=float, default=0.05)
    p.add_argument("--ft-epochs", type=int, default=5)
    p.add_argument("--ft-lr", type=float, default=0.01)
    p.add_argument("--slim-epochs", type=int, default=3, help="sparse-training epochs (extra)")
    p.add_argument("--slim-l1", type=float, default=1e-3)
    p.add_argument("--reps1", type=int, default=100)
    p.add_argument("--reps256", type=int, default=20)
    p.add_argument("--out", default="benchmarks/results/recovery.json")
    p.add_argument("--quick", action="store_true", help="1 seed, 2+1 epochs (smoke run)")
    a = p.parse_args(argv)
    a.seeds = [int(s) for s in a.seeds.split(",")]
    if a.quick:
        a.seeds, a.dense_epochs, a.ft_epochs, a.slim_epochs, a.reps1, a.reps256 = [0], 2, 1, 1, 20, 3
    torch.set_num_threads(1)
    load_start, busy = load_average(), max(os.getloadavg()[0], 0.0)
    results = {t: run_task(t, a) for t in a.tasks.split(",")}
    busy = max(busy, os.getloadavg()[0])
    notes = caveats(results)
    if busy > 2:
        notes.append(f"The machine was shared while this ran (1-minute load up to {busy:.0f} on "
                     f"{os.cpu_count()} cores): latencies, batch 256 above all, are noisy; the "
                     "accuracies do not depend on the load.")
    out = Path(a.out)
    path = write_result(out.stem, "Recovery: prunekit recipes vs Torch-Pruning and "
                        "torch.nn.utils.prune", tables(results, a), caveats=notes,
                        command=" ".join(["python", *sys.argv]),
                        load=f"{load_start} at start; {load_average()} at end")
    if out.resolve() != path.resolve():
        path.replace(out)
    md = markdown(results, a)
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
