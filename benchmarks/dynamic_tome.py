"""Token merging (ToMe) on torchvision ViT-B/16: measured CPU latency vs the unmerged model.

Random weights (speed does not depend on trained values). For each ``r`` the merged model and
the unmodified model are timed in alternating order, round by round, in one process.

Usage::

    python benchmarks/dynamic_tome.py --r 0,8,16 --batch 1,4
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prunekit.dynamic import merge_tokens, tokens_kept  # noqa: E402
from prunekit.dynamic.generate import compare_runs  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402


def _ms(model, x) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        model(x)
        return (time.perf_counter() - t0) * 1e3


def main() -> None:
    import torchvision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--r", default="0,8,16")
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = load_average()
    torch.manual_seed(0)
    dense = torchvision.models.vit_b_16(weights=None).eval()
    torch.nn.init.normal_(dense.heads.head.weight, std=0.02)  # zero-initialised by torchvision
    rows = []
    for r in (int(v) for v in args.r.split(",")):
        merged = copy.deepcopy(dense)
        merge_tokens(merged, r)
        for b in (int(v) for v in args.batch.split(",")):
            x = torch.randn(b, 3, 224, 224, generator=torch.Generator().manual_seed(b))
            with torch.inference_mode():
                same = torch.equal(merged(x), dense(x))  # expected only at r = 0
            kept = tokens_kept(merged)
            res = compare_runs(lambda x=x: _ms(dense, x), lambda m=merged, x=x: _ms(m, x),
                               args.rounds)
            rows.append([str(r), str(b), f"{kept[-1]}", f"{sum(kept) / len(kept):.0f}",
                         f"{res.base_ms:.0f}", f"{res.cand_ms:.0f}", f"{res.speedup:.2f}x",
                         f"{res.low:.2f}-{res.high:.2f}",
                         ("ok" if res.reliable else "unreliable")
                         + ("; output equals dense" if same else "")])
            print(rows[-1], flush=True)
        del merged
    tables = [{"title": "torchvision ViT-B/16, 224x224, CPU eager",
               "columns": ["r", "batch", "tokens after last block", "mean tokens per block",
                           "dense ms", "ToMe ms", "speedup", "95% CI", "reliability"],
               "rows": rows,
               "notes": f"{args.threads} thread(s); median of {args.rounds} alternating rounds; "
                        "speedup = median of per-round ratios with 95% bootstrap CI; ToMe paper "
                        "(ViT-B/16 AugReg, r=16): ~2x throughput on GPU at batch 256."}]
    load1 = load_average()
    caveats = ["random weights: speed only (accuracy needs trained weights, none offline)",
               "batch 64 not run: one ViT-B/16 batch-64 forward takes minutes on this 2-core "
               "machine; batches of 1 and 4 are shown instead"]
    if max(float(v) for v in (load0.split()[2], load1.split()[2])) > 2:
        caveats.append("the machine was shared while measuring (load average above 2)")
    print(write_result("dynamic_tome", "Token merging: ViT-B/16 on CPU", tables,
                       caveats=caveats, load=f"{load0} at start, {load1} at end"))


if __name__ == "__main__":
    main()
