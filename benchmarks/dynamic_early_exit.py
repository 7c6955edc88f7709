"""Early exit on real digits and MNIST-1D: accuracy vs mean batch-1 latency.

``--task digits``: a small CNN (stem, three stages, global-pool classifier) trained on 75% of
scikit-learn's 1,797 real 8x8 digits. ``--task mnist1d``: the same design in 1-D on MNIST-1D
(Greydanus 2020; generated offline, standard 4,000 / 1,000 split, 40 samples per sequence).
Exit heads after ``stage1`` and ``stage2`` are trained with the CNN frozen. For each confidence
threshold the held-out samples are classified one at a time, the early-exit model and the full
CNN timed on the same sample in alternating order.

Usage::

    python benchmarks/dynamic_early_exit.py --thresholds 1.0,0.999,0.995,0.99,0.98,0.95,0.9
    python benchmarks/dynamic_early_exit.py --task mnist1d --clock cpu --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prunekit.bench.timer import ProcessCpuClock, WallClock  # noqa: E402
from prunekit.dynamic import EarlyExitConfig, early_exit, exit_curve  # noqa: E402
from prunekit.recover.tasks import load_task  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402


def _conv(cin: int, cout: int, stride: int = 1, dim: int = 2) -> list[nn.Module]:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dim == 2 else (nn.Conv1d, nn.BatchNorm1d)
    return [conv(cin, cout, 3, stride=stride, padding=1, bias=False), bn(cout), nn.ReLU()]


class DigitsCNN(nn.Module):
    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv(1, 32, dim=dim))
        self.stage1 = nn.Sequential(*_conv(32, 32, dim=dim), *_conv(32, 32, dim=dim))
        self.stage2 = nn.Sequential(*_conv(32, 64, 2, dim), *_conv(64, 64, dim=dim))
        self.stage3 = nn.Sequential(*_conv(64, 128, 2, dim), *_conv(128, 128, dim=dim),
                                    *_conv(128, 128, dim=dim), *_conv(128, 128, dim=dim))
        pool = nn.AdaptiveAvgPool2d(1) if dim == 2 else nn.AdaptiveAvgPool1d(1)
        self.head = nn.Sequential(pool, nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage3(self.stage2(self.stage1(self.stem(x)))))


def data_mnist1d():
    train, test = load_task("mnist1d")
    return train.tensors, test.tensors


def data(seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n = int(0.75 * len(y))
    return (x[perm[:n]], y[perm[:n]]), (x[perm[n:]], y[perm[n:]])


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for k in range(0, len(y), 64):
            i = perm[k:k + 64]
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", default="1.0,0.9999,0.999,0.995,0.99,0.98,0.95,0.9")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--task", choices=("digits", "mnist1d"), default="digits")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time (needs --threads 1)")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (CPU time sums the threads)")
    torch.set_num_threads(args.threads)
    load0 = load_average()
    torch.manual_seed(0)
    (xtr, ytr), (xte, yte) = data() if args.task == "digits" else data_mnist1d()
    model = DigitsCNN(2 if args.task == "digits" else 1)
    train(model, xtr, ytr, args.epochs)
    ee = early_exit(model, ["stage1", "stage2"], (xtr, ytr),
                    config=EarlyExitConfig(epochs=40, lr=3e-3))
    with torch.no_grad():
        full_acc = float((model(xte).argmax(-1) == yte).float().mean())
        head_acc = [float((o.argmax(-1) == yte).float().mean()) for o in ee.all_exits(xte)]
    ths = [float(t) for t in args.thresholds.split(",")]
    task = "Digits" if args.task == "digits" else "MNIST-1D"
    clock = ProcessCpuClock() if args.clock == "cpu" else WallClock()
    pts = exit_curve(ee, xte, yte, ths, clock=clock)
    rows = [[f"{p.threshold:g}", f"{100 * p.accuracy:.2f}", f"{100 * (p.accuracy - full_acc):+.2f}",
             " / ".join(f"{100 * r:.0f}%" for r in p.exit_rates), f"{p.mean_ms:.3f}",
             f"{p.full_ms:.3f}", f"{p.speedup:.2f}x",
             f"{p.speedup_ci[0]:.2f}-{p.speedup_ci[1]:.2f}",
             "yes" if p.speedup >= 1.5 and p.accuracy >= full_acc - 0.005 else "no"]
            for p in pts]
    for r in rows:
        print(r)
    tables = [{
        "title": f"{task} CNN with exits after stage1 and stage2 (bar: >= 1.5x within 0.5 "
                 "points)",
        "columns": ["threshold", "accuracy %", "vs full", "exit rates (stage1 / stage2 / full)",
                    "mean ms", "full ms", "speedup", "95% CI", "meets bar"],
        "rows": rows,
        "notes": f"{len(yte)} held-out samples, batch 1, {args.threads} thread(s), clock: "
                 f"{'process CPU time' if args.clock == 'cpu' else 'wall'}; full CNN "
                 f"accuracy {100 * full_acc:.2f}%; head accuracies (stage1 / stage2 / full) "
                 + " / ".join(f"{100 * a:.1f}%" for a in head_acc)
                 + "; per sample, early-exit and full model are called 3 times in alternating "
                   "order and the fastest call of each counts; latency = mean over samples; "
                   "speedup = ratio of the means, 95% bootstrap CI over samples."}]
    load1 = load_average()
    caveats = ["BranchyNet / DeeBERT report ~40% time saved on their models; not comparable "
               f"with a small {task} CNN whose batch-1 time is mostly per-module overhead"]
    if max(float(v) for v in (load0.split()[2], load1.split()[2])) > 2:
        caveats.append("the machine was shared while measuring (load average above 2)")
    name = "dynamic_early_exit" + ("" if args.task == "digits" else "_mnist1d")
    print(write_result(name, f"Early exit: {task} CNN, batch 1 on CPU", tables,
                       caveats=caveats, load=f"{load0} at start, {load1} at end"))


if __name__ == "__main__":
    main()
