"""GPU speed tables (run unchanged on an NVIDIA H100/H200; needs CUDA).

1. ResNet-50 (torchvision, random init) dense vs pruned to <= 1.07 GMACs (structural planner),
   fp16, batch 1/32/128, eager / torch.compile / CUDA-graph replay, BatchNorm folded in both;
   energy per inference via NVML when pynvml is installed.
2. 2:4 semi-structured sparsity on LLaMA-7B MLP shapes (8192 tokens; 4096→11008 up/gate,
   11008→4096 down) plus one 16384×8192×8192 product: dense vs every 2:4 kernel torch exposes
   (cuSPARSELt default, cuSPARSELt with ``_cslt_sparse_mm_search``, CUTLASS), and what the
   per-layer auto-selection picks (never slower than dense by construction).
3. Unstructured CSR vs dense crossover (fp32 and fp16).

    python benchmarks/gpu_speed.py                       # everything, ~10 minutes on an H100
    python benchmarks/gpu_speed.py --part sparse24
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from speed_common import (
    BenchConfig, crossovers, csr_crossover, fmt_csr_table, fmt_resnet_table, header,
    resnet50_pruned, resnet_rows, save_json,
)

LLAMA_MLP = [(8192, 11008, 4096), (8192, 4096, 11008), (16384, 8192, 8192)]  # tokens, out, in
CSR_SHAPES = [(1, 4096, 4096), (32, 4096, 4096), (8192, 4096, 4096)]
SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]


def sparse24_rows(repeats: int) -> list[dict]:
    from prunekit.bench.sparse import choose_sparse_backends
    from prunekit.bench.timer import compare_latency
    from prunekit.masks.select import nm_mask

    rows = []
    for tokens, out_f, in_f in LLAMA_MLP:
        lin = nn.Linear(in_f, out_f, bias=False).half().cuda().eval()
        with torch.no_grad():
            lin.weight.mul_(nm_mask(lin.weight.abs().float(), 2, 4).half())
        x = torch.randn(tokens, in_f, device="cuda", dtype=torch.half)

        def timer(mods, xx):
            stats = compare_latency(dict(mods), xx, warmup=5, repeats=repeats, rotate=None,
                                    number=None, device="cuda")
            return {k: s.median for k, s in stats.items()}

        model = nn.Sequential(lin)
        d = choose_sparse_backends(model, x, timer=timer, atol=0.5)[0]
        rows.append({"shape": f"{tokens}×{out_f}×{in_f}", "timings_ms": d.timings_ms,
                     "chosen": d.backend, "notes": d.notes})
    return rows


def fmt_24(rows: list[dict]) -> str:
    kernels = ["2:4", "2:4-search", "2:4-cutlass"]
    out = ["| tokens × out × in | dense ms | " + " | ".join(f"{k} ms (speedup)" for k in kernels)
           + " | auto-selected |", "|---|---|" + "---|" * len(kernels) + "---|"]
    for r in rows:
        t = r["timings_ms"]
        cells = []
        for k in kernels:
            v = t.get(k)
            cells.append(f"{v:.3f} ({t['dense'] / v:.2f}×)" if v else
                         f"n/a: {r['notes'].get(k, '')[:50]}")
        out.append(f"| {r['shape']} | {t['dense']:.3f} | " + " | ".join(cells)
                   + f" | {r['chosen']} |")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", default="1,32,128")
    ap.add_argument("--runtime", default="eager,compile,cudagraph")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--part", default="resnet,sparse24,csr")
    ap.add_argument("--json", default="benchmarks/results/gpu_speed.json")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_speed.py needs CUDA (torch.cuda.is_available() is False); "
                         "use benchmarks/cpu_speed.py on CPU")
    torch.backends.cudnn.benchmark = True
    parts, out = a.part.split(","), {}
    print(header("cuda", torch.get_num_threads(), ["benchmarks/gpu_speed.py", *argv]))
    if "resnet" in parts:
        try:
            dense, pruned, how = resnet50_pruned()
        except RuntimeError as e:
            print(f"\nResNet-50: skipped — {e}")
        else:
            cfg = BenchConfig(device="cuda", dtype="fp16",
                              batches=tuple(int(b) for b in a.batch.split(",")),
                              runtimes=tuple(a.runtime.split(",")), repeats=a.repeats, warmup=10)
            rows, res = resnet_rows(dense, pruned, cfg)
            c = res.costs
            print(f"\nResNet-50 fp16 {c['dense'].macs / 1e9:.2f} → {c['pruned'].macs / 1e9:.2f} "
                  f"GMACs; {how}; BN folded in both.\n")
            print(fmt_resnet_table(rows, res))
            energy = [(x.model, x.runtime, x.batch, x.energy_j) for x in res.cells if x.energy_j]
            if energy:
                print("\nEnergy per inference (J, NVML): " + "; ".join(
                    f"{m} {r} b{b}: {e:.4f}" for m, r, b, e in energy))
            out["resnet50"] = res.to_dict()
    if "sparse24" in parts:
        rows = sparse24_rows(a.repeats)
        print("\n2:4 semi-structured vs dense, fp16 (LLaMA-7B MLP shapes):\n")
        print(fmt_24(rows))
        out["sparse24"] = rows
    if "csr" in parts:
        for name, dt in (("fp32", torch.float32), ("fp16", torch.float16)):
            rows = csr_crossover(CSR_SHAPES, SPARSITIES, "cuda", dt, a.repeats, 1)
            print(f"\nCSR vs dense nn.Linear ({name}, cuda):\n")
            print(fmt_csr_table(rows))
            cross = crossovers(rows)
            print("\nCrossover: " + ", ".join(
                f"{k}: {'never' if v is None else f'{v:.0%}'}" for k, v in cross.items()))
            out[f"csr_{name}"], out[f"csr_crossover_{name}"] = rows, cross
    save_json(a.json, out)


if __name__ == "__main__":
    main(sys.argv[1:])
