"""The embedded demo: a small CNN trained on scikit-learn's real handwritten digits, pruned
several ways, briefly fine-tuned, then measured (accuracy, sparsity, size, CPU latency).

Data: ``sklearn.datasets.load_digits()`` — 1,797 real 8x8 digits that ship inside scikit-learn,
split 80/20 stratified with a fixed seed (:mod:`prunekit.datasets`).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.bench.timer import compare_latency
from prunekit.datasets import DigitsCNN, digits_split
from prunekit.io import atomic_path, save_weights
from prunekit.masks.apply import finalize
from prunekit.stats import format_bytes, stats
from prunekit.weights import prune_weights
from prunekit.structural import plan_structured
from prunekit._env import machine_description


def load_digits_data(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Real digits as (N, 1, 8, 8) float in [0, 1], stratified 80/20 split."""
    try:
        return digits_split(seed)
    except ImportError:  # pragma: no cover
        raise SystemExit("the demo needs scikit-learn: pip install 'prunekit[dev]' (make demo does)") from None


def train(model: nn.Module, data: TensorDataset, epochs: int, lr: float, seed: int,
          progress=None, label: str = "train") -> None:
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=64, shuffle=True, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(loader))
    task = progress.add_task(label, total=epochs) if progress else None
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()
        if progress:
            progress.advance(task)
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, data: TensorDataset) -> float:
    model.eval()
    x, y = data.tensors
    return float((model(x).argmax(1) == y).float().mean())


@dataclass
class DemoRow:
    variant: str
    kind: str
    accuracy: float
    sparsity: float
    nonzero_params: int
    params: int
    macs: int
    size_dense_bytes: int
    size_compressed_bytes: int
    latency_b1_ms: float = 0.0
    latency_b1_p10: float = 0.0
    latency_b1_p90: float = 0.0
    speedup_b1: float = 0.0
    latency_b256_ms: float = 0.0
    speedup_b256: float = 0.0


def _variants(calib: TensorDataset) -> list[tuple[str, str, Callable[[nn.Module], nn.Module]]]:
    """(name, kind, prune_fn) for every variant; prune_fn returns the model to fine-tune."""
    out: list[tuple[str, str, Callable[[nn.Module], nn.Module]]] = []
    for s in (0.5, 0.7, 0.9):
        out.append((f"unstructured {s:.0%}", "mask",
                    lambda m, s=s: (prune_weights(m, s, "l1", "global"), m)[1]))
    out.append(("2:4", "mask", lambda m: (prune_weights(m, pattern="2:4", skip_incompatible=True), m)[1]))
    out.extend(_structured_variants(calib))
    return out


def _structured_variants(calib: TensorDataset):
    x = calib.tensors[0][:16]

    def make(ratio: float):
        def fn(m: nn.Module) -> nn.Module:
            plan = plan_structured(m, example_inputs=x, criterion="l1", ratio=ratio, scope="local")
            return plan.apply()
        return fn

    return [(f"structured {r:.0%} ch", "structured", make(r)) for r in (0.5, 0.7)]


