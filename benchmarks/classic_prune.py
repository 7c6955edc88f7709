"""Fitted classical models pruned by prunekit.classic vs dense vs scikit-learn's own ccp_alpha.

Real data that ships with scikit-learn (digits, breast cancer, wine; diabetes for regression),
split 60/20/20 train/validation/test per seed (stratified for classifiers). Per dataset and seed:

- dense: RandomForest(500) or GradientBoosting (scikit-learn defaults, 100 stages);
- sklearn ccp (CV): the same model fitted with ``ccp_alpha`` chosen by 3-fold
  cross-validation on the training rows (GridSearchCV over a grid from the pruning path);
- prunekit: ``prunekit.classic.prune(dense, X_val, y_val, max_drop=0.005, X_train=X_train,
  y_train=y_train)``: the forest scores tree subsets on the validation rows plus its
  out-of-bag training rows; boosting (``ClassicConfig(refine_boosting=True)``) keeps, per
  class, the trees an L1 fit on leaf indicators weighs most, merges half of their sibling-leaf
  pairs and re-fits their leaf values on the training rows; no tree is re-grown (``--val-only``: validation rows alone);
- floor: the same estimator type with a single depth-1 tree (stage), whose predict latency
  is the per-call cost no pruning can go below.

and SVC (RBF, defaults) on digits: dense vs support-vector reduction.

Accuracy (R^2 for diabetes) is on the held-out test rows; the bar table gives the mean over
seeds and its standard error. Predict latency, in scikit-learn and in ONNX Runtime (skl2onnx
export): the models timed interleaved round by round in one process over the same rotating batches of real test
rows, one thread, process CPU time (the machine is shared); median and p10-p90 spread; plus
batch 1 "as served": the dense model in scikit-learn against the pruned and floor models'
ONNX Runtime artifacts, interleaved in one run (cross-runtime, labelled as such).

    python benchmarks/classic_prune.py                 # everything, 3 seeds
    python benchmarks/classic_prune.py --quick         # 1 seed, fewer rounds (smoke run)
    python benchmarks/classic_prune.py --kinds gb --shrink 5   # size asked for, not chosen
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench.timer import (LatencyStats, ProcessCpuClock, calibrate_number,  # noqa: E402
                                  interleaved_samples)
from prunekit.classic import ClassicConfig, prune  # noqa: E402
from prunekit.classic.serving import batches, describe, ort_predictor  # noqa: E402

VAL_ONLY = False  # --val-only: choose on the validation rows alone (no X_train/y_train)
SHRINK = None  # --shrink S: prune the tree models to a size asked for (prune(..., shrink=S))


def datasets():
    from sklearn import datasets as d

    return {"digits": (d.load_digits, True), "breast_cancer": (d.load_breast_cancer, True),
            "wine": (d.load_wine, True), "diabetes": (d.load_diabetes, False)}


def split(name: str, seed: int):
    from sklearn.model_selection import train_test_split

    loader, clf = datasets()[name]
    X, y = loader(return_X_y=True)
    X1, Xte, y1, yte = train_test_split(X, y, test_size=0.2, random_state=seed,
                                        stratify=y if clf else None)
    Xtr, Xv, ytr, yv = train_test_split(X1, y1, test_size=0.25, random_state=seed,
                                        stratify=y1 if clf else None)
    return Xtr, Xv, Xte, ytr, yv, yte, clf


def make(kind: str, clf: bool, seed: int, **kw):
    from sklearn import ensemble

    if kind == "rf":
        cls = ensemble.RandomForestClassifier if clf else ensemble.RandomForestRegressor
        return cls(n_estimators=500, random_state=seed, **kw)
    cls = ensemble.GradientBoostingClassifier if clf else ensemble.GradientBoostingRegressor
    return cls(random_state=seed, **kw)


def ccp_baseline(kind: str, clf: bool, seed: int, Xtr, ytr):
    """scikit-learn's fit-time pruning, alpha chosen by 3-fold CV on the training rows."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if kind == "rf":
        tree = (DecisionTreeClassifier if clf else DecisionTreeRegressor)(random_state=seed)
        path = tree.cost_complexity_pruning_path(Xtr, ytr).ccp_alphas
        grid = sorted({0.0, *np.quantile(path[:-1], [0.5, 0.8, 0.9, 0.95]).tolist()})
    else:
        grid = [0.0, 1e-4, 1e-3, 1e-2]
    search = GridSearchCV(make(kind, clf, seed), {"ccp_alpha": grid}, cv=3, n_jobs=1)
    search.fit(Xtr, ytr)
    return search.best_estimator_, float(search.best_params_["ccp_alpha"])


