"""CPU speed tables (runs on GPU too with --device cuda).

1. ResNet-50 (torchvision, random init) pruned with the structural planner to <= 1.07 GMACs,
   dense vs pruned measured side by side (BatchNorm folded in both) against the MACs ratio.
2. Unstructured sparsity: CSR (torch.sparse) vs dense nn.Linear over shapes and 50–99%
   sparsity; the crossover sparsity per shape.
3. (--part latency) latency-targeted pruning of ResNet-50 to --target x dense latency:
   measured per-layer tables choose round_to, the planner ratio is bisected on measured latency.

    python benchmarks/cpu_speed.py                      # both parts, eager + onnxruntime, batch 1
    python benchmarks/cpu_speed.py --part csr --repeats 30
"""

from __future__ import annotations

import argparse
import sys

import torch

from speed_common import (  # first: puts this checkout's src/ on sys.path
    BenchConfig, ProcessCpuClock, crossovers, csr_crossover, fmt_csr_table, fmt_resnet_table, header,
    resnet50_pruned, resnet_rows, save_json,
)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CSR_SHAPES = [(1, 768, 768), (1, 3072, 768), (32, 768, 768), (32, 4096, 4096)]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--batch", default="1")
    ap.add_argument("--runtime", default="eager,onnxruntime")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--part", default="resnet,csr")
    ap.add_argument("--json", default="benchmarks/results/cpu_speed.json")
    ap.add_argument("--target", type=float, default=0.5, help="--part latency: fraction")
    ap.add_argument("--lut", default="benchmarks/results/latency_lut.json")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="cpu: process CPU time (shared machines; needs --threads 1)")
    a = ap.parse_args(argv)
    clock = None
    if a.clock == "cpu":
        if a.threads != 1 or a.device != "cpu":
            raise SystemExit("--clock cpu needs --threads 1 and --device cpu")
        clock = ProcessCpuClock()
    parts = a.part.split(",")
    out: dict = {"device": a.device, "dtype": a.dtype, "threads": a.threads, "clock": a.clock}
    print(header(a.device, a.threads, ["benchmarks/cpu_speed.py", *argv]))
    if "resnet" in parts:
        try:
            dense, pruned, how = resnet50_pruned()
        except RuntimeError as e:
            print(f"\nResNet-50: skipped — {e}")
        else:
            cfg = BenchConfig(device=a.device, dtype=a.dtype,
                              batches=tuple(int(b) for b in a.batch.split(",")),
                              runtimes=tuple(a.runtime.split(",")), threads=a.threads,
                              repeats=a.repeats, warmup=3, energy=a.device != "cpu",
                              clock=clock)
            rows, res = resnet_rows(dense, pruned, cfg)
            cost = res.costs
            print(f"\nResNet-50 {cost['dense'].macs / 1e9:.2f} → {cost['pruned'].macs / 1e9:.2f} "
                  f"GMACs, params {cost['dense'].params / 1e6:.1f}M → "
                  f"{cost['pruned'].params / 1e6:.1f}M; {how}; BN folded in both.\n")
            print(fmt_resnet_table(rows, res))
            out["resnet50"] = res.to_dict()
    if "csr" in parts:
        rows = csr_crossover(CSR_SHAPES, SPARSITIES, a.device, DTYPES[a.dtype], a.repeats,
                             a.threads, clock)
        print(f"\nCSR vs dense nn.Linear ({a.dtype}, {a.device}, {a.clock} clock):\n")
        print(fmt_csr_table(rows))
        cross = crossovers(rows)
        print("\nCrossover (lowest sparsity from which CSR stays faster): " + ", ".join(
            f"{k}: {'never' if v is None else f'{v:.0%}'}" for k, v in cross.items()))
        out["csr"], out["csr_crossover"] = rows, cross
    if "latency" in parts:
        out["latency_target"] = latency_part(a, clock)
    save_json(a.json, out)


def latency_part(a: argparse.Namespace, clock) -> dict:
    import torchvision

    from prunekit.bench.latency_target import prune_for_latency
    from prunekit.bench.metrics import count_macs

    torch.manual_seed(0)
    dense = torchvision.models.resnet50(weights=None).eval()
    batch = int(a.batch.split(",")[0])
    x = torch.randn(batch, 3, 224, 224)
    cfg = BenchConfig(device=a.device, dtype=a.dtype, batches=(batch,),
                      runtimes=(a.runtime.split(",")[0],), threads=a.threads,
                      repeats=a.repeats, warmup=2, clock=clock, memory=False, energy=False)
    res = prune_for_latency(dense, x, a.target, config=cfg, lut_path=a.lut, max_iters=5)
    x1 = x[:1]
    print(f"\nLatency-targeted pruning of ResNet-50, target {a.target}x dense "
          f"({cfg.runtimes[0]}, batch {batch}, {a.clock} clock); notes: {'; '.join(res.notes)}\n")
    print("| step | planner ratio | measured latency / dense |\n|---|---|---|")
    for i, (r, rel) in enumerate(res.trace):
        print(f"| {i + 1} | {r:.3f} | {rel:.3f} |")
    macs = count_macs(res.model, x1)[0] / count_macs(dense, x1)[0]
    print(f"\nResult: {'met' if res.met else 'NOT met'} — ratio {res.ratio:.3f}, "
          f"{res.relative_latency:.3f}x dense latency, {macs:.3f}x dense MACs, "
          f"round_to={res.round_to}.")
    return dict(res.to_dict(), macs_fraction=macs)


if __name__ == "__main__":
    main(sys.argv[1:])
