"""What the default time-weighted global selection costs in accuracy, on a trained model.

A small residual CNN (bottleneck blocks, BatchNorm) is trained on scikit-learn's real 8x8
digits (upsampled to 16x16), then cut with global L1 at 80/60/40% of its MACs three ways: the
default (ranking weighed by the analytic time estimate, each group bounded by the MACs-only
plan), the MACs-only ranking (``time_weights=None``) and the same estimate passed as explicit
weights, which are not bounded; each is fine-tuned for a few epochs and evaluated on held-out
digits.

    python benchmarks/time_proxy_accuracy.py
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

from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench.metrics import count_macs  # noqa: E402
from prunekit.config import TargetSpec  # noqa: E402
from prunekit.structural import plan_structured  # noqa: E402
from prunekit.structural.time_proxy import group_time_weights  # noqa: E402


class Block(nn.Module):
    def __init__(self, c: int, m: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, m, 1), nn.BatchNorm2d(m))
        self.b = nn.Sequential(nn.Conv2d(m, m, 3, padding=1), nn.BatchNorm2d(m))
        self.c = nn.Sequential(nn.Conv2d(m, c, 1), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.c(F.relu(self.b(F.relu(self.a(x))))))


def model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), Block(64, 32), Block(64, 32),
                         nn.MaxPool2d(2), nn.Conv2d(64, 128, 1), Block(128, 64), Block(128, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = F.interpolate(torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16, size=16,
                      mode="bilinear")
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]


def train(m: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> nn.Module:
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            loss = F.cross_entropy(m(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


def accuracy(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((m(x).argmax(1) == y).float().mean())


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--finetune", type=int, default=3)
    ap.add_argument("--name", default="time_proxy_accuracy")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xtr, ytr, xte, yte = data()
    net = train(model(), xtr, ytr, a.epochs, 3e-3)
    x1 = xtr[:1]
    dense_acc, dense_macs = accuracy(net, xte, yte), count_macs(net, x1)[0]
    weights = group_time_weights(net, x1)
    by_first = {k[0]: w for k, w in weights.items()}  # a group's members start with its producers
    rows = [["dense", "-", 1.0, round(100 * dense_acc, 1), "", "64 / 128"]]
    variants = {"default (time estimate)": dict(),
                "MACs-only ranking": dict(time_weights=None),
                "time estimate, unbounded": dict(time_weights=lambda g: by_first[g[0]])}
    for keep in (0.8, 0.6, 0.4):
        for label, kw in variants.items():
            torch.manual_seed(0)
            pruned = plan_structured(net, x1, scope="global", target=TargetSpec(macs=keep),
                                     **kw).apply(copy=True)
            before = accuracy(pruned.eval(), xte, yte)
            after = accuracy(train(pruned, xtr, ytr, a.finetune, 1e-3), xte, yte)
            res = [pruned[0].out_channels, pruned[5].out_channels]
            rows.append([label, keep, round(count_macs(pruned, x1)[0] / dense_macs, 3),
                         round(100 * after, 1), round(100 * before, 1), f"{res[0]} / {res[1]}"])
            print(rows[-1], flush=True)
    table = {"title": "Residual CNN on digits: global L1 cut, then fine-tuned",
             "columns": ["selection", "MACs target", "MACs kept", "accuracy % (fine-tuned)",
                         "accuracy % (no fine-tuning)", "residual channels (stage 1 / 2)"],
             "rows": rows}
    path = write_result(a.name, "Accuracy cost of the time-weighted default selection",
                        [table], caveats=[
        f"one seed; trained {a.epochs} epochs (Adam 3e-3), fine-tuned {a.finetune} epochs "
        f"(Adam 1e-3) after pruning; 1,400 train / 397 test digits; {load_average()}",
        "group weights of the time estimate: " + ", ".join(
            f"{k[0]}: {v:.2f}" for k, v in weights.items())])
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