def floor_model(kind: str, clf: bool, seed: int, Xtr, ytr):
    """The same estimator type at its smallest (one depth-1 tree or stage): its predict
    latency is the per-call cost no pruning can go below."""
    if kind == "svc":
        from sklearn.svm import SVC

        keep = np.concatenate([np.flatnonzero(ytr == c)[:1] for c in np.unique(ytr)])
        return SVC().fit(Xtr[keep], ytr[keep])
    return make(kind, clf, seed, max_depth=1).set_params(n_estimators=1).fit(Xtr, ytr)


def time_models(models: dict, X: np.ndarray, batch: int, repeats: int, onnx: dict | None = None
                ) -> dict:
    """Interleaved latency of ``models`` (scikit-learn predict, or ONNX Runtime from ``onnx``)."""
    from threadpoolctl import threadpool_limits

    clock = ProcessCpuClock()
    if onnx is None:
        pool = batches(X, batch, count=4)
        fns = {k: m.predict for k, m in models.items()}
    else:
        pool = batches(X, batch, count=4, dtype=np.float32)
        fns = {k: ort_predictor(onx) for k, onx in onnx.items()}
    with threadpool_limits(1):
        numbers = {k: calibrate_number(clock, lambda f=f, x=pool[0]: f(x), 2.0)
                   for k, f in fns.items()}
        return interleaved_samples(fns, pool, warmup=1, repeats=repeats, numbers=numbers,
                                   clock=clock)


def time_deployed(dense, onnx: dict, X: np.ndarray, repeats: int) -> dict:
    """Batch-1 latency as served: the dense model in scikit-learn against the pruned and the
    floor model in ONNX Runtime (cross-runtime; the rows cast to float32 inside the call)."""
    from threadpoolctl import threadpool_limits

    clock = ProcessCpuClock()
    pool = batches(X, 1, count=4)
    fns = {"dense": dense.predict}
    for key in ("prunekit", "floor"):
        fns[key] = (lambda f: lambda x: f(x.astype(np.float32)))(ort_predictor(onnx[key]))
    with threadpool_limits(1):
        numbers = {k: calibrate_number(clock, lambda f=f, x=pool[0]: f(x), 2.0)
                   for k, f in fns.items()}
        return interleaved_samples(fns, pool, warmup=1, repeats=repeats, numbers=numbers,
                                   clock=clock)


def ms(st) -> str:
    return f"{st.median:.3g} ({st.p10:.3g}-{st.p90:.3g})"


def tree_row(kind: str, name: str, seed: int, repeats: int, big_repeats: int) -> dict:
    Xtr, Xv, Xte, ytr, yv, yte, clf = split(name, seed)
    dense = make(kind, clf, seed).fit(Xtr, ytr)
    t0 = time.time()
    base, alpha = ccp_baseline(kind, clf, seed, Xtr, ytr)
    t_base = time.time() - t0
    t0 = time.time()
    train = {} if VAL_ONLY else {"X_train": Xtr, "y_train": ytr}
    small, rep = prune(dense, Xv, yv, max_drop=0.005, **train, shrink=SHRINK,
                       config=ClassicConfig(measure=False, refine_boosting=kind == "gb"))
    t_prune = time.time() - t0
    models = {"dense": dense, "ccp_cv": base, "prunekit": small,
              "floor": floor_model(kind, clf, seed, Xtr, ytr)}
    lat1 = time_models(models, Xte, 1, repeats)
    lat10k = time_models({k: m for k, m in models.items() if k != "floor"}, Xte, 10_000,
                         big_repeats)
    sizes = {k: describe(m, Xte, onnx=True) for k, m in models.items()}
    onnx = {k: onx for k, (_, onx) in sizes.items()}
    converted = all(v is not None for v in onnx.values())
    ort1 = time_models(models, Xte, 1, repeats, onnx=onnx) if converted else {}
    dep1 = time_deployed(dense, onnx, Xte, repeats) if converted else {}
    out = {"kind": kind, "data": name, "seed": seed, "clf": clf, "amount": rep.amount,
           "ccp_alpha_cv": alpha, "t_prune_s": t_prune, "t_baseline_s": t_base,
           "deployed_b1": dep1, "load": load_average(), "shrink": SHRINK,
           "val_drop": rep.drop}
    for key, m in models.items():
        size = sizes[key][0]
        out[key] = {"test": float(m.score(Xte, yte)), "val": float(m.score(Xv, yv)),
                    "bytes": size.pickle_bytes, "trees": size.n_trees, "nodes": size.n_nodes,
                    "onnx_bytes": size.onnx_bytes, "b1": lat1[key], "b10k": lat10k.get(key),
                    "ort1": ort1.get(key)}
    return out


