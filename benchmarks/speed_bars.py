"""Speed bars of device-aware structured pruning, all in one process, timed interleaved.

(a) ResNet-50 (torchvision, random init) cut to <= 1.07 GMACs four ways: prunekit's default
    global L1 selection (ranking weighed by the analytic layer-time estimate,
    ``time_weights="estimate"``), the same ranking by MACs alone (``time_weights=None``), the
    ranking weighed by measured width tables
    (``plan_structured(..., time_weights=module_time_weights(...))``), and Torch-Pruning
    (uniform, round 8, when installed); dense and all of them timed together, batch 1 and 16,
    eager and ONNX Runtime, with the best runtime per model (what ``deploy`` picks).
(b) MobileNetV2 and a BERT-base-shaped encoder (HF ``BertModel``, random init; heads and MLP
    widths) cut to half the MACs with the default selection and with the width tables.
    Bar: speedup >= 0.8 x MACs ratio.
(c) ``prune_for_latency(ResNet-50, 0.5x, device_aware=True)`` with its fresh re-measurement.
(d) Other torchvision CNNs (ResNet-18, MobileNetV3-Large, RegNetX-400MF, EfficientNet-B0) at
    half the MACs: the default selection, the MACs-only ranking and Torch-Pruning's uniform cut.

Every speedup carries its 95% bootstrap interval and reliability verdict (prunekit.bench); the
contention probe and load average are recorded. ``--clock cpu`` times process CPU time with one
thread: robust on a shared machine, it is the latency on an idle core, not a 2-thread figure.

    python benchmarks/speed_bars.py                      # wall clock, 2 threads (quiet machine)
    python benchmarks/speed_bars.py --clock cpu --quick  # shared machine, small subset
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench.config import BenchConfig  # noqa: E402
from prunekit.bench.contention import ContentionProbe  # noqa: E402
from prunekit.bench.harness import compare, fixed_threads  # noqa: E402
from prunekit.bench.inputs import resize_batch  # noqa: E402
from prunekit.bench.latency_target import prune_for_latency  # noqa: E402
from prunekit.bench.metrics import count_macs  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock  # noqa: E402
from prunekit.bench.width_tables import module_time_weights  # noqa: E402
from prunekit.config import TargetSpec  # noqa: E402
from prunekit.structural import plan_structured  # noqa: E402
from prunekit.structural.time_proxy import estimate_model_time  # noqa: E402

GMACS = 1.07
BAR = 0.8
COLS = ["model", "variant", "runtime", "batch", "GMACs", "MACs ratio", "estimated speedup",
        "speedup", "95% CI", "speedup / MACs ratio", "reliable", "why not"]


def macs(m: nn.Module, x: Any) -> int:
    return count_macs(m, x)[0]


def cut(dense: nn.Module, x: Any, keep: float, round_to: int | None, weights: Any,
        cap: int | None) -> nn.Module:
    """Global L1 plan at MACs fraction ``keep``; with ``cap``, the largest fraction (searched
    down from ``keep``) whose counted MACs are <= ``cap``. ``round_to=None``: the default
    (hardware multiples); ``weights="estimate"``: the default ranking (analytic time
    estimate), ``None``: MACs only, a mapping: measured width tables."""

    def plan(k: float) -> nn.Module:
        return plan_structured(dense, x, criterion="l1", scope="global", round_to=round_to,
                               target=TargetSpec(macs=k), time_weights=weights
                               ).apply(copy=True).eval()

    m = plan(keep)
    if cap is None or macs(m, x) <= cap:
        return m
    lo, hi, best = keep * 0.85, keep, None
    for _ in range(6):
        mid = (lo + hi) / 2
        cand = plan(mid)
        if macs(cand, x) <= cap:
            lo, best = mid, cand
        else:
            hi = mid
    return best if best is not None else plan(lo)


def torch_pruning_cut(dense: nn.Module, x: Any, cap: int) -> nn.Module | None:
    """Torch-Pruning, uniform L1 (round 8), smallest ratio from 0.5 up meeting ``cap`` MACs."""
    import copy

    try:
        import torch_pruning as tp
    except ImportError:
        return None
    for r in (0.5, 0.52, 0.54, 0.56, 0.58, 0.6):
        m = copy.deepcopy(dense)
        tp.pruner.MagnitudePruner(m, x, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                  pruning_ratio=r, round_to=8, ignored_layers=[m.fc]).step()
        if macs(m, x) <= cap:
            return m.eval()
    return m.eval()


def weights_for(dense: nn.Module, x: Any, a: argparse.Namespace, batch: int = 1
                ) -> dict[str, float]:
    with fixed_threads(a.threads):
        return module_time_weights(dense, x, clock=a.clock_obj, batch=batch)


def bench(models: dict[str, nn.Module], x: Any, a: argparse.Namespace, batches, runtimes
          ) -> Any:
    cfg = BenchConfig(batches=tuple(batches), runtimes=tuple(runtimes), threads=a.threads,
                      repeats=a.repeats, max_repeats=a.max_repeats, budget_s=a.budget,
                      warmup=2, clock=a.clock_obj, memory=False, energy=False)
    return compare(models, x, cfg, baseline="dense")


def estimated(models: dict[str, nn.Module], x: Any, batch: int) -> dict[str, float]:
    """Speedup over dense predicted by the analytic layer-time estimate, at ``batch``."""
    xb = resize_batch(x, batch)
    try:
        t = {k: estimate_model_time(m, xb) for k, m in models.items()}
    except Exception:  # noqa: BLE001 - a model the tracer cannot follow: no prediction
        return {}
    return {k: round(t["dense"] / v, 2) for k, v in t.items()}


def rows_from(label: str, res: Any, models: dict[str, nn.Module], x: Any) -> list[list[Any]]:
    base = res.costs["dense"].macs
    est = {b: estimated(models, x, b) for b in res.config.batches}
    out = []
    for r in res.speedups():
        if r["status"] != "ok":
            out.append([label, r["model"], r["runtime"], r["batch"], None, None, None, None,
                        None, None, False, r.get("error", "")[:120]])
            continue
        m = res.costs[r["model"]].macs
        out.append([label, r["model"], r["runtime"], r["batch"], round(m / 1e9, 3),
                    round(base / m, 3), est[r["batch"]].get(r["model"]), round(r["speedup"], 3),
                    f"{r['ci_low']:.2f}-{r['ci_high']:.2f}",
                    round(r["speedup"] * m / base, 3), r["reliable"],
                    "; ".join(r["unreliable_reasons"])])
    out += best_runtime_rows(label, res)
    return out


def best_runtime_rows(label: str, res: Any) -> list[list[Any]]:
    """Best measured runtime per model and batch vs dense's best (what deploy would ship)."""
    runtimes = res.config.runtimes
    if len(runtimes) < 2:
        return []
    out = []
    base = res.costs["dense"].macs
    for b in res.config.batches:
        cells = {c.model: [] for c in res.cells}
        for c in res.cells:
            if c.batch == b and c.ok:
                cells[c.model].append((c.latency.median, c.runtime))
        if not cells.get("dense"):
            continue
        d_ms, d_rt = min(cells["dense"])
        for name, cs in cells.items():
            if name == "dense" or not cs:
                continue
            ms, rt = min(cs)
            m = res.costs[name].macs
            out.append([label, name, f"best: {rt} (dense best: {d_rt})", b, round(m / 1e9, 3),
                        round(base / m, 3), None, round(d_ms / ms, 3), "",
                        round(d_ms / ms * m / base, 3),
                        False, "best-vs-best ratio of medians: no paired interval"])
    return out


