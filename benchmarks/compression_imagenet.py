"""Deep Compression file ratios for AlexNet and VGG-16 (torchvision architectures, random init).

The paper's per-layer pruning rates and bits (Han, Mao & Dally, ICLR 2016, tables 4 and 5:
8-bit codebooks for conv, 5-bit for FC; relative indices 8 bits conv, 5 bits FC) are applied
with magnitude pruning to randomly initialised weights, then the model is shared and written as a
``.pkc`` file. Random weights carry no accuracy: only sizes are reported.

    PYTHONPATH=src python benchmarks/compression_imagenet.py [--models alexnet,vgg16]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_schema import load_average, write_result  # noqa: E402

from prunekit.compression import codebook_of, compress, share_weights  # noqa: E402
from prunekit.compression.huffman import huffman_encode  # noqa: E402
from prunekit.weights import prune_weights  # noqa: E402

NAMES = {
    "alexnet": ["features.0", "features.3", "features.6", "features.8", "features.10",
                "classifier.1", "classifier.4", "classifier.6"],
    "vgg16": ["features.0", "features.2", "features.5", "features.7", "features.10",
              "features.12", "features.14", "features.17", "features.19", "features.21",
              "features.24", "features.26", "features.28", "classifier.0", "classifier.3",
              "classifier.6"],
}
LABELS = {"alexnet": ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"],
          "vgg16": ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6",
                    "fc7", "fc8"]}
# the paper's tables 4 (AlexNet) and 5 (VGG-16), per layer: weights kept %, index bits,
# Huffman-coded weight bits and index bits (per stored entry), compress rate P+Q and P+Q+H (%)
PAPER_LAYERS = {
    "alexnet": [(84, 4, 6.3, 1.2, 32.6, 20.53), (38, 4, 5.5, 2.3, 14.5, 9.43),
                (35, 4, 5.1, 2.6, 13.1, 8.44), (37, 4, 5.2, 2.5, 14.1, 9.11),
                (37, 4, 5.6, 2.5, 14.0, 9.43), (9, 4, 3.9, 3.2, 3.0, 2.39),
                (9, 4, 3.6, 3.7, 3.0, 2.46), (25, 4, 4.0, 3.2, 7.3, 5.85)],
    "vgg16": [(58, 5, 6.8, 1.7, 40.0, 29.97), (22, 5, 6.5, 2.6, 9.8, 6.99),
              (34, 5, 5.6, 2.4, 14.3, 8.91), (36, 5, 5.9, 2.3, 14.7, 9.31),
              (53, 5, 4.8, 1.8, 21.7, 11.15), (24, 5, 4.6, 2.9, 9.7, 5.67),
              (42, 5, 4.6, 2.2, 17.0, 8.96), (32, 5, 4.6, 2.6, 13.1, 7.29),
              (27, 5, 4.2, 2.9, 10.9, 5.93), (34, 5, 4.4, 2.5, 14.0, 7.47),
              (35, 5, 4.7, 2.5, 14.3, 8.00), (29, 5, 4.6, 2.7, 11.7, 6.52),
              (36, 5, 4.6, 2.3, 14.8, 7.79), (4, 5, 3.6, 3.5, 1.6, 1.10),
              (4, 5, 4.0, 4.3, 1.5, 1.25), (23, 5, 4.0, 3.4, 7.1, 5.24)],
}
# fraction of weights KEPT per layer, torchvision module names (the tables' "Weights%")
KEEP = {a: {n: r[0] / 100 for n, r in zip(NAMES[a], PAPER_LAYERS[a], strict=True)}
        for a in NAMES}
PAPER = {"alexnet": {"ratio": 35, "dense_mb": 240, "comp_mb": 6.9, "pruned": 9, "shared": 27},
         "vgg16": {"ratio": 49, "dense_mb": 552, "comp_mb": 11.3, "pruned": 13, "shared": 31}}
BITS = {"Conv2d": 8, "Linear": 5}


def _coded_bits(symbols: np.ndarray, width: int) -> int:
    s = huffman_encode(symbols, width)
    return s.nbits + (s.table_bits() if s.coding == "huffman" else 0)


def paper_accounting(mask: torch.Tensor, codes: torch.Tensor, clusters: int, bits: int,
                     index_bits: int) -> dict:
    """One layer stored the paper's way, from our mask and codebook indices: row-major
    relative indices of ``index_bits`` with a gap of up to ``2^index_bits``; a longer gap is
    bridged by filler entries, each a full entry (index + codebook index of a zero), as in the
    paper's figure 2. P+Q at fixed widths; P+Q+H with both streams Huffman-coded."""
    m = mask.detach().reshape(-1).numpy().astype(bool)
    pos = np.flatnonzero(m)
    span = 1 << index_bits
    d = np.diff(np.concatenate(([-1], pos)))
    fill = (d - 1) // span
    entries = int(pos.size + fill.sum())
    last = np.cumsum(fill + 1) - 1  # the entry that carries each kept weight
    gaps = np.full(entries, span - 1, dtype=np.int64)
    gaps[last] = d - fill * span - 1
    sym = np.full(entries, clusters, dtype=np.int64)  # the filler's zero: one more symbol
    sym[last] = codes.detach().reshape(-1).numpy()[pos]
    cb = clusters * 32
    wb, ib = _coded_bits(sym, bits + 1), _coded_bits(gaps, index_bits)
    return {"numel": int(m.size), "kept": int(pos.size), "fillers": int(fill.sum()),
            "pruned": entries * (index_bits + 32), "shared": entries * (index_bits + bits) + cb,
            "huffman": wb + ib + cb, "wbits_h": wb / max(entries, 1),
            "ibits_h": ib / max(entries, 1)}