def svc_row(seed: int, repeats: int, big_repeats: int) -> dict:
    from sklearn.svm import SVC

    Xtr, Xv, Xte, ytr, yv, yte, _ = split("digits", seed)
    dense = SVC().fit(Xtr, ytr)
    small, rep = prune(dense, Xv, yv, max_drop=0.005, config=ClassicConfig(measure=False))
    models = {"dense": dense, "prunekit": small, "floor": floor_model("svc", True, seed, Xtr, ytr)}
    lat1 = time_models(models, Xte, 1, repeats)
    lat10k = time_models({k: models[k] for k in ("dense", "prunekit")}, Xte, 10_000, big_repeats)
    sizes = {k: describe(m, Xte, onnx=True) for k, m in models.items()}
    onnx = {k: onx for k, (_, onx) in sizes.items()}
    ort1 = (time_models(models, Xte, 1, repeats, onnx=onnx)
            if all(v is not None for v in onnx.values()) else {})
    out = {"seed": seed}
    for key, m in models.items():
        out[key] = {"test": float(m.score(Xte, yte)), "val": float(m.score(Xv, yv)),
                    "sv": int(m.support_vectors_.shape[0]), "b1": lat1[key],
                    "b10k": lat10k.get(key), "ort1": ort1.get(key),
                    "bytes": sizes[key][0].pickle_bytes, "onnx_bytes": sizes[key][0].onnx_bytes}
    return out


def _pts(r: dict, key: str) -> str:
    scale = 100 if r["clf"] else 1
    return f"{(r[key]['test'] - r['dense']['test']) * scale:+.2f}"


def _load1(r: dict) -> str:
    """The 1-minute load average recorded with a row ("-" for rows recorded without it)."""
    load = r.get("load")
    return load.split()[2] if load else "-"


def _served(r: dict, key: str) -> tuple[str, str]:
    """Batch-1 latency as served (dense: scikit-learn; pruned and floor: ONNX Runtime) and
    the dense model's served latency over it; ``-`` where not measured."""
    dep = r.get("deployed_b1") or {}
    if key not in dep:
        return "-", "-"
    return ms(dep[key]), f"{dep['dense'].median / dep[key].median:.1f}x"


def _tree_row(r: dict, key: str) -> list:
    m, d = r[key], r["dense"]
    setting = {"dense": "", "ccp_cv": f"ccp_alpha={r['ccp_alpha_cv']:.3g}", "floor": "",
               "prunekit": ", ".join(f"{k}={v:.3g}" for k, v in r["amount"].items())}[key]
    asked = f"prunekit (shrink={r['shrink']:g}: size asked for)" if r.get("shrink") else None
    return [r["data"], r["seed"],
            {"ccp_cv": "sklearn ccp (CV)", "floor": "floor (1 depth-1 tree)",
             "prunekit": asked}.get(key) or key,
            f"{m['test']:.4f}", "" if key == "dense" else _pts(r, key),
            m["trees"], m["nodes"], f"{m['bytes'] / 1024:.0f}",
            f"{d['bytes'] / m['bytes']:.1f}x", ms(m["b1"]),
            f"{d['b1'].median / m['b1'].median:.2f}x", ms(m["b10k"]) if m["b10k"] else "-",
            f"{d['b10k'].median / m['b10k'].median:.2f}x" if m["b10k"] else "-",
            f"{m['onnx_bytes'] / 1024:.0f}" if m["onnx_bytes"] else "-",
            ms(m["ort1"]) if m["ort1"] else "-",
            f"{d['ort1'].median / m['ort1'].median:.2f}x" if m["ort1"] else "-",
            *_served(r, key), _load1(r), setting]