def part_resnet(a: argparse.Namespace, notes: list[str]) -> list[list[Any]]:
    """Dense, the default selection, the MACs-only ranking, Torch-Pruning and the width
    tables taken at the batch timed; one interleaved run per batch."""
    import torchvision

    torch.manual_seed(0)
    dense = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    cap = int(GMACS * 1e9)
    keep = GMACS * 1e9 / macs(dense, x)
    models = {"dense": dense,
              "prunekit global (default)": cut(dense, x, keep, None, "estimate", cap),
              "prunekit global, MACs-only ranking": cut(dense, x, keep, None, None, cap)}
    tp_model = torch_pruning_cut(dense, x, cap)
    if tp_model is None:
        notes.append("Torch-Pruning not installed: its row is missing")
    else:
        models["Torch-Pruning uniform r8"] = tp_model
    rows = []
    for b in a.batches:
        t = time.time()
        w = weights_for(dense, x, a, b)
        notes.append(f"ResNet-50 width tables at batch {b}: {len(w)} layers timed in "
                     f"{time.time() - t:.0f} s; weights {min(w.values()):.2f}..{max(w.values()):.2f}")
        run = dict(models)
        tables = f"prunekit global + width tables (batch {b})"
        run[tables] = cut(dense, x, keep, None, w, cap)
        notes.append(f"ResNet-50 {tables}: conv widths {conv_widths(run[tables])}")
        rows += rows_from("ResNet-50 <= 1.07 GMACs", bench(run, x, a, [b], a.runtimes), run, x)
    for name, m in models.items():
        notes.append(f"ResNet-50 {name}: conv widths {conv_widths(m)}")
    return rows