def run(arch: str) -> dict:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    with torch.no_grad():
        prune_weights(model, 0.0, overrides={n: 1 - k for n, k in KEEP[arch].items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        share_weights(model, bits=BITS, init="linear")
    mods = dict(model.named_modules())
    acct = {}
    for name, row in zip(NAMES[arch], PAPER_LAYERS[arch], strict=True):
        cb, idx, mask, bits = codebook_of(mods[name])
        acct[name] = paper_accounting(mask, idx, cb.numel(), bits, row[1])
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        info = compress(model, Path(d) / "m.pkc")
        info["seconds"] = time.time() - t0
    info["paper_accounting"] = acct
    del model
    gc.collect()
    return info


def _r(dense: float, x: float) -> str:
    return f"{dense / x:.1f}x"


def stage_table(results: dict[str, dict]) -> dict:
    rows = []
    for arch, info in results.items():
        p, acct = PAPER[arch], info["paper_accounting"]
        dense = info["weight_bytes"]["dense"]
        numel = sum(a["numel"] for a in acct.values())
        kept = sum(a["kept"] for a in acct.values())
        layer_dense = [a["numel"] * 4 for a in acct.values()]
        sums = {k: sum(r[i] / 100 * n for r, n in zip(PAPER_LAYERS[arch], layer_dense,
                                                      strict=True))
                for k, i in (("kept", 0), ("shared", 4), ("huffman", 5))}
        rows.append([arch, "weights kept (count)", f"{numel / kept:.1f}x", "", "",
                     f"{4 * numel / sums['kept']:.1f}x", f"{p['pruned']}x"])
        for stage, label, paper in (("pruned", "pruned, fp32 values + indices", ""),
                                    ("shared", "+ weight sharing", f"{p['shared']}x"),
                                    ("huffman", "+ Huffman", f"{p['ratio']}x")):
            ours = info["weight_bytes"][stage]
            pa = sum(a[stage] for a in acct.values()) / 8
            rows.append([arch, label, f"{ours / 1e6:.2f} MB", _r(dense, ours),
                         f"{pa / 1e6:.2f} MB = {_r(dense, pa)}",
                         _r(dense, sums[stage]) if stage in sums else "", paper])
        rows.append([arch, ".pkc file, whole state_dict", f"{info['file_bytes'] / 1e6:.2f} MB",
                     f"{info['file_ratio']:.1f}x", "", "",
                     f"{p['dense_mb']} MB -> {p['comp_mb']} MB"])
    return {"title": "AlexNet and VGG-16: stored weights by stage against fp32 dense "
                     "(random init, the paper's per-layer pruning rates and bits)",
            "columns": ["model", "stage", ".pkc size", ".pkc ratio",
                        "paper's accounting on our masks", "paper's per-layer rates summed",
                        "paper (headline)"],
            "rows": rows,
            "notes": "'.pkc': the file's own coding (a filler is one gap symbol; gaps of 8 bits "
                     "conv / 5 bits FC; the scan order that codes smaller). 'paper's accounting': "
                     "the same masks and codebook indices stored as the paper does (tables 4-5: "
                     "4-bit indices for AlexNet, 5-bit for VGG-16, row-major; every filler a full "
                     "entry with a codebook index), fixed width for sharing, Huffman-coded for "
                     "the last stage. 'paper's per-layer rates summed': the tables' per-layer "
                     "compress rates applied to torchvision's layer sizes. Weights of the "
                     "Conv/Linear layers only; the .pkc row is the whole file."}


def layer_table(results: dict[str, dict]) -> dict:
    rows = []
    for arch, info in results.items():
        entries = {e["key"].removesuffix(".weight"): e for e in info["tensors"]}
        acct = info["paper_accounting"]
        for name, label, row in zip(NAMES[arch], LABELS[arch], PAPER_LAYERS[arch], strict=True):
            a, e = acct[name], entries[name]
            n_ent = a["kept"] + a["fillers"]
            pkc = e["bits"]["huffman"] / (32 * a["numel"])
            rows.append([arch, label, f"{100 * a['kept'] / a['numel']:.1f} / {row[0]}",
                         f"{a['fillers'] / max(a['kept'], 1):.2f}",
                         f"{e['codes']['nbits'] / a['kept']:.2f} / "
                         f"{e['gaps']['nbits'] / a['kept']:.2f}",
                         f"{a['wbits_h']:.2f} / {a['ibits_h']:.2f}", f"{row[2]} / {row[3]}",
                         f"{100 * a['shared'] / (32 * a['numel']):.2f} / {row[4]}",
                         f"{100 * pkc:.2f} / {100 * a['huffman'] / (32 * a['numel']):.2f} / "
                         f"{row[5]}", f"{n_ent}"])
    return {"title": "Per layer: where the bytes differ from the paper's tables 4 and 5",
            "columns": ["model", "layer", "weights kept % (ours / paper)",
                        "fillers per kept weight (paper's indices)",
                        ".pkc Huffman bits per kept weight (codebook index / gap)",
                        "paper's accounting: Huffman bits per entry (weight / index)",
                        "paper: Huffman bits (weight / index)",
                        "P+Q compress rate % (paper's accounting / paper)",
                        "P+Q+H compress rate % (.pkc / paper's accounting / paper)",
                        "entries (paper's accounting)"],
            "rows": rows,
            "notes": "Compress rate: stored bits over the layer's fp32 bits. An entry is a kept "
                     "weight or a filler. Random-init weights: magnitude pruning keeps the "
                     "largest of uniformly distributed values, so the kept values are two "
                     "bands (negative and positive) rather than the trained weights' peaked "
                     "bimodal distribution, and the positions are spread uniformly."}


def _vs(info: dict, arch: str) -> str:
    dense = info["weight_bytes"]["dense"]
    ours = dense / info["weight_bytes"]["huffman"]
    acct = dense / (sum(a["huffman"] for a in info["paper_accounting"].values()) / 8)
    paper = PAPER[arch]["ratio"]
    return (f"{arch}: .pkc {ours:.1f}x ({100 * (ours / paper - 1):+.0f}% vs {paper}x), the "
            f"paper's accounting on the same masks {acct:.1f}x ({100 * (acct / paper - 1):+.0f}%)")


def _caveats(results: dict[str, dict]) -> list[str]:
    return [
        "Random init: the weights are Kaiming-uniform, not the trained weights the paper codes; "
        "file ratios only, no accuracy.",
        "Against the paper's headline: " + "; ".join(_vs(i, a) for a, i in results.items())
        + ". Within 15% is the bar.",
        "Where the bytes differ (per-layer table): pruning and sharing match the paper once "
        "fillers are charged as full entries (P+Q compress rates within a few tenths of a "
        "point per layer). The .pkc file is smaller than the paper's accounting because a "
        "filler is one gap symbol (no codebook index) and the 8-bit conv gaps need no fillers. "
        "The Huffman stage differs by layer type: conv codebook indices of random weights "
        "code to about 6.3-8 bits per entry against the paper's 4.2-6.8 (uniformly spread "
        "kept values use the 256 centroids evenly; trained weights are peaked), so conv layers "
        "end larger than the paper's. FC codebook indices code to 2.4-4.3 bits against the "
        "paper's 3.6-4.0: AlexNet's 9%-kept FC layers keep random values in two narrow bands "
        "that few of the 32 linear centroids cover, hence fewer bits; VGG-16's fc6/fc7 gaps "
        "need 4.4 bits against the paper's 3.5/4.3 (uniformly scattered positions need 0.37 "
        "fillers per kept weight, about 0.28 in the paper's figures).",
        "The paper's per-layer compress rates (tables 4-5), applied to torchvision's layer "
        "sizes, sum to the 'per-layer rates summed' column; for VGG-16 that is above the "
        "paper's own total of 49x (its total row reads 2.05%).",
        "torchvision AlexNet (64/192/384/256/256 conv filters, no groups, 61.1M parameters) "
        "differs slightly from the paper's Caffe AlexNet (60.9M)."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="alexnet,vgg16")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    load0, t0 = load_average(), time.time()
    results = {}
    for arch in args.models.split(","):
        results[arch] = run(arch)
        print(arch, {s: round(v, 1) for s, v in results[arch]["weight_ratio"].items()},
              f"{results[arch]['seconds']:.0f}s", flush=True)
    tables = [stage_table(results), layer_table(results)]
    for t in tables:
        for row in t["rows"]:
            print("  ", row)
    if args.no_write:
        return
    write_result(
        "compression_imagenet", "Deep Compression: AlexNet and VGG-16 file ratios", tables,
        command="PYTHONPATH=src python benchmarks/compression_imagenet.py",
        load=f"{load0} at start, {load_average()} at end; {time.time() - t0:.0f} s",
        caveats=_caveats(results))


if __name__ == "__main__":
    main()