def tree_table(kind: str, rows: list[dict]) -> dict:
    title = {"rf": "RandomForest(500)", "gb": "GradientBoosting(100 stages)"}[kind]
    cols = ["data", "seed", "model", "test acc / R2", "vs dense (points)", "trees", "nodes",
            "pickle KiB", "smaller", "sklearn batch-1 ms (p10-p90)", "sklearn faster b=1",
            "sklearn batch-10k ms (p10-p90)", "sklearn faster b=10k", "ONNX KiB",
            "ORT batch-1 ms (p10-p90)", "ORT faster b=1",
            "as served batch-1 ms (dense: sklearn, others: ORT)",
            "as served: dense sklearn / this (cross-runtime)", "load (1 min)", "setting"]
    out = []
    for r in rows:
        for key in ("dense", "ccp_cv", "prunekit", "floor"):
            out.append(_tree_row(r, key))
    return {"title": title, "columns": cols, "rows": out,
            "notes": "test = held-out 20% of rows; points = 100 x accuracy difference "
                     "(R^2 difference for diabetes); smaller = pickle bytes ratio to dense; "
                     "sklearn/ORT faster = like-for-like ratio of median predict latency to "
                     "the dense model in the same runtime (scikit-learn predict, or ONNX "
                     "Runtime 1 thread on the skl2onnx export; one thread, process CPU time, "
                     "interleaved rounds); as served = the dense model in scikit-learn "
                     "against this model's ONNX Runtime artifact, interleaved in one run "
                     "(cross-runtime, not a like-for-like figure; '-' where that run was not "
                     "made); load = 1-minute load average when the row was measured; "
                     "prunekit = prune(dense, X_val, y_val, max_drop=0.005, X_train=X_train, "
                     "y_train=y_train) (out-of-bag scoring for the forest; boosting with "
                     "ClassicConfig(refine_boosting=True): trees selected per class by an L1 "
                     "fit on leaf indicators, half the sibling-leaf pairs merged, leaves "
                     "re-fitted), or from the validation rows "
                     "alone where the command says --val-only; floor = one depth-1 tree "
                     "(stage) of the same type" + _asked_note(rows)}


def _asked_note(rows: list[dict]) -> str:
    asked = sorted({r["shrink"] for r in rows if r.get("shrink")})
    if not asked:
        return ""
    return (f"; prunekit (shrink={asked[0]:g}) = the same call with shrink={asked[0]:g}: the "
            "most trees (per class, for boosting) whose pickle is at least that many times "
            "smaller, the size asked for and max_drop not a constraint")


def _ratio(rs: list[dict], key: str, field: str, base: str = "dense") -> float:
    """Smallest ratio over seeds of ``base``'s figure to ``key``'s (bytes or median latency)."""
    def val(m):
        v = m[field]
        return v if isinstance(v, (int, float)) else v.median
    return min(val(r[base]) / val(r[key]) for r in rs)


def _mean_se(pts: list[float]) -> str:
    se = np.std(pts, ddof=1) / np.sqrt(len(pts)) if len(pts) > 1 else float("nan")
    return f"{np.mean(pts):+.2f} ± {se:.2f}"


def _served_min(rs: list[dict]) -> str:
    if not all(r.get("deployed_b1") for r in rs):
        return "-"
    return f"{min(r['deployed_b1']['dense'].median / r['deployed_b1']['prunekit'].median for r in rs):.0f}x"