def conv_widths(m: nn.Module) -> str:
    """Output channels of each stage's first block convs and the stem (a compact signature)."""
    keep = ("conv1", "layer1.0.conv1", "layer1.0.conv3", "layer2.1.conv1", "layer2.0.conv3",
            "layer3.1.conv1", "layer3.0.conv3", "layer4.1.conv1", "layer4.0.conv3")
    mods = dict(m.named_modules())
    return " ".join(f"{k}={mods[k].out_channels}" for k in keep if k in mods)


def bert(layers: int, tokens: int) -> tuple[nn.Module, Any]:
    import transformers

    cfg = transformers.BertConfig(hidden_size=768, num_hidden_layers=layers,
                                  num_attention_heads=12, intermediate_size=3072)
    torch.manual_seed(0)
    return transformers.BertModel(cfg).eval(), torch.randint(0, cfg.vocab_size, (1, tokens))


def part_half(a: argparse.Namespace, notes: list[str]) -> list[list[Any]]:
    import torchvision

    out = []
    torch.manual_seed(0)
    mnv2 = torchvision.models.mobilenet_v2(weights=None).eval()
    layers = a.bert_layers or (4 if a.quick else 12)
    tokens = a.tokens or (64 if a.quick else 128)
    enc, ids = bert(layers, tokens)
    cases = {"mobilenet_v2": ("MobileNetV2", mnv2, torch.randn(1, 3, 224, 224)),
             "bert": (f"BERT-base-shaped, {layers} layers, {tokens} tokens", enc, ids)}
    for key in a.half_models.split(","):
        label, dense, x = cases[key]
        w = weights_for(dense, x, a)
        models = {"dense": dense,
                  "prunekit global (default)": cut(dense, x, 0.5, None, "estimate", None),
                  "prunekit global + width tables": cut(dense, x, 0.5, None, w, None)}
        res = bench(models, x, a, a.batches[:1], a.runtimes[:1])
        out += rows_from(label + " at 0.5x MACs", res, models, x)
    return out


def tp_half(dense: nn.Module, x: Any, cap: int) -> nn.Module | None:
    """Torch-Pruning uniform L1 (round 8, classifier Linear layers kept) at the smallest ratio
    from 0.2 up whose MACs are <= ``cap``; None when not installed or it fails on the model."""
    import copy

    try:
        import torch_pruning as tp
    except ImportError:
        return None
    last = [m for m in dense.modules() if isinstance(m, nn.Linear)][-1:]
    for r in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        m = copy.deepcopy(dense)
        try:
            tp.pruner.MagnitudePruner(m, x, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                      pruning_ratio=r, round_to=8, ignored_layers=last).step()
        except Exception:  # noqa: BLE001 - a model Torch-Pruning cannot handle: no row
            return None
        if macs(m, x) <= cap:
            return m.eval()
    return None


def part_others(a: argparse.Namespace, notes: list[str]) -> list[list[Any]]:
    """Other torchvision CNNs at half the MACs: the default against the MACs-only ranking
    (the same selection without the time estimate) and Torch-Pruning's uniform cut."""
    import torchvision

    out = []
    for name in a.other_models.split(","):
        torch.manual_seed(0)
        dense = getattr(torchvision.models, name)(weights=None).eval()
        x = torch.randn(1, 3, 224, 224)
        cap = macs(dense, x) // 2
        models = {"dense": dense,
                  "prunekit global (default)": cut(dense, x, 0.5, None, "estimate", cap),
                  "prunekit global, MACs-only ranking": cut(dense, x, 0.5, None, None, cap)}
        tp_model = tp_half(dense, x, cap)
        if tp_model is not None:
            models["Torch-Pruning uniform r8"] = tp_model
        else:
            notes.append(f"{name}: no Torch-Pruning row (not installed or it failed)")
        out += rows_from(f"{name} <= 0.5x MACs", bench(models, x, a, a.batches[:1],
                                                       a.runtimes[:1]), models, x)
    return out


