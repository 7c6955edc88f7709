"""Fuzz the structural engine with random architectures and count the outcomes.

Each seed builds one random model (``tests/structural/fuzz_models.py``), plans channel
pruning with a setting drawn from the seed (ratio 0.3/0.5/0.7, local or global scope, L1, L2
or random scores), applies it, and compares the pruned model on two inputs with an independent masked
reference (``tests/structural/masked_reference.py``: removed channels zeroed in the dense
weights); ``verify`` is run too. Counts: tried, pruned, refused (by reason), wrong, verify
crashes, verify false alarms.

    python benchmarks/fuzz_engine.py --seeds 2000
    python benchmarks/fuzz_engine.py --seeds 2000 --start 2000   # another seed range

A run starting at seed 0 writes ``results/fuzz_engine.json``; one starting elsewhere writes
``results/fuzz_engine_from_<start>.json``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "structural"))
from fuzz_check import run_case  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0, t0 = load_average(), time.perf_counter()
    counts: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    failures = []
    for seed in range(args.start, args.start + args.seeds):
        o = run_case(seed)
        counts[o.status] += 1
        counts["verify " + o.verify] += 1
        reasons.update(o.reasons or (["no prunable channels"] if o.status == "refused" else []))
        if o.status == "wrong" or o.verify != "ok":
            failures.append([seed, o.status, o.verify, o.detail])
            print(seed, o, flush=True)
        done = seed - args.start + 1
        if done % 100 == 0 or done == args.seeds:
            _write(args, done, counts, reasons, failures, time.perf_counter() - t0, load0)
    print(dict(counts), dict(reasons))


def _write(args, done, counts, reasons, failures, secs, load0) -> None:
    rows = [["tried", done], ["pruned and equal to the masked reference", counts["pruned"]],
            ["refused (nothing pruned)", counts["refused"]], ["wrong", counts["wrong"]],
            ["verify crashes", counts["verify crash"]],
            ["verify false alarms", counts["verify false_alarm"]],
            ["verify missed a wrong model", counts["verify missed"]]]
    tables = [{"title": "Outcomes", "columns": ["outcome", "models"], "rows": rows,
               "notes": f"seeds {args.start}..{args.start + done - 1}; per seed a ratio of 0.3, "
                        f"0.5 or 0.7, local or global scope, L1, L2 or random scores; two "
                        f"inputs per model; {secs:.0f} s on one thread"},
              {"title": "Models with channels left unpruned, by reason (a model may have "
                        "several; outputs themselves are always kept)",
               "columns": ["reason", "models"],
               "rows": [[k, v] for k, v in reasons.most_common()]}]
    if failures:
        tables.append({"title": "Failures", "columns": ["seed", "status", "verify", "detail"],
                       "rows": failures})
    name = "fuzz_engine" + (f"_from_{args.start}" if args.start else "")
    title = "Structural engine: random architectures" + (
        f" (seeds from {args.start})" if args.start else "")
    write_result(name, title, tables,
                 command=f"python benchmarks/fuzz_engine.py --seeds {args.seeds}"
                         + (f" --start {args.start}" if args.start else ""),
                 caveats=["random weights; outcomes do not depend on training",
                          "machine shared with other jobs: run time only, not a timing figure"],
                 load=f"{load0} at start, {load_average()} at end")


if __name__ == "__main__":
    main()