def bar_table(rf: list[dict], gb: list[dict]) -> dict:
    cols = ["model", "data", "points vs dense (mean ± SE)", "sklearn ccp (CV): points",
            "min smaller vs dense", "min smaller vs ccp (CV)",
            "like-for-like ORT: min faster b=1", "ORT: dense / floor (most possible)",
            "like-for-like sklearn: min faster b=1", "sklearn: dense / floor (most possible)",
            "as served: dense sklearn / pruned ORT, min (cross-runtime)",
            "bar, like-for-like ORT", "bar, like-for-like sklearn"]
    out = []
    for kind, rows in (("RandomForest(500)", rf), ("GradientBoosting", gb)):
        for data in ("digits", "breast_cancer"):
            rs = [r for r in rows if r["data"] == data]
            if not rs:
                continue
            pts = [float(_pts(r, "prunekit")) for r in rs]
            small = _ratio(rs, "prunekit", "bytes")
            acc = np.mean(pts) >= -0.5
            fast, room = _ratio(rs, "prunekit", "b1"), _ratio(rs, "floor", "b1")
            ort = all(r["prunekit"]["ort1"] for r in rs)
            ort_fast = _ratio(rs, "prunekit", "ort1") if ort else None
            ort_room = _ratio(rs, "floor", "ort1") if ort else None
            out.append([kind, data, _mean_se(pts),
                        f"{np.mean([float(_pts(r, 'ccp_cv')) for r in rs]):+.2f}",
                        f"{small:.1f}x", f"{_ratio(rs, 'prunekit', 'bytes', 'ccp_cv'):.1f}x",
                        f"{ort_fast:.2f}x" if ort else "-", f"{ort_room:.2f}x" if ort else "-",
                        f"{fast:.2f}x", f"{room:.2f}x", _served_min(rs),
                        _verdict(small, ort_fast, ort_room, acc) if ort else "-",
                        _verdict(small, fast, room, acc)])
    asked = sorted({r["shrink"] for r in rf + gb if r.get("shrink")})
    title = "Bar: >= 5x smaller, >= 3x faster at batch 1, within 0.5 points (3 seeds)"
    if asked:
        title += f"; size asked for (prune(..., shrink={asked[0]:g})), not chosen by validation"
    return {"title": title, "columns": cols, "rows": out,
            "notes": "points: 100 x test-accuracy difference to the dense model, mean over "
                     "seeds ± its standard error; sizes and speeds: the smallest ratio over "
                     "seeds; like-for-like = pruned and dense in the same runtime (ONNX "
                     "Runtime 1 thread on the skl2onnx export, or scikit-learn predict); "
                     "floor = the same estimator type with one depth-1 tree (stage), timed in "
                     "the same run: no pruning can make a call cheaper than that, so "
                     "dense / floor is the most any pruning can speed up that runtime; as "
                     "served = the dense model in scikit-learn against the pruned model's "
                     "ONNX Runtime artifact (what a user who converts sees; cross-runtime, "
                     "never used for a verdict); verdicts use the like-for-like figures only"}


def _verdict(small: float, fast: float, room: float, acc: bool) -> str:
    misses = [w for w, ok in (("size", small >= 5), ("speed", fast >= 3), ("accuracy", acc))
              if not ok]
    if not misses:
        return "met"
    if "speed" in misses and room < 3:
        misses[misses.index("speed")] = f"speed: the floor allows at most {room:.2f}x"
    return "not met (" + ", ".join(misses) + ")"


def svc_table(rows: list[dict]) -> dict:
    cols = ["seed", "model", "test acc", "vs dense (points)", "support vectors", "pickle KiB",
            "batch-1 ms (p10-p90)", "faster b=1", "batch-10k ms (p10-p90)", "faster b=10k",
            "ORT batch-1 ms (p10-p90)", "ORT faster b=1"]
    out = []
    for r in rows:
        d = r["dense"]
        for key in ("dense", "prunekit", "floor"):
            m = r[key]
            out.append([r["seed"], {"floor": "floor (1 SV per class)"}.get(key, key),
                        f"{m['test']:.4f}",
                        "" if key == "dense" else f"{(m['test'] - d['test']) * 100:+.2f}",
                        m["sv"], f"{m['bytes'] / 1024:.0f}", ms(m["b1"]),
                        f"{d['b1'].median / m['b1'].median:.2f}x",
                        ms(m["b10k"]) if m["b10k"] else "-",
                        f"{d['b10k'].median / m['b10k'].median:.2f}x" if m["b10k"] else "-",
                        ms(m["ort1"]) if m["ort1"] else "-",
                        f"{d['ort1'].median / m['ort1'].median:.2f}x" if m["ort1"] else "-"])
    pts = [(r["prunekit"]["test"] - r["dense"]["test"]) * 100 for r in rows]
    return {"title": "SVC (RBF) on digits: support-vector reduction", "columns": cols,
            "rows": out, "notes": "max_drop=0.005 on validation; test = held-out 20%; "
                                  f"points vs dense over seeds: {_mean_se(pts)} (mean ± SE); "
                                  "floor = an SVC with one support vector per class, timed "
                                  "in the same run (the per-call cost); ORT = ONNX Runtime "
                                  "1 thread on the skl2onnx export"}


def _encode(obj):
    if isinstance(obj, LatencyStats):
        return {"samples": list(obj.samples), "number": obj.number}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    return obj


def _decode(obj):
    if isinstance(obj, dict) and set(obj) == {"samples", "number"}:
        return LatencyStats(tuple(obj["samples"]), obj["number"])
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    return obj