def part_latency(a: argparse.Namespace, notes: list[str]) -> list[list[Any]]:
    import torchvision

    torch.manual_seed(0)
    dense = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    cfg = BenchConfig(batches=(1,), runtimes=("eager",), threads=a.threads, repeats=a.repeats,
                      max_repeats=a.max_repeats, budget_s=a.budget, warmup=2, clock=a.clock_obj,
                      memory=False, energy=False)
    res = prune_for_latency(dense, x, 0.5, config=cfg, device_aware=True,
                            max_iters=3 if a.quick else 6)
    notes += [f"prune_for_latency: {n}" for n in res.notes]
    v = res.verified
    m = macs(res.model, x)
    return [["ResNet-50 prune_for_latency 0.5x", f"verified (met: {res.met})", "eager", 1,
             round(m / 1e9, 3), round(macs(dense, x) / m, 3),
             None, round(v.speedup, 3) if v else None,
             f"{v.ci_low:.2f}-{v.ci_high:.2f}" if v else "",
             round(v.speedup * m / macs(dense, x), 3) if v else None,
             bool(v and v.reliable), "; ".join(v.reasons) if v else "not verified"]]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    ap.add_argument("--quick", action="store_true",
                    help="fewer rounds, first batch and runtime only, 4-layer BERT")
    ap.add_argument("--parts", default="resnet,half,latency,others")
    ap.add_argument("--other-models", default="resnet18,mobilenet_v3_large,regnet_x_400mf,"
                    "efficientnet_b0", help="torchvision models of part others")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--runtimes", default="eager,onnxruntime")
    ap.add_argument("--name", default="speed_bars")
    ap.add_argument("--half-models", default="mobilenet_v2,bert",
                    help="models of part half (mobilenet_v2, bert)")
    ap.add_argument("--bert-layers", type=int, default=None, help="default 12 (4 with --quick)")
    ap.add_argument("--tokens", type=int, default=None, help="default 128 (64 with --quick)")
    a = ap.parse_args(argv)
    a.batches = [int(b) for b in a.batches.split(",")]
    a.runtimes = a.runtimes.split(",")
    a.clock_obj = None
    if a.clock == "cpu":
        a.threads, a.clock_obj = 1, ProcessCpuClock()
    a.repeats, a.max_repeats, a.budget = (10, 20, 10.0) if a.quick else (20, 200, 60.0)
    if a.quick:
        a.batches, a.runtimes = a.batches[:1], a.runtimes[:1]
    probe = ContentionProbe(a.threads)
    probe.sample("start")
    notes: list[str] = []
    rows: list[list[Any]] = []
    parts = {"resnet": part_resnet, "half": part_half, "latency": part_latency,
             "others": part_others}
    for p in a.parts.split(","):
        t = time.time()
        rows += parts[p](a, notes)
        probe.sample(f"after {p}")
        notes.append(f"part {p}: {time.time() - t:.0f} s")
        print(f"part {p} done in {time.time() - t:.0f} s", flush=True)
    verdict = probe.verdict()
    bars = [r for r in rows if " at 0.5x MACs" in r[0] and r[9] is not None
            and "best" not in r[2]]
    caveats = notes + [
        f"clock: {'process CPU time, 1 thread (the latency on an idle core)' if a.clock == 'cpu' else f'wall, {a.threads} threads'}",
        f"contention probe: {'busy: ' + verdict.reason if verdict.busy else 'quiet'}; "
        f"load average at the end {load_average()}",
        "bar (b): speedup / MACs ratio >= 0.8: " + ", ".join(
            f"{r[0]} / {r[1]}: {r[9]:.2f} ({'met' if r[9] >= BAR else 'NOT met'})" for r in bars),
    ]
    above = [f"{r[0]} / {r[1]} ({r[2]}, batch {r[3]}): {r[9]:.2f}" for r in rows
             if r[9] is not None and r[9] > 1.0]
    if above:
        caveats.append("speedup above the MACs ratio (exceeds the proportional ideal; possible "
                       "when the pruned model's working set fits a cache level the dense one "
                       "does not, or when per-layer efficiency differs; else noise): "
                       + "; ".join(above))
    if a.clock == "wall" and verdict.busy:
        caveats.append("wall-clock figures on a busy machine: unreliable (see 'why not')")
    if a.quick:
        caveats.append("--quick: few rounds (10-20), first batch and first runtime only")
    table = {"title": "Dense vs pruned, interleaved in one process (BatchNorm folded in all)",
             "columns": COLS, "rows": rows}
    clock = ("process CPU time, 1 thread" if a.clock == "cpu"
             else f"wall clock, {a.threads} threads")
    path = write_result(a.name, f"Speed bars: default and device-aware structured pruning "
                        f"({clock})", [table], caveats=caveats)
    for r in rows:
        print(" | ".join(str(v) for v in r))
    print("\n".join(caveats))
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
