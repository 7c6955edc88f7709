"""Embedding-table pruning of MF and NCF on MovieLens-100k: size vs NDCG@10, the 90% bar,
CPU latency and memory, one-shot vs pruning during training.

    PYTHONPATH=src python benchmarks/recsys_prune.py [--seeds 0,1,2] [--epochs 12]
    PYTHONPATH=src python benchmarks/recsys_prune.py --pep-only     # PEP + small dense rows only

``--pep-only`` runs PEP from scratch (search + rewind retrain) and dense models of small widths,
and replaces those rows in the existing results file, keeping its other tables.

Protocol: leave-one-out split (latest rating per user held out), implicit feedback, 4 sampled
negatives per positive in training, HR@10/NDCG@10 of the held-out item among 99 sampled
unobserved items (the NCF protocol; the same candidates for every model of a seed). Each pruned
variant starts from the seed's dense model and is fine-tuned ``--finetune`` epochs.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prunekit.bench.timer import compare_latency  # noqa: E402
from prunekit.recover.recipe import Cubic  # noqa: E402
from prunekit.recsys import (  # noqa: E402
    MF, NCF, GradualEntryMasks, PEPConfig, TrainConfig, evaluate_ranking, load_movielens100k,
    prune_embeddings, train_implicit,
)
from prunekit.recsys.prune import install_table  # noqa: E402
from prunekit.recsys.tables import table_params  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402

CURVE = {"rows": (0.5, 0.8, 0.9), "dims": (0.5, 0.75, 0.9),
         "entries (PEP)": (0.5, 0.8, 0.9, 0.95, 0.97), "mixed": (0.5, 0.8, 0.9, 0.95, 0.97)}
KW = {"rows": "rows", "dims": "dims", "entries (PEP)": "entries", "mixed": "mixed"}
MODELS = {"MF": MF, "NCF": NCF}


def cfg(args, epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=args.lr, batch_size=4096, seed=seed)


def emb_params(model) -> int:
    return sum(table_params(model.get_submodule(n)) for n in model.table_features())


def state_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def ndcg(model, data) -> dict[str, float]:
    train, test = data
    return evaluate_ranking(model, test, k=10, train=train, negatives=99, seed=0)


def variant(dense, data, kind: str, ratio: float, args, seed: int):
    model = copy.deepcopy(dense)
    kw = {KW[kind]: ratio}
    pep = pep_config(args, seed)
    prune_embeddings(model, data[0], pep=pep, seed=seed, **kw)
    if args.finetune:
        train_implicit(model, data[0], cfg(args, args.finetune, seed + 11))
    return model


def gradual(name, data, ratio, args, seed):
    """Train from scratch for epochs + finetune epochs with a cubic magnitude schedule."""
    torch.manual_seed(seed)
    model = MODELS[name](data[0].n_users, data[0].n_items, args.dim)
    c = cfg(args, args.epochs + args.finetune, seed)
    steps = c.epochs * -(-len(data[0]) // c.batch_size)
    masks = GradualEntryMasks(model, list(model.table_features()), ratio, Cubic(steps=10), steps)
    train_implicit(model, data[0], c, on_step=masks)
    for n, t in masks.finish().items():
        install_table(model, [n], t)
    return model


def oneshot_magnitude(dense, data, ratio, args, seed):
    model = copy.deepcopy(dense)
    prune_embeddings(model, data[0], entries=ratio, method="magnitude")
    train_implicit(model, data[0], cfg(args, args.finetune, seed + 11))
    return model


def latency_rows(name, dense, pruned: dict, n_users, n_items) -> list[list]:
    rows = []
    for batch in (1, 1024):
        def make(i, b=batch):
            g = torch.Generator().manual_seed(100 + i)
            return (torch.randint(0, n_users, (b,), generator=g),
                    torch.randint(0, n_items, (b,), generator=g))
        models = {"dense": dense.eval(), **{k: m.eval() for k, m in pruned.items()}}
        stats = compare_latency(models, make, warmup=10, repeats=60, number=None, rotate=8)
        base = stats["dense"].median
        for k, s in stats.items():
            rows.append([name, k, batch, round(s.median * 1000, 1),
                         f"{s.p10 * 1000:.1f}-{s.p90 * 1000:.1f}",
                         f"{base / s.median:.2f}x", round(state_bytes(models[k]) / 2**20, 3)])
    return rows


def fmt(vals: list[float]) -> str:
    return f"{statistics.mean(vals):.4f} ± {statistics.pstdev(vals):.4f}"


def run(args) -> None:
    torch.set_num_threads(1)
    data = load_movielens100k()
    seeds = [int(s) for s in args.seeds.split(",")]
    curve, bar, latency, during = [], [], [], []
    load_start = load_average()
    t0 = time.time()
    for name, cls in MODELS.items():
        res: dict[tuple[str, float], list[tuple[float, float, float]]] = {}
        for seed in seeds:
            torch.manual_seed(seed)
            dense = cls(data[0].n_users, data[0].n_items, args.dim)
            train_implicit(dense, data[0], cfg(args, args.epochs, seed))
            d = ndcg(dense, data)
            res.setdefault(("dense", 0.0), []).append((0.0, d["ndcg@10"], d["hr@10"]))
            keep = {}
            for kind, ratios in CURVE.items():
                for r in ratios:
                    m = variant(dense, data, kind, r, args, seed)
                    e = ndcg(m, data)
                    removed = 1 - emb_params(m) / emb_params(dense)
                    res.setdefault((kind, r), []).append((removed, e["ndcg@10"], e["hr@10"]))
                    if seed == seeds[0] and r == 0.9:
                        keep[f"{kind} 0.9"] = m
                    print(f"{name} seed {seed} {kind} {r}: {e} removed {removed:.3f} "
                          f"({time.time() - t0:.0f}s)", flush=True)
            for how in ("one-shot + fine-tune", "during training (cubic)"):
                m = oneshot_magnitude(dense, data, 0.9, args, seed) if how.startswith("one") \
                    else gradual(name, data, 0.9, args, seed)
                e = ndcg(m, data)
                removed = 1 - emb_params(m) / emb_params(dense)
                res.setdefault((how, 0.9), []).append((removed, e["ndcg@10"], e["hr@10"]))
            if seed == seeds[0]:
                latency += latency_rows(name, dense, keep, data[0].n_users, data[0].n_items)
        dense_nd = statistics.mean(v[1] for v in res[("dense", 0.0)])
        for (kind, r), vals in res.items():
            nd = [v[1] for v in vals]
            rel = (statistics.mean(nd) - dense_nd) / dense_nd * 100
            row = [name, kind, r, round(statistics.mean(v[0] for v in vals), 4), fmt(nd),
                   round(statistics.mean(v[2] for v in vals), 4), f"{rel:+.2f}%"]
            (during if kind.startswith(("one-shot", "during")) else curve).append(row)
            if r >= 0.9 and not kind.startswith(("one-shot", "during")):
                met = statistics.mean(v[0] for v in vals) >= 0.9 and rel >= -2.0
                bar.append([name, kind, r, row[3], f"{rel:+.2f}%", "met" if met else "not met"])
    write(args, seeds, curve, bar, latency, during, load_start)


def write(args, seeds, curve, bar, latency, during, load_start) -> None:
    cols = ["model", "method", "target", "embedding params removed", "NDCG@10 (mean ± sd)",
            "HR@10", "NDCG@10 vs dense"]
    tables = [
        {"title": "Size vs NDCG@10 (MovieLens-100k, leave-one-out, 99 sampled negatives)",
         "columns": cols, "rows": curve,
         "notes": f"{len(seeds)} seeds; dim {args.dim}; dense {args.epochs} epochs; each pruned "
                  f"variant fine-tuned {args.finetune} epochs (PEP: {args.pep_epochs} epochs of "
                  "threshold training first). 'removed' counts stored embedding values (bias "
                  "tables included); index metadata (remap, CSR pointers) is not counted."},
        {"title": "Bar: >= 90% of embedding parameters removed within 2% relative NDCG@10",
         "columns": ["model", "method", "target", "removed", "NDCG@10 vs dense", "bar"],
         "rows": bar},
        {"title": "PEP's reported trend (Liu et al., ICLR 2021), for comparison",
         "columns": ["source", "dataset / metric", "embedding params removed", "quality"],
         "rows": [["PEP paper (as summarised in its abstract)", "MovieLens-1M, Criteo, Avazu / AUC",
                   "97-99%", "comparable or better than the dense baseline"],
                  ["this page, entries (PEP)", "MovieLens-100k / NDCG@10", "see rows above",
                   "see 'NDCG@10 vs dense'"]]},
        {"title": "CPU latency (lookup + forward) and memory, dense vs pruned at 90%",
         "columns": ["model", "variant", "batch", "median us", "p10-p90 us", "speedup",
                     "state MiB"],
         "rows": latency,
         "notes": "eager PyTorch, 1 thread, fp32; dense and pruned timed interleaved in one "
                  "process (prunekit.bench.timer.compare_latency, 60 rounds, rotating random ids);"
                  " state MiB = parameters + buffers (remap / CSR indices included)."},
        {"title": "One-shot vs pruning during training at equal size (entries, magnitude, 90%)",
         "columns": cols, "rows": during,
         "notes": f"one-shot: dense {args.epochs} epochs, prune, {args.finetune} epochs "
                  f"fine-tune; during training: {args.epochs + args.finetune} epochs from "
                  "scratch with a cubic schedule (prunekit.recover.schedules, 10 updates over "
                  "the first 75%), same total epochs."},
    ]
    caveats = [f"load at start: {load_start}; the machine was shared (2 cores); latency "
               "figures carry that noise, see p10-p90",
               "models are small (dim 32) and trained briefly; absolute HR/NDCG are below "
               "converged published NCF figures",
               "sampled-negative metrics (99 negatives) overstate full-ranking quality "
               "(Krichene & Rendle, KDD 2020)"]
    path = write_result("recsys_prune", "Recommender embedding pruning (MovieLens-100k)",
                        tables, caveats=caveats, load=f"{load_start}; at end: {load_average()}")
    print(path)


PEP_LABEL = "entries (PEP from scratch + rewind retrain)"


def pep_config(args, seed: int) -> PEPConfig:
    """Search: s_init -15, Adam with L2 (which also pulls the threshold logits up, as in the
    paper's optimiser) for at most ``--pep-epochs``; retrain: the dense model's budget."""
    search = TrainConfig(epochs=args.pep_epochs, lr=args.lr, batch_size=4096, seed=seed + 7,
                         weight_decay=args.pep_wd)
    return PEPConfig(s_init=-15.0, train=search, threshold_lr=args.pep_threshold_lr,
                     retrain=cfg(args, args.epochs, seed + 11))


def pep_task(job):
    """One (model, seed): dense at full and small widths, PEP from scratch at each target."""
    name, seed, args = job
    torch.set_num_threads(1)
    data = load_movielens100k()
    n_u, n_i = data[0].n_users, data[0].n_items
    out = []
    for dim in (args.dim, 4, 3):
        torch.manual_seed(seed)
        m = MODELS[name](n_u, n_i, dim)
        train_implicit(m, data[0], cfg(args, args.epochs, seed))
        if dim == args.dim:
            full = emb_params(m)
        e = ndcg(m, data)
        out.append(("dense" if dim == args.dim else f"dense dim {dim}", 0.0 if dim == args.dim
                    else round(1 - dim / args.dim, 4), 1 - emb_params(m) / full, e, None))
    for ratio in args.pep_ratios:
        torch.manual_seed(seed)
        m = MODELS[name](n_u, n_i, args.dim)
        rep = prune_embeddings(m, data[0], entries=ratio, method="pep",
                               pep=pep_config(args, seed))
        e = ndcg(m, data)
        out.append((PEP_LABEL, ratio, rep.removed, e, rep.pep))
        print(f"{name} seed {seed} PEP {ratio}: {e} reached={rep.pep.reached} "
              f"step={rep.pep.step}", flush=True)
    return name, seed, [(k, r, rm, e, None if p is None else (p.reached, p.step))
                        for k, r, rm, e, p in out]


def run_pep(args) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    load_start = load_average()
    jobs = [(n, s, args) for n in args.models.split(",") for s in seeds]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        done = pool.map(pep_task, jobs)
    res: dict[tuple, list] = {}
    for name, _seed, rows in done:
        for kind, r, removed, e, info in rows:
            res.setdefault((name, kind, r), []).append((removed, e, info))
    curve, bar, search = [], [], []
    for (name, kind, r), vals in res.items():
        dense_nd = statistics.mean(v[1]["ndcg@10"] for v in res[(name, "dense", 0.0)])
        nd = [v[1]["ndcg@10"] for v in vals]
        rel = (statistics.mean(nd) - dense_nd) / dense_nd * 100
        removed = statistics.mean(v[0] for v in vals)
        curve.append([name, kind, r, round(removed, 4), fmt(nd),
                      round(statistics.mean(v[1]["hr@10"] for v in vals), 4), f"{rel:+.2f}%"])
        if removed >= 0.85 and kind != "dense":
            met = removed >= 0.9 and rel >= -2.0
            bar.append([name, kind, r, round(removed, 4), f"{rel:+.2f}%",
                        "met" if met else "not met"])
        if kind == PEP_LABEL:
            search.append([name, r, sum(v[2][0] for v in vals), len(vals),
                           " / ".join(str(v[2][1]) for v in vals)])
    merge_results(args, seeds, curve, bar, search, load_start)


def merge_longer(args, doc, curve, bar) -> list[dict]:
    """Rows at another dense budget go to their own table (the main curve uses 12 epochs)."""
    title = f"Dense budget {args.epochs} epochs ({args.models}): dense, small widths, PEP"
    tables = [t for t in doc["tables"] if t["title"] != title]
    ours = args.models.split(",")
    tables[1]["rows"] = [r for r in tables[1]["rows"]
                         if not (r[0] in ours and r[1].endswith(f"({args.epochs} ep)"))]
    tables[1]["rows"] += [[r[0], f"{r[1]} ({args.epochs} ep)", *r[2:]] for r in bar]
    tables.insert(3, {"title": title, "columns": tables[0]["columns"], "rows": curve,
                      "notes": f"as the --pep-only rows of the first table, with every model "
                               f"(dense, small dense, PEP retrain) trained {args.epochs} epochs"})
    return tables


def merge_results(args, seeds, curve, bar, search, load_start) -> None:
    path = Path(__file__).resolve().parent / "results" / "recsys_prune.json"
    doc = json.loads(path.read_text())
    if args.epochs != 12:
        doc["tables"] = merge_longer(args, doc, curve, bar)
        write_result("recsys_prune", doc["title"], doc["tables"], caveats=doc["caveats"],
                     load=doc["load"], command=doc["command"] + " ; python " + " ".join(sys.argv))
        return
    tables = doc["tables"]
    drop = ("entries (PEP)", PEP_LABEL, "dense dim 4", "dense dim 3")
    for t in tables[:2]:
        t["rows"] = [r for r in t["rows"] if r[1] not in drop]
    tables[0]["rows"] = [r for r in tables[0]["rows"] if r[1] != "dense"] + curve
    tables[1]["rows"] += bar
    note = (f"{PEP_LABEL}, dense and dense dim 4/3 rows: --pep-only run, {len(seeds)} seeds, "
            f"fresh init; PEP search at most {args.pep_epochs} epochs (Adam lr {args.lr}, "
            f"threshold lr {args.pep_threshold_lr}, L2 {args.pep_wd}, s_init -15, per-entry "
            f"thresholds), stopped when the zeros reach the target; then rewound to the initial "
            f"weights and retrained {args.epochs} epochs with the mask fixed (the dense budget).")
    tables[0]["notes"] = tables[0]["notes"].split(" | ")[0] + " | " + note
    tables = [t for t in tables if not t["title"].startswith("PEP search")]
    tables.insert(2, {"title": "PEP search: did the learned sparsity reach the target?",
                      "columns": ["model", "target", "seeds reached", "seeds",
                                  "stop step per seed"], "rows": search})
    doc["tables"] = tables
    caveats = [c for c in doc["caveats"] if not c.startswith("--pep-only")]
    caveats.append(f"--pep-only rows measured later than the other tables; load at start "
                   f"{load_start}, at end {load_average()}")
    write_result("recsys_prune", doc["title"], tables, caveats=caveats, load=doc["load"],
                 command=doc["command"] + " ; python " + " ".join(sys.argv))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--finetune", type=int, default=2)
    p.add_argument("--pep-epochs", type=int, default=30)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--pep-only", action="store_true")
    p.add_argument("--pep-ratios", type=lambda v: [float(x) for x in v.split(",")],
                   default=[0.9])
    p.add_argument("--pep-threshold-lr", type=float, default=0.1)
    p.add_argument("--pep-wd", type=float, default=1e-5)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--models", default="MF,NCF")
    args = p.parse_args()
    run_pep(args) if args.pep_only else run(args)


if __name__ == "__main__":
    main()
