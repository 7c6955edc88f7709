"""Unstructured 90% sparsity on CPU, end to end: where do sparse kernels beat dense?

A stack of 4 BERT-base-shaped blocks (q, k, v, o 768x768; MLP 768->3072->768 with GELU and
residuals; the attention mixing itself is omitted: it holds no weights) is pruned to 90%
magnitude sparsity. For each token count, ``choose_sparse_backends`` decides per layer on the
layer's real input (CSR only where it measured faster), and the swapped model is timed
against dense, interleaved, with the paired speedup's 95% interval and reliability verdict.

    python benchmarks/sparse_crossover.py                     # 1 thread, wall clock
    python benchmarks/sparse_crossover.py --clock cpu         # process CPU time (shared machine)
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench import BenchConfig, choose_sparse_backends, compare  # noqa: E402
from prunekit.bench.harness import fixed_threads  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock  # noqa: E402
from prunekit.masks import finalize  # noqa: E402
from prunekit.weights import prune_weights  # noqa: E402


class Block(nn.Module):
    def __init__(self, d: int = 768, ff: int = 3072) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        x = x + self.o(self.q(x) + self.k(x) + self.v(x))
        return x + self.down(nn.functional.gelu(self.up(x)))


def stack(sparsity: float) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    dense = nn.Sequential(*(Block() for _ in range(4))).eval()
    pruned = copy.deepcopy(dense)
    prune_weights(pruned, sparsity=sparsity, criterion="l1", scope="global")
    finalize(pruned)  # plain weights with zeros
    return dense, pruned


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="1,4,16,64")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    ap.add_argument("--budget", type=float, default=10.0)
    a = ap.parse_args(argv)
    if a.clock == "cpu" and a.threads != 1:
        raise SystemExit("--clock cpu needs --threads 1")
    clock = ProcessCpuClock() if a.clock == "cpu" else None
    dense, pruned = stack(a.sparsity)
    load0, rows = load_average(), []
    for t in (int(v) for v in a.tokens.split(",")):
        x = torch.randn(1, t, 768)
        m = copy.deepcopy(pruned)
        with fixed_threads(a.threads):
            ds = choose_sparse_backends(m, x, apply=True)
        n_csr = sum(d.backend == "csr" for d in ds)
        cfg = BenchConfig(threads=a.threads, repeats=10, max_repeats=100, budget_s=a.budget,
                          memory=False, energy=False, clock=clock, fold_bn=False)
        row = compare({"dense": dense, "sparse": m}, x, cfg).speedups()[0]
        if row["status"] != "ok":
            rows.append([t, f"{n_csr}/{len(ds)}", "FAILED", "", "", row.get("error", "")])
            continue
        rows.append([t, f"{n_csr}/{len(ds)}", f"{row['speedup']:.2f}x",
                     f"{row['ci_low']:.2f}-{row['ci_high']:.2f}",
                     "yes" if row["reliable"] else "NO",
                     "; ".join(row["unreliable_reasons"]) or row.get("load", "")])
        print(rows[-1], flush=True)
    clock_text = "process CPU time, 1 thread" if clock else f"wall clock, {a.threads} thread(s)"
    tables = [{"title": f"{100 * a.sparsity:g}% unstructured, 4 BERT-base-shaped blocks, batch 1",
               "columns": ["tokens", "layers on CSR", "end-to-end speedup", "95% CI",
                           "reliable", "why unreliable / load"],
               "rows": rows,
               "notes": (f"eager fp32, {clock_text}; CSR (MKL, 32-bit indices) chosen per layer "
                         "only where it measured faster on that layer's input; speedup = median "
                         "of paired interleaved rounds, 95% bootstrap CI")}]
    caveats = [f"load average at start: {load0}; at end: {load_average()}",
               "random weights (speed does not depend on trained values); the attention "
               "softmax/mixing is not in the stack"]
    path = write_result("sparse_crossover", "Unstructured sparsity on CPU: crossover by tokens",
                        tables, command="python benchmarks/sparse_crossover.py " + " ".join(argv),
                        caveats=caveats)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
