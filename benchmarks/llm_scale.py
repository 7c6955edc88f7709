"""Pruning time and peak memory of Wanda / SparseGPT on random-init LLaMA configs (1B, 7B).

Numerics of the methods do not depend on trained weights, so a random LLaMA with the real shapes
times them honestly. Weights are created on the meta device and filled with N(0, 0.02) directly
in the target dtype (no slow initialisers); calibration ids are random tokens.

The whole model stays on CPU; each block is moved to ``--device`` in turn (the driver's bounded-
memory mode). On CUDA, time per block uses ``torch.cuda.synchronize`` and peak GPU memory is
``torch.cuda.max_memory_allocated``; on CPU, peak process RSS (``ru_maxrss``).

Also measures dense vs pruned inference latency with prunekit.bench.timer.compare_latency
(same process, interleaved, median and p10/p90):
unstructured and N:M zeros in dense tensors do not speed up dense GEMMs; on CUDA the 2:4 result is
additionally timed with ``torch.sparse.to_sparse_semi_structured`` on its linear layers where the
installed torch supports it.

Usage (GPU machine, unchanged)::

    python benchmarks/llm_scale.py --config 1b --device cuda --dtype float16 --json scale_1b.json
    python benchmarks/llm_scale.py --config 7b --device cuda --dtype float16 --json scale_7b.json

CPU (time per block only: ``--layers 2`` builds the same shapes with 2 blocks)::

    python benchmarks/llm_scale.py --config 1b --layers 2 --device cpu --nsamples 8 --seqlen 256
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prunekit.llm.oneshot import prune_llm  # noqa: E402

CONFIGS = {  # TinyLlama-1.1B and LLaMA-2-7B shapes
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, vocab_size=32000),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build(name: str, layers: int | None, dtype: torch.dtype, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    kw = dict(CONFIGS[name])
    if layers:
        kw["num_hidden_layers"] = layers
    cfg = LlamaConfig(**kw, max_position_embeddings=4096)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name_, p in model.named_parameters():
            if "norm" in name_:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(0.02).to(dtype))
        model.model.rotary_emb.__init__(cfg)  # recompute inv_freq buffers lost by to_empty
    return model.eval()


def _peak(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_gpu_gib": torch.cuda.max_memory_allocated(device) / 2**30}
    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def semi_structured(model) -> str:
    """Swap every block linear weight for a 2:4 semi-structured sparse tensor (CUDA only)."""
    try:
        from torch.sparse import to_sparse_semi_structured

        for blk in model.model.layers:
            for m in blk.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight = torch.nn.Parameter(to_sparse_semi_structured(m.weight), requires_grad=False)
        return "ok"
    except Exception as e:  # unsupported GPU / dtype / shape: report, time dense only
        return f"unsupported: {type(e).__name__}: {e}"[:200]


def time_interleaved(models: dict, device, reps: int, seqlen: int) -> dict:
    """Latency with prunekit's bench harness: same rotating inputs, calls interleaved."""
    from prunekit.bench.timer import compare_latency

    def make(i: int) -> dict:
        g = torch.Generator().manual_seed(100 + i)
        return {"input_ids": torch.randint(0, 32000, (1, seqlen), generator=g).to(device),
                "use_cache": False}

    res = compare_latency(models, make, warmup=2, repeats=reps)
    return {k: {"median_ms": v.median_ms, "p10_ms": v.p10_ms, "p90_ms": v.p90_ms} for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="1b")
    ap.add_argument("--layers", type=int, default=None, help="override the number of blocks")
    ap.add_argument("--methods", default="wanda,sparsegpt")
    ap.add_argument("--pattern", default=None, help="N:M (default: 50%% unstructured)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float16")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--latency-reps", dest="reps", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype] if device.type == "cuda" else torch.float32
    ids = torch.randint(0, 32000, (args.nsamples, args.seqlen), generator=torch.Generator().manual_seed(0))
    res = {"meta": {"config": args.config, "layers": args.layers, "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "cpu": platform.processor() or platform.machine(), "dtype": str(dtype),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "nsamples": args.nsamples, "seqlen": args.seqlen,
                    "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}, "runs": []}
    for method in args.methods.split(","):
        model = build(args.config, args.layers, dtype)
        res["meta"]["params"] = sum(p.numel() for p in model.parameters())
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        kw = {"pattern": args.pattern} if args.pattern else {"sparsity": 0.5}
        t0 = time.perf_counter()
        rep = prune_llm(model, ids, method=method, device=str(device), backup=False, **kw)
        total = time.perf_counter() - t0
        run = {"method": method, "total_s": total, "block_s": rep.block_seconds,
               "median_block_s": statistics.median(rep.block_seconds),
               "sparsity": rep.overall_sparsity, **_peak(device)}
        if args.reps:
            dense = build(args.config, args.layers, dtype).to(device)
            models = {"dense": dense, "pruned": model.to(device)}
            if device.type == "cuda" and args.pattern == "2:4":
                sp = build(args.config, args.layers, dtype)
                sp.load_state_dict(model.state_dict())
                sp = sp.to(device)
                run["semi_structured"] = semi_structured(sp)
                if run["semi_structured"] == "ok":
                    models["pruned_2:4_sparse_kernel"] = sp
            run["latency"] = time_interleaved(models, device, args.reps, min(args.seqlen, 512))
            del models, dense
        res["runs"].append(run)
        print(json.dumps(run), flush=True)
        del model
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
