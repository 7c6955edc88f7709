"""The fastest deployable artifact of a pruned ResNet-50, chosen by ``deploy``, vs dense.

ResNet-50 (torchvision, random init) is cut to <= 1.07 GMACs with prunekit's default global L1
selection (ranking weighed by the analytic time estimate; optionally also by measured width
tables), and
``prunekit.bench.deploy`` searches runtimes (eager, ONNX Runtime with and without intra-op
spinning, OpenVINO; ``torch.compile`` on request), thread counts (1 and 2), memory format and
BatchNorm folding for each batch. Every candidate is timed against dense in the same setting,
interleaved (like-for-like, paired 95% interval); dense in its fastest setting is then re-timed
against the winner in a fresh interleaved run (best vs best, paired interval). The contention
probe and load average are recorded.

    python benchmarks/speed_deploy.py                          # wall clock, quiet machine
    python benchmarks/speed_deploy.py --clock cpu --name speed_deploy_cputime   # shared machine

``--clock cpu`` times process CPU time with one thread: robust on a shared machine, it is the
latency on an idle core, not a 2-thread figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_schema import load_average, write_result  # noqa: E402
import speed_bars  # noqa: E402

from prunekit.bench.contention import ContentionProbe  # noqa: E402
from prunekit.bench.deploy import DeployConfig, deploy  # noqa: E402
from prunekit.bench.harness import fixed_threads  # noqa: E402
from prunekit.bench.metrics import count_macs  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock  # noqa: E402
from prunekit.bench.width_tables import module_time_weights  # noqa: E402

GMACS = 1.07
BAR = 0.9
CAND_COLS = ["variant", "batch", "candidate", "pruned ms", "dense ms", "speedup", "95% CI",
             "speedup / MACs ratio", "reliable", "why not"]
COMP_COLS = ["variant", "batch", "comparison", "dense setting", "pruned setting", "speedup",
             "95% CI", "speedup / MACs ratio", "reliable", "why not"]
EFF_COLS = ["variant", "batch", "runtime", "model", "1 thread ms", "2 threads ms",
            "2-thread speedup", "parallel efficiency"]


def macs(m: nn.Module, x: Any) -> int:
    return count_macs(m, x)[0]


def cut(dense: nn.Module, x: Any, cap: int, weights: Any) -> nn.Module:
    """Global L1 plan with the largest MACs fraction whose counted MACs are <= ``cap``
    (``speed_bars.cut`` with the default hardware-multiple widths)."""
    return speed_bars.cut(dense, x, cap / macs(dense, x), None, weights, cap)


def ci(lo: float | None, hi: float | None) -> str:
    return f"{lo:.2f}-{hi:.2f}" if lo is not None and hi is not None else ""


def cand_rows(label: str, b: int, res: Any, ratio: float) -> list[list[Any]]:
    out = []
    for c in res.candidates:
        if c.error:
            out.append([label, b, c.name, None, None, None, "", None, False,
                        "SKIPPED: " + c.error[:160]])
            continue
        sp = round(c.speedup, 3) if c.speedup else None
        out.append([label, b, c.name, round(c.pruned_ms, 3),
                    round(c.dense_ms, 3) if c.dense_ms else None, sp, ci(c.ci_low, c.ci_high),
                    round(c.speedup / ratio, 3) if c.speedup else None, c.reliable,
                    "; ".join(c.reasons)])
    return out


def comp_rows(label: str, b: int, res: Any, ratio: float) -> list[list[Any]]:
    return [[label, b, c.kind, c.dense, c.pruned, round(c.speedup, 3), ci(c.ci_low, c.ci_high),
             round(c.speedup / ratio, 3), c.reliable, "; ".join(c.reasons)]
            for c in res.comparisons]


def eff_rows(label: str, b: int, res: Any) -> list[list[Any]]:
    """Per runtime: each model's fastest time at 1 and at 2 threads, and 2-thread efficiency
    t1 / (2 t2) (candidates of separate interleaved runs)."""
    out = []
    for rt in dict.fromkeys(c.runtime for c in res.candidates):
        for model, attr in (("dense", "dense_ms"), ("pruned", "pruned_ms")):
            best = {}
            for c in res.candidates:
                v = getattr(c, attr)
                if c.runtime == rt and v is not None:
                    best[c.threads] = min(v, best.get(c.threads, v))
            if 1 in best and 2 in best:
                out.append([label, b, rt, model, round(best[1], 3), round(best[2], 3),
                            round(best[1] / best[2], 3), round(best[1] / (2 * best[2]), 3)])
    return out


def _verdict(what: str, sp: float, lo: Any, hi: Any, ratio: float, reliable: bool,
             reasons: list[str]) -> str:
    return (f"{what}: {sp:.2f}x ({ci(lo, hi) or 'no interval'}) = {sp / ratio:.2f} of the MACs "
            f"ratio {ratio:.2f} ({'met' if sp / ratio >= BAR else 'NOT met'} at {BAR}"
            f"{'' if reliable else '; unreliable: ' + '; '.join(reasons)})")


def bar_lines(label: str, res: Any, ratio: float, threads: tuple[int, ...]) -> list[str]:
    """Batch-1 bar lines: the deployed artifact like-for-like, best vs best, and the fastest
    pruned candidate at 2 threads like-for-like."""
    lines = []
    w = res.winner
    if w is not None and w.speedup:
        lines.append(_verdict(f"{label}, batch 1, deployed artifact ({w.name}) like-for-like",
                              w.speedup, w.ci_low, w.ci_high, ratio, w.reliable, w.reasons))
    bvb = res.comparison("best vs best")
    if bvb is not None:
        lines.append(_verdict(f"{label}, batch 1, best vs best (threads tried: "
                              f"{', '.join(map(str, threads))}; dense {bvb.dense})",
                              bvb.speedup, bvb.ci_low, bvb.ci_high, ratio, bvb.reliable,
                              bvb.reasons))
    two = [c for c in res.candidates if c.threads == 2 and c.speedup]
    if two:
        c = min(two, key=lambda c: c.pruned_ms)
        lines.append(_verdict(f"{label}, batch 1, fastest at 2 threads ({c.name}) like-for-like",
                              c.speedup, c.ci_low, c.ci_high, ratio, c.reliable, c.reasons))
    return lines


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runtimes", default="eager,onnxruntime,onnxruntime-nospin,openvino")
    ap.add_argument("--channels-last", default="both", choices=("both", "on", "off"))
    ap.add_argument("--width-tables", action="store_true",
                    help="also deploy the selection weighed by width tables (at each batch)")
    ap.add_argument("--budget", type=float, default=20.0,
                    help="seconds of adaptive timing per setting and runtime")
    ap.add_argument("--quick", action="store_true", help="batch 1, 2 threads, short timing")
    ap.add_argument("--name", default="speed_deploy")
    a = ap.parse_args(argv)
    a.batches = [int(b) for b in a.batches.split(",")]
    a.threads = tuple(int(t) for t in a.threads.split(","))
    a.runtimes = tuple(a.runtimes.split(","))
    a.clock_obj = None
    if a.clock == "cpu":
        a.threads, a.clock_obj = (1,), ProcessCpuClock()
    a.cl = {"both": (False, True), "on": (True,), "off": (False,)}[a.channels_last]
    a.repeats, a.max_repeats = (10, 20) if a.quick else (20, 200)
    if a.quick:
        a.batches, a.budget = a.batches[:1], min(a.budget, 5.0)
    return a


def run_variant(label: str, dense: nn.Module, pruned: nn.Module, x: Any, b: int,
                a: argparse.Namespace, tables: dict[str, list], bars: list[str]) -> None:
    ratio = macs(dense, x) / macs(pruned, x)
    cfg = DeployConfig(batch=b, runtimes=a.runtimes, threads=a.threads, channels_last=a.cl,
                       fold_bn=(True,), repeats=a.repeats, max_repeats=a.max_repeats,
                       budget_s=a.budget, clock=a.clock_obj)
    t = time.time()
    with tempfile.TemporaryDirectory() as out:
        res = deploy(pruned, x, out, dense=dense, config=cfg)
    print(f"{label} batch {b}: deploy in {time.time() - t:.0f} s", flush=True)
    tables["cand"] += cand_rows(label, b, res, ratio)
    tables["comp"] += comp_rows(label, b, res, ratio)
    tables["eff"] += eff_rows(label, b, res)
    tables["notes"] += [f"{label} batch {b}: {n}" for n in res.notes]
    if b == 1:
        bars += bar_lines(label, res, ratio, a.threads)


def main(argv: list[str]) -> None:
    import torchvision

    a = parse(argv)
    probe = ContentionProbe(max(a.threads))
    probe.sample("start")
    torch.manual_seed(0)
    dense = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    cap = int(GMACS * 1e9)
    variants = {"prunekit global (default)": lambda b: cut(dense, x, cap, "estimate")}
    if a.width_tables:
        def tabled(b: int) -> nn.Module:
            with fixed_threads(max(a.threads)):
                return cut(dense, x, cap, module_time_weights(dense, x, batch=b))
        variants["prunekit global + width tables"] = tabled
    tables: dict[str, list] = {"cand": [], "comp": [], "eff": [], "notes": []}
    bars: list[str] = []
    for b in a.batches:
        for label, build in variants.items():
            pruned = build(b)
            tables["notes"].append(f"{label} (batch {b} selection): {macs(pruned, x) / 1e9:.3f} "
                                   f"GMACs, MACs ratio {macs(dense, x) / macs(pruned, x):.3f}")
            run_variant(label, dense, pruned, x, b, a, tables, bars)
            probe.sample(f"after {label} batch {b}")
    write(a, probe, tables, bars)


def write(a: argparse.Namespace, probe: ContentionProbe, tables: dict[str, list],
          bars: list[str]) -> None:
    v = probe.verdict()
    caveats = tables["notes"] + bars + [
        f"clock: {'process CPU time (the latency on an idle core)' if a.clock_obj else 'wall'}; threads tried {', '.join(map(str, a.threads))}; batches "
        f"{', '.join(map(str, a.batches))}; BatchNorm folded in every candidate",
        f"contention probe: {'busy: ' + v.reason if v.busy else 'quiet'}; {load_average()} "
        "at the end",
        "best vs best: dense in its fastest setting re-timed against the winner in a fresh "
        "interleaved run; per-runtime rows with no interval are ratios of medians of separate "
        "runs; parallel efficiency = t(1 thread) / (2 t(2 threads)) from separate runs",
    ]
    if a.clock == "wall" and (v.busy or max(p.load or 0 for p in probe.points) > 2):
        caveats.append("the machine was shared while measuring (load above 2 or the probe saw "
                       "contention): 2-thread wall-clock figures are unreliable")
    if a.quick:
        caveats.append("--quick: batch 1 only, 10-20 rounds, 5 s per setting and runtime")
    tabs = [
        {"title": "Headline comparisons (like-for-like, per runtime, best vs best)",
         "columns": COMP_COLS, "rows": tables["comp"]},
        {"title": "Every deploy candidate (dense timed in the same setting, interleaved)",
         "columns": CAND_COLS, "rows": tables["cand"]},
        {"title": "Parallel efficiency from 1 to 2 threads (fastest candidate per thread count)",
         "columns": EFF_COLS, "rows": tables["eff"]},
    ]
    clock = "process CPU time, 1 thread" if a.clock_obj else "wall clock"
    path = write_result(a.name, "Deploy: the fastest artifact of ResNet-50 at <= 1.07 GMACs vs "
                        f"dense ({clock})", tabs, caveats=caveats)
    for t in tabs:
        print(f"## {t['title']}")
        for r in t["rows"]:
            print(" | ".join(str(c) for c in r))
    print("\n".join(caveats))
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
