"""Token merging (ToMe) on torchvision ViT-B/16: measured CPU latency vs the unmerged model.

Random weights (speed does not depend on trained values). For each batch size the unmerged
model and one merged copy per ``r`` are timed round by round in one process, the order of the
models rotated every round; each round's speedup is dense / merged from that round.

Usage::

    python benchmarks/dynamic_tome.py --r 8,16 --batch 1 --rounds 9 --threads 1 --clock cpu
    python benchmarks/dynamic_tome.py --r 8,16 --batch 64 --rounds 3 --threads 1 --clock cpu \\
        --name dynamic_tome_b64
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prunekit.dynamic import merge_tokens, tokens_kept  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402


def _ms(model, x, now) -> float:
    with torch.inference_mode():
        t0 = now()
        model(x)
        return (now() - t0) * 1e3


def _interval(ratios: list[float]) -> tuple[float, float]:
    rng = random.Random(0)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    return boots[50], boots[1949]


def rotate(models: dict, x, rounds: int, now) -> dict[str, list[float]]:
    """ms of every model per round, the order rotated each round (one warm-up call each, on the
    first image only: at batch 64 a full warm-up would double the run)."""
    names = list(models)
    for n in names:
        _ms(models[n], x[:1], now)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            times[n].append(_ms(models[n], x, now))
    return times


def main() -> None:
    import torchvision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--r", default="8,16")
    ap.add_argument("--batch", default="1")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time (needs --threads 1)")
    ap.add_argument("--name", default="dynamic_tome")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (CPU time sums the threads)")
    now = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    load0 = load_average()
    torch.manual_seed(0)
    dense = torchvision.models.vit_b_16(weights=None).eval()
    torch.nn.init.normal_(dense.heads.head.weight, std=0.02)  # zero-initialised by torchvision
    models = {"dense": dense}
    for r in (int(v) for v in args.r.split(",")):
        models[f"r={r}"] = copy.deepcopy(dense)
        merge_tokens(models[f"r={r}"], r)
    rows = []
    for b in (int(v) for v in args.batch.split(",")):
        x = torch.randn(b, 3, 224, 224, generator=torch.Generator().manual_seed(b))
        times = rotate(models, x, args.rounds, now)
        for name, m in list(models.items())[1:]:
            with torch.inference_mode():
                m(x[:1])
            kept = tokens_kept(m)
            ratios = [d / t for d, t in zip(times["dense"], times[name], strict=True)]
            lo, hi = _interval(ratios)
            sp = statistics.median(ratios)
            rom = statistics.median(times["dense"]) / statistics.median(times[name])
            ok = (hi - lo) / sp <= 0.2 and abs(rom - sp) / sp <= 0.1 and args.rounds >= 5
            rows.append([name[2:], str(b), f"{kept[-1]}", f"{sum(kept) / len(kept):.0f}",
                         f"{statistics.median(times['dense']):.0f}",
                         f"{statistics.median(times[name]):.0f}", f"{sp:.2f}x",
                         f"{lo:.2f}-{hi:.2f}", f"{rom:.2f}x", "ok" if ok else "unreliable"])
            print(rows[-1], flush=True)
    clock = "process CPU time, 1 thread" if args.clock == "cpu" else f"wall, {args.threads} thread(s)"
    tables = [{"title": "torchvision ViT-B/16, 224x224, CPU eager",
               "columns": ["r", "batch", "tokens after last block", "mean tokens per block",
                           "dense ms", "ToMe ms", "speedup", "95% CI", "ratio of medians",
                           "reliability"],
               "rows": rows,
               "notes": f"clock: {clock}; {args.rounds} rounds, models in rotated order each "
                        "round; speedup = median of per-round dense/ToMe ratios, 95% bootstrap "
                        "CI ('unreliable' below 5 rounds, or a CI wider than 20%); 197 tokens "
                        "in; ToMe paper (ViT-B/16 AugReg, r=16): ~2x throughput on GPU at "
                        "batch 256."}]
    load1 = load_average()
    caveats = ["random weights: speed only (accuracy needs trained weights, none offline); "
               "fidelity on a real encoder is in dynamic_tome_minilm"]
    if any(int(v) >= 32 for v in args.batch.split(",")):
        caveats.append(f"batch {args.batch}: {args.rounds} rounds only (one batch-64 forward "
                       "takes tens of CPU seconds on this machine)")
    if max(float(v) for v in (load0.split()[2], load1.split()[2])) > 2:
        caveats.append("the machine was shared while measuring (load average above 2)")
    print(write_result(args.name, f"Token merging: ViT-B/16 on CPU, batch {args.batch}", tables,
                       caveats=caveats, load=f"{load0} at start, {load1} at end"))


if __name__ == "__main__":
    main()
