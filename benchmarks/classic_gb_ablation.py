"""Gradient-boosting tree selection: accuracy against size at every tree count, and how the
count chosen on validation rows lands, for variants of the leaf re-fit and of the choice.

Same data and splits as ``classic_prune.py`` (digits and breast cancer, 60/20/20
train/validation/test per seed, ``GradientBoostingClassifier`` with scikit-learn defaults).
Every variant keeps the first ``m`` trees per class of the L1 order fitted on the training
rows (``prunekit.classic.treeselect.l1_tree_order``), for each ``m`` on the grid the library
searches, and differs in what follows:

- labels: leaf values re-fitted on the training labels, half the sibling-leaf pairs merged,
  re-fitted again (what ``ClassicConfig(refine_boosting=True)`` does);
- labels, merge 0.75 / two merge rounds / L2 0.01: the same with more merging or a stronger
  penalty;
- distilled: leaf values fitted to the dense model's class probabilities on the training rows
  plus augmented rows (Gaussian noise at 0.3 feature standard deviations, 20% of the
  features resampled from other rows, mixup of two rows of the same class; 4 copies each),
  the knowledge-distillation target of Buciluă et al. (KDD 2006) and Hinton et al. (2015).

Tables: the test-accuracy change against the dense model at each count (mean ± standard
error over seeds, with hindsight: the count is fixed, not chosen) with the smallest pickle
ratio; and the counts three rules pick on the validation rows (``max_drop=0.005``): the
library's (the fewest from which every larger count stays within the drop), and the median
and upper quartile of that rule's pick over 300 bootstrap resamples of the validation rows
(``--max-drop`` sets the drop).

    python benchmarks/classic_gb_ablation.py                       # seeds 0-5, both data sets
    python benchmarks/classic_gb_ablation.py --seeds 0 --data breast_cancer --quick
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classic_prune import make, split  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402

from prunekit.classic import treeselect as ts  # noqa: E402
from prunekit.classic.refine import refit_leaves  # noqa: E402

MAX_DROP = 0.005
VARIANTS = {  # name -> (fit target, merge fraction, merge rounds, L2)
    "labels (library)": ("labels", 0.5, 1, 1e-3),
    "labels, merge 0.75": ("labels", 0.75, 1, 1e-3),
    "labels, two merge rounds": ("labels", 0.5, 2, 1e-3),
    "labels, L2 0.01": ("labels", 0.5, 1, 1e-2),
    "distilled (train + augmented rows)": ("distill", 0.5, 1, 1e-3),
}


def augment(X: np.ndarray, y: np.ndarray, rng: np.random.Generator, copies: int = 4
            ) -> np.ndarray:
    """Rows near the training rows, for any tabular ``X``: Gaussian noise (0.3 feature
    standard deviations), 20% of the features resampled from random rows, and mixup of two
    rows of the same class (weight uniform in [0, 1])."""
    std, (n, d) = X.std(axis=0), X.shape
    out = []
    for _ in range(copies):
        out.append(X + rng.normal(size=X.shape) * 0.3 * std)
        swap = X.copy()
        mask = rng.random(X.shape) < 0.2
        swap[mask] = X[rng.integers(0, n, size=(n, d)), np.arange(d)[None, :]][mask]
        out.append(swap)
        partner = np.empty(n, dtype=np.int64)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            partner[idx] = rng.permutation(idx)
        lam = rng.uniform(0, 1, size=(n, 1))
        out.append(lam * X + (1 - lam) * X[partner])
    return np.vstack(out)


def dense_targets(dense, X: np.ndarray) -> np.ndarray:
    """The dense model's probabilities in the re-fit's terms (positive class if binary)."""
    proba = dense.predict_proba(X)
    return proba[:, 1:] if proba.shape[1] == 2 else proba


def curve(dense, orders, Xtr, ytr, Xv, yv, Xte, yte, variant, X_aug) -> list[dict]:
    target, merge, rounds, l2 = variant
    if target == "labels":
        fit = {"X": Xtr, "y": ytr}
    else:
        Xf = np.vstack([Xtr, X_aug])
        fit = {"X": Xf, "y": None, "targets": dense_targets(dense, Xf)}
    size0, rows = len(pickle.dumps(dense)), []
    for m in ts._grid(dense.estimators_.shape[0]):
        model = refit_leaves(ts.select_trees(dense, orders, m), l2=l2, **fit)
        for _ in range(rounds):
            model = refit_leaves(ts.merge_leaf_pairs(model, merge), l2=l2, **fit)
        rows.append({"m": m, "val_correct": model.predict(Xv) == yv,
                     "test": float(model.score(Xte, yte)),
                     "ratio": size0 / len(pickle.dumps(model))})
    return rows


def stable_pick(correct: np.ndarray, floor: float) -> int:
    """Index of the fewest-tree candidate from which every larger one scores >= floor
    (the last row is the dense model)."""
    acc, k = correct.mean(axis=1), correct.shape[0] - 1
    for i in range(correct.shape[0] - 1, -1, -1):
        if acc[i] < floor - 1e-12:
            break
        k = i
    return k


def picks(rows: list[dict], dense_correct: np.ndarray, boot: int = 300) -> dict[str, int]:
    """Candidate index each rule picks (``len(rows)`` = the dense model)."""
    C = np.vstack([r["val_correct"] for r in rows] + [dense_correct]).astype(float)
    rng = np.random.default_rng(0)
    n = C.shape[1]
    b = [stable_pick(C[:, idx], C[-1, idx].mean() - MAX_DROP)
         for idx in (rng.integers(0, n, n) for _ in range(boot))]
    return {"validation (library)": stable_pick(C, C[-1].mean() - MAX_DROP),
            "bootstrap median": int(np.quantile(b, 0.5, method="lower")),
            "bootstrap 75%": int(np.quantile(b, 0.75, method="higher"))}


def run(name: str, seed: int, variants: dict) -> dict:
    from threadpoolctl import threadpool_limits

    Xtr, Xv, Xte, ytr, yv, yte, clf = split(name, seed)
    with threadpool_limits(1):
        dense = make("gb", clf, seed).fit(Xtr, ytr)
        orders = ts.l1_tree_order(dense, Xtr, ytr)
        X_aug = augment(Xtr, ytr, np.random.default_rng(seed))
        out = {"dense_test": float(dense.score(Xte, yte)), "curves": {}, "picks": {}}
        for key, variant in variants.items():
            rows = curve(dense, orders, Xtr, ytr, Xv, yv, Xte, yte, variant, X_aug)
            out["curves"][key] = [{k: r[k] for k in ("m", "test", "ratio")} for r in rows]
            counts = [r["m"] for r in rows] + [dense.estimators_.shape[0]]
            out["picks"][key] = {rule: counts[i] for rule, i
                                 in picks(rows, dense.predict(Xv) == yv).items()}
            print(name, seed, key, out["picks"][key], flush=True)
    return out


def _pts(values: list[float]) -> str:
    se = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{np.mean(values):+.2f} ± {se:.2f}"


def tables(results: dict, seeds: list[int], counts: list[int]) -> list[dict]:
    fixed, chosen = [], []
    for (name, key), runs in results.items():
        for m in counts:
            pts = [100 * (next(r["test"] for r in run["curves"][key] if r["m"] == m)
                          - run["dense_test"]) for run in runs]
            ratio = min(next(r["ratio"] for r in run["curves"][key] if r["m"] == m)
                        for run in runs)
            fixed.append([name, key, m, _pts(pts), f"{ratio:.1f}x"])
        for rule in runs[0]["picks"][key]:
            ms = [run["picks"][key][rule] for run in runs]
            pts, ratios = [], []
            for run, m in zip(runs, ms, strict=True):
                hit = [r for r in run["curves"][key] if r["m"] == m]
                pts.append(100 * ((hit[0]["test"] if hit else run["dense_test"])
                                  - run["dense_test"]))
                ratios.append(hit[0]["ratio"] if hit else 1.0)
            chosen.append([name, key, rule, " / ".join(map(str, ms)), _pts(pts),
                           f"{min(ratios):.1f}x", sum(r >= 5 for r in ratios)])
    seeds_s = ",".join(map(str, seeds))
    return [
        {"title": "Tree count fixed in hindsight: test points vs dense at m trees per class",
         "columns": ["data", "variant", "trees per class", f"test points (mean ± SE, seeds "
                     f"{seeds_s})", "smaller (pickle), min"], "rows": fixed,
         "notes": "points = 100 x test-accuracy difference to the dense model; the count is "
                  "fixed for every seed (not chosen on validation rows)"},
        {"title": f"Tree count chosen on the validation rows (max_drop={MAX_DROP})",
         "columns": ["data", "variant", "rule", f"trees per class (seeds {seeds_s})",
                     "test points (mean ± SE)", "smaller (pickle), min", "seeds >= 5x smaller"],
         "rows": chosen,
         "notes": "validation (library) = the fewest trees from which every larger count "
                  "keeps the validation accuracy within max_drop of the dense model's; "
                  "bootstrap = that rule's pick on 300 resamples of the validation rows, "
                  "median or upper quartile; a pick of the dense count keeps the dense model "
                  "(the library then truncates stages instead)"}]


def main(argv: list[str]) -> None:
    global MAX_DROP
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--data", default="digits,breast_cancer")
    ap.add_argument("--quick", action="store_true", help="the library's variant only")
    ap.add_argument("--name", default="classic_gb_ablation")
    ap.add_argument("--max-drop", type=float, default=MAX_DROP)
    a = ap.parse_args(argv)
    MAX_DROP = a.max_drop
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = dict(list(VARIANTS.items())[:1]) if a.quick else VARIANTS
    load_start = load_average()
    results: dict = {}
    for name in a.data.split(","):
        runs = [run(name, seed, variants) for seed in seeds]
        for key in variants:
            results[(name, key)] = runs
    counts = [9, 11, 14, 16, 20, 25, 30]
    path = write_result(
        a.name, "Gradient-boosting tree selection: leaf re-fit and count-choice variants",
        tables(results, seeds, counts),
        command="python benchmarks/classic_gb_ablation.py " + " ".join(argv),
        caveats=["accuracy only (no timing); sizes are pickle bytes",
                 "validation and test sets are small (digits: 360 rows, breast cancer: 114): "
                 "one digits test row is 0.28 points, one breast-cancer row 0.88"],
        load=f"{load_start} at start; {load_average()} at end")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
