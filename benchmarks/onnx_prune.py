"""ONNX: torchvision ResNet-18 exported to ONNX, pruned 50% through ``prunekit prune-onnx``.

ONNX Runtime (CPU, one intra-op thread, batch 1) times the dense and the pruned graph
interleaved in one process; the pruned graph's outputs are compared with the masked reference
(the original graph with the removed channels' consumer weights zeroed) on fresh inputs.

    python benchmarks/onnx_prune.py [--repeats 40] [--ratio 0.5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
import torchvision  # noqa: E402

from prunekit.bench.timer import ProcessCpuClock, WallClock, interleaved_samples  # noqa: E402
from prunekit.onnx.importer import inline_shared_initializers, to_torch  # noqa: E402
from prunekit.onnx.reference import input_zero_mask, max_diff, run_ort, write_zeros  # noqa: E402
from prunekit.structural import plan_structured  # noqa: E402
from results_schema import load_average, write_result  # noqa: E402

SHAPE = (1, 3, 224, 224)


def export_dense(path: Path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, folded by the exporter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(SHAPE),), str(path), dynamo=False,
                          opset_version=17, input_names=["image"], output_names=["logits"])


def masked_reference(dense_path: Path, ratio: float):
    """The dense graph with the removed channels masked, planned exactly as prune-onnx does."""
    import onnx

    model = onnx.load(str(dense_path))
    inline_shared_initializers(model)
    gm, refs = to_torch(model)
    plan = plan_structured(gm, torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)),
                           ratio=ratio)
    mods = dict(gm.named_modules())
    zero = {e.name: input_zero_mask(mods[e.name], e.keep_in) for e in plan.edits
            if e.keep_in is not None and not e.coupled}
    masked, unmapped = write_zeros(model, refs, zero)
    assert not unmapped, unmapped
    return masked, plan


def session(path_or_model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    data = path_or_model.SerializeToString() if hasattr(path_or_model, "SerializeToString") \
        else Path(path_or_model).read_bytes()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def paired(dense, pruned, seed=0):
    """Median of per-round ratios dense/pruned and its 95% bootstrap interval."""
    r = np.array(dense.samples) / np.array(pruned.samples)
    rng = np.random.default_rng(seed)
    boots = [np.median(rng.choice(r, r.size)) for _ in range(2000)]
    return float(np.median(r)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args(argv)
    load_start = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="onnx_prune_"))
    dense_path, pruned_path = tmp / "resnet18.onnx", tmp / "resnet18-pruned.onnx"
    export_dense(dense_path)
    t0 = time.time()
    cli = [sys.executable, "-m", "prunekit", "prune-onnx", str(dense_path), "--structured",
           "--ratio", str(args.ratio), "--input-shape", ",".join(map(str, SHAPE)),
           "-o", str(pruned_path)]
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(cli, capture_output=True, text=True, env=env, check=True).stdout
    prune_s = time.time() - t0
    print(out)
    masked, plan = masked_reference(dense_path, args.ratio)
    rng = np.random.default_rng(1)
    fresh = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(8)]
    s_dense, s_pruned, s_masked = session(dense_path), session(pruned_path), session(masked)
    diffs, scale = [], 0.0
    for x in fresh:
        ref = s_masked.run(None, {"image": x})
        diffs.append(max_diff(ref, s_pruned.run(None, {"image": x})))
        scale = max(scale, float(np.abs(ref[0]).max()))
    dense_vs_pruned = max_diff(run_ort(dense_path.read_bytes(), {"image": fresh[0]}),
                               s_pruned.run(None, {"image": fresh[0]}))
    pool = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(8)]
    fns = {"dense": lambda x: s_dense.run(None, {"image": x}),
           "pruned": lambda x: s_pruned.run(None, {"image": x})}
    rows = []
    for label, clock in (("process CPU time", ProcessCpuClock()), ("wall clock", WallClock())):
        st = interleaved_samples(fns, pool, warmup=5, repeats=args.repeats,
                                 numbers={"dense": 1, "pruned": 1}, clock=clock)
        sp, lo, hi = paired(st["dense"], st["pruned"])
        rows.append([label, f"{st['dense'].median:.2f} ({st['dense'].p10:.2f}-{st['dense'].p90:.2f})",
                     f"{st['pruned'].median:.2f} ({st['pruned'].p10:.2f}-{st['pruned'].p90:.2f})",
                     f"{sp:.2f}x", f"{lo:.2f}-{hi:.2f}"])
    p0, p1 = plan.params
    m0, m1 = plan.macs
    tables = [
        {"title": "ResNet-18 (ONNX, 1x3x224x224) pruned 50% of channels by prune-onnx: "
                  "ONNX Runtime latency, dense vs pruned",
         "columns": ["clock", "dense ms (p10-p90)", "pruned ms (p10-p90)", "speedup (median of ratios)",
                     "95% CI"],
         "rows": rows,
         "notes": f"ONNX Runtime CPUExecutionProvider, 1 intra-op thread, batch 1, fp32; "
                  f"{args.repeats} interleaved rounds over 8 rotating random inputs; predicted "
                  f"from MACs {m0 / max(m1, 1):.2f}x (MACs {m0 / 1e9:.2f} G -> {m1 / 1e9:.2f} G)"},
        {"title": "ResNet-18 (ONNX): size and equivalence with the masked reference",
         "columns": ["params dense", "params pruned", "file MB dense", "file MB pruned",
                     "max |pruned - masked| (8 fresh inputs)", "output scale",
                     "max |pruned - dense|", "prune-onnx wall s"],
         "rows": [[f"{p0:,}", f"{p1:,}", f"{dense_path.stat().st_size / 1e6:.1f}",
                   f"{pruned_path.stat().st_size / 1e6:.1f}", f"{max(diffs):.2e}", f"{scale:.3g}",
                   f"{dense_vs_pruned:.3g}", f"{prune_s:.0f}"]],
         "notes": "masked reference: the dense graph with every removed channel's input slice "
                  "zeroed in its consumers, run by ONNX Runtime; 'pruned - dense' shows the "
                  "comparison is not trivially satisfied"},
    ]
    load_end = load_average()
    caveats = ["random weights (torchvision init, randomised BatchNorm statistics): speed and "
               "equivalence only, no accuracy",
               "process CPU time with one thread approximates an idle core's latency on a "
               "shared machine; the wall-clock row includes other processes' interference"]
    if float(load_start.split()[2]) > 2 or float(load_end.split()[2]) > 2:
        caveats.append("the machine was shared (load average above its 2 cores) while measuring")
    path = write_result("onnx_prune", "ONNX: ResNet-18 pruned through prune-onnx", tables,
                        command="python benchmarks/onnx_prune.py " + " ".join(argv),
                        caveats=caveats, load=f"{load_start} at start, {load_end} at end")
    print(path)
    for t in tables:
        print(t["title"]), [print(r) for r in t["rows"]]


if __name__ == "__main__":
    main(sys.argv[1:])
