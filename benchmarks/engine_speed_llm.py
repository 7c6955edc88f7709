"""Structural engine speed on a ~1B-parameter LLaMA-style model: prunekit vs Torch-Pruning.

Random-init ``LlamaForCausalLM`` (hidden 2048, 16 layers, 32 heads, 8 KV heads (GQA),
intermediate 5632, vocab 32000: ~1.1B parameters), example input 1x64 token ids. Each engine runs
in its own subprocess (so its peak RSS is its own): build the model, then time trace + plan +
apply at 50% of MLP channels and attention groups, lm_head / vocabulary kept.

Usage: python benchmarks/engine_speed_llm.py [--layers 16] [--engines prunekit,torch-pruning]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def build(layers: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=layers,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                      max_position_embeddings=256, use_cache=False)
    return LlamaForCausalLM(cfg).eval(), torch.randint(0, 32000, (1, 64))


def run_prunekit(model, x) -> None:
    import prunekit as pk

    plan = pk.plan_structured(model, x, criterion="l1", ratio=0.5, scope="local")
    plan.apply()


def run_tp(model, x) -> None:
    import torch_pruning as tp

    cfg = model.config
    num_heads = {}
    for m in model.modules():
        if hasattr(m, "q_proj"):
            num_heads[m.q_proj] = cfg.num_attention_heads
            num_heads[m.k_proj] = cfg.num_key_value_heads
            num_heads[m.v_proj] = cfg.num_key_value_heads
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                  pruning_ratio=0.5, ignored_layers=[model.lm_head],
                                  num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
                                  head_pruning_ratio=0.5)
    pruner.step()


def child(engine: str, layers: int) -> None:
    import torch

    model, x = build(layers)
    n0 = sum(p.numel() for p in model.parameters())
    t = time.perf_counter()
    err = None
    try:
        (run_prunekit if engine == "prunekit" else run_tp)(model, x)  # TP traces with autograd
        with torch.no_grad():
            out_ok = bool(model(x).logits.shape == (1, 64, 32000))
    except Exception as exc:  # report, do not hide
        err, out_ok = f"{type(exc).__name__}: {str(exc)[:200]}", False
    secs = time.perf_counter() - t
    n1 = sum(p.numel() for p in model.parameters())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"engine": engine, "seconds": secs, "params_before": n0, "params_after": n1,
                      "forward_ok": out_ok, "peak_rss_gib": rss, "error": err}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--engines", default="prunekit,torch-pruning")
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.layers)
        return
    import platform

    import torch

    print(f"machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"LLaMA-style {a.layers} layers, 1x64 tokens")
    print("| engine | trace+plan+apply s | params before → after | forward ok | peak RSS GiB | error |")
    print("|---|---|---|---|---|---|")
    for eng in a.engines.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", eng, "--layers", str(a.layers)],
                             capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            print(f"| {eng} | – | – | – | – | crashed: {out.stderr.strip().splitlines()[-1:]} |")
            continue
        r = json.loads(lines[-1])
        print(f"| {eng} | {r['seconds']:.1f} | {r['params_before'] / 1e9:.2f}B → {r['params_after'] / 1e9:.2f}B"
              f" | {r['forward_ok']} | {r['peak_rss_gib']:.1f} | {r['error'] or ''} |")


if __name__ == "__main__":
    main()
