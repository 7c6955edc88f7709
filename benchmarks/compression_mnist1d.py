"""Deep Compression on MNIST-1D: LeNet-300-100 and a LeNet-5-style 1-D CNN, 3 seeds.

The same pipeline as ``compression_deep.py`` (Han, Mao & Dally, ICLR 2016: train dense ->
prune to the paper's per-layer rates in 3 steps with retraining -> share weights with k-means,
8 bits conv / 5 bits FC -> fine-tune the centroids -> Huffman-code into a ``.pkc`` file) on
MNIST-1D (Greydanus, 2020; the ``mnist1d`` package generates its standard 4,000 / 1,000 split
offline): 40-sample 1-D signals of the ten digits' templates, shifted, scaled, sheared and
noised, harder for an MLP than MNIST.

``lenet300``: 40 -> 300 -> 100 -> 10 (43k weights). ``lenet5_1d``: Caffe's LeNet-5 with 1-D
layers (conv 20@5, pool 2, conv 50@5, pool 2, FC 350 -> 500, FC 10; 181k weights, 2.8% in the
8-bit conv2 against 6% in the paper's).

    PYTHONPATH=src python benchmarks/compression_mnist1d.py [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression_deep import KEEP, PAPER, _tables, deep_compress, layer_table  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402

EPOCHS = {"lenet300": (60, 15, 10), "lenet5_1d": (60, 15, 10)}
LRS = (0.002, 0.001, 0.0002)  # AdamW (the MNIST-1D reference trains with Adam, lr 1e-2 .. 1e-3)


def lenet300() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 300), nn.ReLU(), nn.Linear(300, 100),
                         nn.ReLU(), nn.Linear(100, 10))


def lenet5_1d() -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(1, 20, 5), nn.ReLU(), nn.MaxPool1d(2),
                         nn.Conv1d(20, 50, 5), nn.ReLU(), nn.MaxPool1d(2),
                         nn.Flatten(), nn.Linear(350, 500), nn.ReLU(), nn.Linear(500, 10))


BUILD = {"lenet300": lenet300, "lenet5_1d": lenet5_1d}
KEEP_1D = {"lenet300": KEEP["lenet300"], "lenet5_1d": KEEP["lenet5"]}
PAPER_1D = {"lenet300": PAPER["lenet300"], "lenet5_1d": PAPER["lenet5"]}


def mnist1d_data() -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D's standard split (4,000 train / 1,000 test), channel axis added."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    def ds(x, y):
        return TensorDataset(torch.tensor(x, dtype=torch.float32).unsqueeze(1),
                             torch.tensor(y, dtype=torch.long))
    return ds(d["x"], d["y"]), ds(d["x_test"], d["y_test"])


def run_one(arch: str, seed: int, data, quick: bool) -> dict:
    torch.manual_seed(seed)
    train, test = data
    gen = torch.Generator().manual_seed(seed)
    loaders = (DataLoader(train, batch_size=100, shuffle=True, generator=gen),
               DataLoader(test, batch_size=1000))
    epochs = (4, 2, 2) if quick else EPOCHS[arch]
    return deep_compress(BUILD[arch](), BUILD[arch], *loaders, KEEP_1D[arch], epochs, LRS,
                         optimizer="adamw")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="lenet300,lenet5_1d")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0, t0 = load_average(), time.time()
    data = mnist1d_data()
    results: dict[str, list[dict]] = {}
    for arch in args.models.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            r = run_one(arch, seed, data, args.quick)
            results.setdefault(arch, []).append(r)
            print(arch, seed, {k: round(v, 2) for k, v in r["acc"].items()},
                  round(r["info"]["weight_ratio"]["huffman"], 1), flush=True)
    tables = _tables(results, PAPER_1D, "the 1,000 MNIST-1D test signals") + [
        layer_table(results)]
    for t in tables:
        print(t["title"])
        for row in t["rows"]:
            print("  ", row)
    if args.quick:
        return
    write_result(
        "compression_mnist1d", "Deep Compression: LeNet-300-100 and a 1-D LeNet-5 on MNIST-1D",
        tables, command="PYTHONPATH=src python benchmarks/compression_mnist1d.py",
        load=f"{load0} at start, {load_average()} at end; {time.time() - t0:.0f} s",
        caveats=["MNIST-1D (mnist1d package, standard 4,000 train / 1,000 test split) is not "
                 "MNIST: the paper's accuracy column is its MNIST figure, for orientation only. "
                 "One test signal is 0.1 accuracy points.",
                 "Per-layer pruning rates are the paper's (tables 1-2) times one factor per "
                 "model so that 8% of the weights are kept overall; 3 magnitude pruning steps "
                 "with retraining after each. AdamW, learning rates (dense / pruning steps / "
                 f"centroids) {LRS}; epochs " + "; ".join(
                     f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in EPOCHS.items()) + "."])


if __name__ == "__main__":
    main()