def combine(paths: list[str]) -> tuple[dict, list[str], list[str]]:
    """Results, commands and loads of runs saved with ``--raw-out`` (JSON), merged."""
    results: dict[str, list] = {"rf": [], "gb": [], "svc": []}
    commands, loads = [], []
    for path in paths:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        for kind, rows in raw["results"].items():
            results[kind] += [_decode(r) for r in rows]
        commands.append(raw["command"])
        loads.append(raw["load"])
    return results, commands, loads


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default="digits,breast_cancer,wine,diabetes")
    ap.add_argument("--kinds", default="rf,gb,svc")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--big-repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--name", default="classic_prune")
    ap.add_argument("--raw-out", help="write the raw results here (JSON) instead of the table")
    ap.add_argument("--combine", help="comma-separated --raw-out files: build one table")
    ap.add_argument("--val-only", action="store_true",
                    help="prune from the validation rows alone (no training rows)")
    ap.add_argument("--shrink", type=float, default=None,
                    help="prune the tree models to at least this many times smaller "
                         "(prune(..., shrink=S)) instead of choosing by validation")
    a = ap.parse_args(argv)
    global VAL_ONLY, SHRINK
    VAL_ONLY, SHRINK = a.val_only, a.shrink
    if a.combine:
        results, commands, loads = combine(a.combine.split(","))
        return report(a.name, results, "; ".join(commands) + "; python "
                      "benchmarks/classic_prune.py " + " ".join(argv), " | ".join(loads))
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    reps, big = (3, 2) if a.quick else (a.repeats, a.big_repeats)
    load_start = load_average()
    kinds = a.kinds.split(",")
    results: dict[str, list] = {"rf": [], "gb": [], "svc": []}
    for kind in ("rf", "gb"):
        if kind not in kinds:
            continue
        for name in a.data.split(","):
            for seed in seeds:
                r = tree_row(kind, name, seed, reps, big)
                results[kind].append(r)
                print(kind, name, seed, {k: (round(r[k]["test"], 4), r[k]["trees"],
                                             round(r["dense"]["b1"].median / r[k]["b1"].median, 2))
                                         for k in ("dense", "ccp_cv", "prunekit")},
                      r["amount"], flush=True)
    if "svc" in kinds:
        for seed in seeds:
            r = svc_row(seed, reps, big)
            results["svc"].append(r)
            print("svc", seed, {k: (r[k]["test"], r[k]["sv"]) for k in ("dense", "prunekit")},
                  flush=True)
    load = f"{load_start} at start; {load_average()} at end"
    command = "python benchmarks/classic_prune.py " + " ".join(argv)
    if a.raw_out:
        Path(a.raw_out).write_text(json.dumps({"command": command, "load": load, "results": {
            k: [_encode(r) for r in v] for k, v in results.items()}}), encoding="utf-8")
        return None
    return report(a.name, results, command, load)


def report(name: str, results: dict, command: str, load: str) -> None:
    """Write the tables of ``results`` to the results page file ``name``."""
    bar = bar_table(results["rf"], results["gb"])
    tables = [bar] if bar["rows"] else []
    tables += [tree_table(k, results[k]) for k in ("rf", "gb") if results[k]]
    if results["svc"]:
        tables.append(svc_table(results["svc"]))
    loads = [float(v) for v in re.findall(r"load average ([0-9.]+)", load)]
    caveats = [f"2-core machine shared with other jobs (1-minute load average "
               f"{min(loads):.1f}-{max(loads):.1f} while measuring"
               + ("; above 2" if max(loads) > 2 else "") + "): latencies are "
               "process CPU time of one thread, which excludes waiting for a core but not "
               "cache and memory-bandwidth interference",
               "validation and test sets are small (digits: 360 rows each, breast cancer: 114, "
               "wine: 36); one test row is 0.28, 0.88 and 2.8 points respectively",
               "prunekit rows keep the fitted trees' splits (gradient boosting with training "
               "rows re-fits the leaf values of the trees it keeps); sklearn ccp (CV) rows "
               "are refitted"]
    if "--shrink" in command:
        caveats.append("--shrink: the prunekit tree models were pruned to the size asked for "
                       "(prune(..., shrink=S): the most trees that make the pickle S times "
                       "smaller), not to a count chosen on the validation rows; max_drop "
                       "was not a constraint")
    if "--val-only" in command:
        caveats.append("--val-only: prunekit chose from the validation rows alone (no "
                       "training rows: no out-of-bag scoring, boosting truncated by stages)")
    path = write_result(name, "Pruning fitted classical models (scikit-learn)", tables,
                        command=command, caveats=caveats, load=load)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
