"""Shared pieces of the speed benchmarks (cpu_speed.py, gpu_speed.py).

Every table row comes from dense and pruned/sparse variants timed in one process, interleaved
round by round, with the same runtime/dtype/batch/threads (prunekit.bench.harness).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prunekit.bench.config import BenchConfig  # noqa: E402
from prunekit.bench.env import environment  # noqa: E402
from prunekit.bench.harness import compare, fixed_threads  # noqa: E402
from prunekit.bench.sparse import CSRLinear  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock, compare_latency  # noqa: E402, F401
from prunekit.masks.select import unstructured_mask  # noqa: E402

RESNET50_TARGET_GMACS = 1.07  # Torch-Pruning's "50%" ResNet-50 setting


def header(device: str, threads: int, argv: list[str]) -> str:
    env = environment(torch.device(device), threads)
    machine = env.get("gpu") or f"{env['cpu']} ({env['cpu_count']} cores)"
    return (f"Machine: {machine}; torch {env['torch']}; threads {threads}; date {env['date']}.\n"
            f"Command: `python {' '.join(argv)}`")


def resnet50_pruned(target_gmacs: float = RESNET50_TARGET_GMACS, round_to: int = 8,
                    criterion: str = "l1") -> tuple[nn.Module, nn.Module, str]:
    """(dense, pruned, how) for torchvision ResNet-50 (random init) pruned to <= target GMACs.

    Uses the structural planner (``prunekit.plan_structured`` with a MACs target). Raises
    RuntimeError if the planner is not in this build.
    """
    import torchvision

    try:
        from prunekit.structural import plan_structured
        from prunekit.config import TargetSpec
    except ImportError as e:
        raise RuntimeError("prunekit.plan_structured is not available in this build") from e
    torch.manual_seed(0)
    dense = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    from prunekit.bench.metrics import count_macs

    dense_macs = count_macs(dense, x)[0]
    keep = target_gmacs * 1e9 / dense_macs
    pruned = None
    for k in (keep, keep * 0.97, keep * 0.94, keep * 0.9):  # rounding may overshoot: tighten
        plan = plan_structured(dense, x, criterion=criterion, scope="global", round_to=round_to,
                               target=TargetSpec(macs=k))
        pruned = plan.apply(copy=True).eval()
        if count_macs(pruned, x)[0] <= target_gmacs * 1e9:
            break
    how = (f"plan_structured(criterion={criterion!r}, scope='global', round_to={round_to}, "
           f"target=TargetSpec(macs≈{keep:.3f}))")
    return dense, pruned, how


def resnet_rows(dense: nn.Module, pruned: nn.Module, cfg: BenchConfig) -> tuple[list[dict], Any]:
    res = compare({"dense": dense, "pruned": pruned}, torch.randn(1, 3, 224, 224), cfg)
    return res.speedups(), res


def fmt_resnet_table(rows: list[dict], res: Any) -> str:
    out = ["| runtime | batch | dense ms (p10–p90) | pruned ms (p10–p90) | measured speedup "
           "(p10–p90) | MACs ratio | measured / MACs ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        d, p = res.cell("dense", r["runtime"], r["batch"]), res.cell("pruned", r["runtime"],
                                                                       r["batch"])
        if r["status"] != "ok":
            out.append(f"| {r['runtime']} | {r['batch']} | FAILED: {r.get('error', '')[:80]} "
                       "| | | | |")
            continue
        ls = [f"{c.latency.median:.2f} ({c.latency.p10:.2f}–{c.latency.p90:.2f})" for c in (d, p)]
        out.append(f"| {r['runtime']} | {r['batch']} | {ls[0]} | {ls[1]} | "
                   f"{r['speedup']:.2f}× ({r['speedup_p10']:.2f}–{r['speedup_p90']:.2f}) | "
                   f"{r['macs_ratio']:.2f}× | {r['speedup'] / r['macs_ratio']:.2f} |")
    return "\n".join(out)


def _sparse_linear(out_f: int, in_f: int, sparsity: float, device: str,
                   dtype: torch.dtype) -> nn.Linear:
    lin = nn.Linear(in_f, out_f)
    with torch.no_grad():
        lin.weight.mul_(unstructured_mask(lin.weight.abs(), sparsity))
    return lin.to(device=device, dtype=dtype).eval()


def csr_crossover(shapes: list[tuple[int, int, int]], sparsities: list[float], device: str,
                  dtype: torch.dtype, repeats: int, threads: int,
                  clock: Any = None) -> list[dict[str, Any]]:
    """Dense vs CSR Linear for each (tokens, out, in) and sparsity, interleaved pairwise."""
    rows = []
    with fixed_threads(threads):
        for tokens, out_f, in_f in shapes:
            for s in sparsities:
                lin = _sparse_linear(out_f, in_f, s, device, dtype)
                try:
                    with torch.no_grad():
                        csr = CSRLinear(lin)
                    x = torch.randn(tokens, in_f, device=device, dtype=dtype)
                    stats = compare_latency({"dense": lin, "csr": csr}, x, warmup=3,
                                            repeats=repeats, rotate=None, number=None,
                                            clock=clock)
                    ratios = sorted(a / b for a, b in zip(stats["dense"].samples, stats["csr"].samples,
                                                          strict=True))
                    rows.append({"tokens": tokens, "out": out_f, "in": in_f, "sparsity": s,
                                 "dense_ms": stats["dense"].median, "csr_ms": stats["csr"].median,
                                 "speedup": ratios[len(ratios) // 2],
                                 "speedup_p10": ratios[len(ratios) // 10],
                                 "speedup_p90": ratios[(len(ratios) * 9) // 10],
                                 "best_ratio": min(stats["dense"].samples)
                                 / min(stats["csr"].samples)})
                except Exception as e:  # noqa: BLE001 - report the failure in the table
                    rows.append({"tokens": tokens, "out": out_f, "in": in_f, "sparsity": s,
                                 "error": f"{type(e).__name__}: {e}"})
    return rows


def fmt_csr_table(rows: list[dict[str, Any]]) -> str:
    out = ["| tokens × out × in | sparsity | dense ms | CSR ms | CSR speedup (p10–p90) | "
           "best-of ratio |", "|---|---|---|---|---|---|"]
    for r in rows:
        shape = f"{r['tokens']}×{r['out']}×{r['in']}"
        if "error" in r:
            out.append(f"| {shape} | {r['sparsity']:.2f} | FAILED: {r['error'][:60]} | | | |")
            continue
        out.append(f"| {shape} | {r['sparsity']:.2f} | {r['dense_ms']:.3f} | {r['csr_ms']:.3f} | "
                   f"{r['speedup']:.2f}× ({r['speedup_p10']:.2f}–{r['speedup_p90']:.2f}) | "
                   f"{r['best_ratio']:.2f}× |")
    return "\n".join(out)


def crossovers(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Lowest sparsity from which CSR stays faster than dense (median), per shape."""
    out: dict[str, float | None] = {}
    for key in dict.fromkeys((r["tokens"], r["out"], r["in"]) for r in rows):
        rs = sorted((r for r in rows if (r["tokens"], r["out"], r["in"]) == key and "error" not in r),
                    key=lambda r: r["sparsity"])
        cross = None
        for i, r in enumerate(rs):
            if all(q["speedup"] > 1.0 for q in rs[i:]):
                cross = r["sparsity"]
                break
        out["×".join(map(str, key))] = cross
    return out


def save_json(path: str | os.PathLike, data: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, p)


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
