"""Quick structural sweep over torchvision classification models (random weights, small inputs).

Usage: python benchmarks/structural_sweep.py [model ...]
Prints, per model: prunable groups, params kept, verify max|diff|, seconds, or the error.
"""

from __future__ import annotations

import sys
import time
import traceback

import torch
import torchvision

import prunekit as pk

SIZE = {"inception_v3": 96, "vit_b_16": 224, "vit_b_32": 224, "vit_l_16": 224, "vit_l_32": 224,
        "vit_h_14": 224, "maxvit_t": 224}


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Random-init models have zero heads / unit norms: make outputs and stats non-trivial."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                if not t.is_floating_point():
                    continue
                if "var" in name or (t.dim() == 1 and name == "weight"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.dim() == 1 or not bool(t.any()):
                    t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return model


def one(name: str, ratio: float = 0.5, scope: str = "local") -> str:
    torch.manual_seed(0)
    kw = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    m = randomize(torchvision.models.get_model(name, weights=None, **kw)).eval()
    s = SIZE.get(name, 64)
    x = torch.randn(1, 3, s, s)
    t = time.perf_counter()
    plan = pk.plan_structured(m, x, ratio=ratio, scope=scope)
    pruned = plan.apply(copy=True)
    dt = time.perf_counter() - t
    r = pk.verify(m, plan, pruned=pruned)
    n0 = sum(p.numel() for p in m.parameters())
    n1 = sum(p.numel() for p in pruned.parameters())
    fixed = {w.split(":")[-1].strip() for _, _, w in plan.fixed if "model output" not in w}
    return (f"{name}: groups={len(plan.groups)} params {n1 / n0:.3f} verify={r.max_abs_diff:.2e} (|ref|max {r.max_abs_ref:.2e}) "
            f"{'OK' if r.ok else 'FAIL'} t={dt:.1f}s fixed_reasons={sorted(fixed)[:4]}")


if __name__ == "__main__":
    names = sys.argv[1:] or torchvision.models.list_models(module=torchvision.models)
    for n in names:
        try:
            print(one(n), flush=True)
        except Exception as e:  # report and continue
            print(f"{n}: ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)
            traceback.print_exc(limit=3, file=sys.stderr)
