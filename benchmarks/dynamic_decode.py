"""Activation sparsity: batch-1 decode tokens/s, dense vs dynamic, on a LLaMA-shaped stack.

Layer shapes of a ~1B LLaMA (TinyLlama-1.1B: hidden 2048, intermediate 5632, 32 heads, 4 KV
heads), a few decoder layers only, random weights (speed does not depend on trained values).
The vocabulary is scaled so the LM head keeps the share of decode work it has in the 22-layer
model. Dense and dynamic are the same module (``prunekit.dynamic.disabled`` switches the
original forwards back on), timed in alternating order round by round in one process.

Rows: batch-1 decode (the target), then prefill (1 x 128 tokens) and batch-8 decode, which take
the multi-token fallback (one ``hardshrink`` before the layer's own ``F.linear``) and must not be
slower than dense. ``--clock cpu`` times with the process CPU time (one thread only), which on a
shared machine is the latency the call would have on an idle core.

Usage::

    python benchmarks/dynamic_decode.py --sparsity 0.4,0.5 --dtype fp32,bf16
    python benchmarks/dynamic_decode.py --cells prefill,decode8 --sparsity 0.5 --threads 1 \
        --clock cpu --fallback-rounds 30 --name dynamic_decode_fallback
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prunekit.dynamic import (  # noqa: E402
    ActivationSparsityConfig, disabled, sparsify_activations,
)
from results_schema import load_average, write_result  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build(layers: int, dtype: torch.dtype):
    import transformers

    vocab = int(32000 * layers / 22)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=2048, intermediate_size=5632,
                                   num_hidden_layers=layers, num_attention_heads=32,
                                   num_key_value_heads=4, max_position_embeddings=2048)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).to(dtype).eval(), vocab


CLOCK = {"wall": time.perf_counter}


def decode_ms(model, prompt: torch.Tensor, steps: int) -> float:
    """Milliseconds per generated token (greedy), prefill excluded."""
    import transformers

    now = CLOCK["wall"]
    with torch.inference_mode():
        cache = transformers.DynamicCache()
        out = model(input_ids=prompt, past_key_values=cache, use_cache=True)
        tok = out.logits[:, -1:].argmax(-1)
        t0 = now()
        for _ in range(steps):
            out = model(input_ids=tok, past_key_values=out.past_key_values, use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        return (now() - t0) * 1e3 / steps


def forward_ms(model, ids: torch.Tensor) -> float:
    now = CLOCK["wall"]
    with torch.inference_mode():
        t0 = now()
        model(input_ids=ids)
        return (now() - t0) * 1e3


def paired(model, fn, rounds: int) -> dict:
    """Dense and dynamic alternately; per-round speedup = dense / dynamic."""
    dense, dyn = [], []
    fn()  # warm-up, dynamic
    with disabled(model):
        fn()
    for r in range(rounds):
        order = ("dense", "dyn") if r % 2 == 0 else ("dyn", "dense")
        for which in order:
            if which == "dense":
                with disabled(model):
                    dense.append(fn())
            else:
                dyn.append(fn())
    ratios = [d / s for d, s in zip(dense, dyn, strict=True)]
    rng = random.Random(0)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    return {"dense": statistics.median(dense), "dyn": statistics.median(dyn),
            "speedup": statistics.median(ratios), "lo": boots[50], "hi": boots[1949],
            "rom": statistics.median(dense) / statistics.median(dyn)}


def row(label: str, dtype: str, s: float, res: dict, unit: str, per: float = 1.0) -> list:
    wide = (res["hi"] - res["lo"]) / res["speedup"] > 0.2 or \
        abs(res["rom"] - res["speedup"]) / res["speedup"] > 0.1
    if unit == "ms":  # a fallback cell: its interval is the claim, so it must be narrow
        wide = wide or (res["hi"] - res["lo"]) / res["speedup"] > 0.04
    if unit == "tok/s":
        a, b = f"{per * 1e3 / res['dense']:.1f}", f"{per * 1e3 / res['dyn']:.1f}"
    else:
        a, b = f"{res['dense']:.1f}", f"{res['dyn']:.1f}"
    return [label, dtype, f"{s:.0%}", a, b, f"{res['speedup']:.2f}x",
            f"{res['lo']:.2f}-{res['hi']:.2f}", "unreliable" if wide else "ok"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--sparsity", default="0.4,0.5")
    ap.add_argument("--dtype", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=16, help="decode tokens per timed sample")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--compile", action="store_true", help="add torch.compile as a candidate")
    ap.add_argument("--name", default="dynamic_decode")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time (needs --threads 1)")
    ap.add_argument("--cells", default="decode1,prefill,decode8")
    ap.add_argument("--fallback-rounds", dest="fallback_rounds", type=int, default=0,
                    help="rounds of the prefill / batch-8 cells (default: rounds // 2)")
    ap.add_argument("--multi-token", dest="multi_token", choices=("masked", "dense"),
                    default="dense")
    ap.add_argument("--kernel", default=None,
                    help="force one batch-1 kernel (no kernel timing; for fallback-only runs)")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (CPU time sums the threads)")
    torch.set_num_threads(args.threads)
    CLOCK["wall"] = time.process_time if args.clock == "cpu" else time.perf_counter
    cells = set(args.cells.split(","))
    fb_rounds = args.fallback_rounds or max(5, args.rounds // 2)
    load0 = load_average()
    decode, other, kern = [], [], []
    for dname in args.dtype.split(","):
        model, vocab = build(args.layers, DTYPES[dname])
        calib = torch.randint(0, vocab, (16, 32), generator=torch.Generator().manual_seed(1))
        prompt = torch.randint(0, vocab, (1, 32), generator=torch.Generator().manual_seed(2))
        prompt8 = torch.randint(0, vocab, (8, 32), generator=torch.Generator().manual_seed(3))
        prefill = torch.randint(0, vocab, (1, 128), generator=torch.Generator().manual_seed(4))
        kernels = ("masked_dense", "gather_rows", "gather_bag") + (
            ("compiled",) if args.compile else ())
        for s in (float(v) for v in args.sparsity.split(",")):
            rep = sparsify_activations(model, calib, s, config=ActivationSparsityConfig(
                kernels=kernels, repeats=9, multi_token=args.multi_token, kernel=args.kernel))
            chosen = sorted({r.kernel for r in rep.layers})
            per = {}
            for r in rep.layers:
                for k, v in r.times_ms.items():
                    per[k] = per.get(k, 0.0) + v
            kern.append([dname, f"{s:.0%}", f"{rep.mean_heldout:.1%}", ", ".join(chosen)]
                        + [f"{per.get(k, float('nan')):.2f}" for k in
                           ("masked_dense", "gather_rows", "gather_bag/1", "gather_bag/2")])
            if "decode1" in cells:
                res = paired(model, lambda m=model, p=prompt: decode_ms(m, p, args.steps),
                             args.rounds)
                decode.append(row("decode b=1", dname, s, res, "tok/s"))
                print(decode[-1], flush=True)
            if "prefill" in cells:
                res = paired(model, lambda m=model, p=prefill: forward_ms(m, p), fb_rounds)
                other.append(row("prefill 1x128", dname, s, res, "ms"))
                print(other[-1], flush=True)
            if "decode8" in cells:
                res = paired(model, lambda m=model, p=prompt8: decode_ms(m, p, 4), fb_rounds)
                other.append(row("decode b=8", dname, s, res, "ms"))
                print(other[-1], flush=True)
        del model
    cols = ["shape", "dtype", "sparsity", "dense", "dynamic", "speedup", "95% CI", "reliability"]
    tables = [
        {"title": "Batch-1 decode tokens/s (bar: >= 1.5x at 50%, >= 1.3x at 40%)",
         "columns": cols, "rows": decode,
         "notes": f"{args.layers} decoder layers of TinyLlama-1.1B shape; {args.steps} greedy "
                  f"tokens per sample after a 32-token prompt; median of {args.rounds} "
                  "alternating rounds; speedup = median of per-round dense/dynamic ratios, "
                  "95% bootstrap CI; TEAL reports 1.53x / 1.8x at 40% / 50% on GPU."},
        {"title": "Prefill and batch 8 (multi-token fallback: must not be slower)",
         "columns": cols, "rows": other,
         "notes": f"ms per 1x128 prefill forward / per batch-8 decode step (4 steps per sample "
                  f"after a 32-token prompt); fallback multi_token={args.multi_token!r}; median "
                  f"of {fb_rounds} alternating rounds; speedup = median of per-round "
                  "dense/dynamic ratios, 95% bootstrap CI ('ok' needs a CI narrower than 4%); "
                  f"clock: {'process CPU time, 1 thread' if args.clock == 'cpu' else 'wall'}"},
        {"title": "Kernel choice (sum over layers of measured batch-1 ms per call)",
         "columns": ["dtype", "sparsity", "held-out sparsity", "kernels chosen",
                     "masked_dense", "gather_rows", "gather_bag/1", "gather_bag/2"],
         "rows": kern,
         "notes": "each layer timed in model order round by round, so weights come from memory"},
    ]
    tables = [t for t in tables if t["rows"]]
    load1 = load_average()
    caveats = ["random weights: speed only; quality is in dynamic_quality",
               f"{args.layers} layers of the 22 of TinyLlama-1.1B, vocabulary scaled to "
               f"{int(32000 * args.layers / 22)} so the LM head keeps its share",
               "weight_layout='both': an input-major copy of each weight (2x weight memory)"]
    if max(float(v) for v in load0.split()[2:5:2]) > 2 or \
            max(float(v) for v in load1.split()[2:5:2]) > 2:
        caveats.append("the machine was shared while measuring (load average above 2)")
    title = ("Activation sparsity: batch-1 decode on CPU" if "decode1" in cells else
             f"Activation sparsity: prefill and batch 8 on CPU (multi_token={args.multi_token!r})")
    path = write_result(args.name, title, tables,
                        caveats=caveats, load=f"{load0} at start, {load1} at end")
    print(path)


if __name__ == "__main__":
    main()