def run_demo(out_dir: str | Path = "demo-report", epochs: int = 30, finetune_epochs: int = 5,
             seed: int = 0, threads: int | None = None, console=None,
             repeats: int = 200) -> list[DemoRow]:
    """Train, prune every variant, fine-tune, measure; write report.md/report.json to out_dir."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if console is None:
        console = Console()
        if not console.is_terminal or console.width < 150:
            console = Console(width=150)
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_ds, test_ds = load_digits_data(seed)
    torch.manual_seed(seed)
    dense = DigitsCNN()
    cols = (TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn())
    t0 = time.perf_counter()
    models: dict[str, nn.Module] = {}
    kinds: dict[str, str] = {}
    with Progress(*cols, console=console) as progress:
        train(dense, train_ds, epochs, 3e-3, seed, progress, "train dense")
        models["dense"], kinds["dense"] = dense, "dense"
        variants = _variants(train_ds)
        prune_task = progress.add_task("prune variants", total=len(variants))
        for name, kind, fn in variants:
            m = fn(copy.deepcopy(dense))
            progress.advance(prune_task)
            train(m, train_ds, finetune_epochs, 1e-3, seed + 1, progress, f"fine-tune {name}")
            models[name], kinds[name] = finalize(m), kind
    rows = _measure(models, kinds, test_ds, repeats)
    for name, m in models.items():
        save_weights(m, out / f"{_slug(name)}.safetensors")
    _write_reports(rows, out, time.perf_counter() - t0, repeats)
    console.print(render_rows(rows))
    console.print(f"reports: {out / 'report.md'}, {out / 'report.json'}")
    return rows


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def _measure(models: dict[str, nn.Module], kinds: dict[str, str], test_ds: TensorDataset,
             repeats: int) -> list[DemoRow]:
    x1 = test_ds.tensors[0][:1]
    rows = []
    for name, m in models.items():
        st = stats(m, x1)
        rows.append(DemoRow(name, kinds[name], accuracy(m, test_ds), st.sparsity, st.nonzero, st.params,
                            st.macs, st.size_dense_bytes, st.size_compressed_bytes))
    xs = test_ds.tensors[0]
    lat1 = compare_latency(models, lambda i: xs[i : i + 1], warmup=20, repeats=repeats, rotate=8)
    lat256 = compare_latency(models, lambda i: xs[i * 256 % (len(xs) - 256):][:256], warmup=3,
                             repeats=max(repeats // 10, 3), rotate=4)
    base1, base256 = lat1["dense"].median_ms, lat256["dense"].median_ms
    for r in rows:
        a, b = lat1[r.variant], lat256[r.variant]
        r.latency_b1_ms, r.latency_b1_p10, r.latency_b1_p90 = a.median_ms, a.p10_ms, a.p90_ms
        r.speedup_b1 = base1 / a.median_ms
        r.latency_b256_ms, r.speedup_b256 = b.median_ms, base256 / b.median_ms
    return rows


def _table_lines(rows: list[DemoRow]) -> list[str]:
    head = ("| variant | accuracy | sparsity | nonzero params | MACs | compressed size | "
            "latency b=1 (p10–p90) | speedup b=1 | latency b=256 | speedup b=256 |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r.variant} | {r.accuracy:.2%} | {r.sparsity:.1%} | {r.nonzero_params:,} | "
            f"{r.macs / 1e6:.2f}M | {format_bytes(r.size_compressed_bytes)} | "
            f"{r.latency_b1_ms:.3f} ms ({r.latency_b1_p10:.3f}–{r.latency_b1_p90:.3f}) | "
            f"{r.speedup_b1:.2f}× | {r.latency_b256_ms:.2f} ms | {r.speedup_b256:.2f}× |")
    return lines


def _write_reports(rows: list[DemoRow], out: Path, seconds: float, repeats: int) -> None:
    machine = machine_description()
    meta = {"date": date.today().isoformat(), "machine": machine, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "runtime": "eager fp32 CPU", "seconds": round(seconds, 1),
            "command": "prunekit demo", "repeats_b1": repeats, "repeats_b256": max(repeats // 10, 3)}
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    md = ["# prunekit demo — digits CNN", "",
          f"{meta['date']}, {machine}, {meta['threads']} threads, "
          f"{meta['runtime']}, dense and pruned timed interleaved in one process "
          f"(median of {meta['repeats_b1']} calls at b=1, {meta['repeats_b256']} at b=256). Total {meta['seconds']} s.", "",
          *_table_lines(rows), "",
          "Masked variants keep dense shapes: same MACs and no speedup in a dense runtime; "
          "their gain is the compressed size. Structured variants are physically smaller."]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")


def render_rows(rows: list[DemoRow]):
    from rich.table import Table

    t = Table(title="prunekit demo: digits CNN (accuracy on 360 held-out real digits)")
    for c in ("variant", "acc", "sparsity", "nonzero", "MACs", "compressed", "b=1 ms", "speedup b=1",
              "b=256 ms", "speedup b=256"):
        t.add_column(c, justify="left" if c == "variant" else "right")
    for r in rows:
        t.add_row(r.variant, f"{r.accuracy:.2%}", f"{r.sparsity:.1%}", f"{r.nonzero_params:,}",
                  f"{r.macs / 1e6:.2f}M", format_bytes(r.size_compressed_bytes), f"{r.latency_b1_ms:.3f}",
                  f"{r.speedup_b1:.2f}×", f"{r.latency_b256_ms:.2f}", f"{r.speedup_b256:.2f}×")
    return t
