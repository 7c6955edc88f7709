"""Run one fuzz case: plan, apply, compare with the independent masked reference, verify."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import torch
from fuzz_models import FuzzNet, inputs
from masked_reference import zero_reference

from prunekit.graph.rules import flat_tensors
from prunekit.handlers.base import PruneError
from prunekit.structural.plan import plan_structured
from prunekit.structural.verify import verify


@dataclass
class Outcome:
    seed: int
    status: str  # pruned | refused | wrong
    verify: str = "ok"  # ok | crash | false_alarm | missed
    reasons: list[str] = field(default_factory=list)
    detail: str = ""


def _flat(out):
    if isinstance(out, dict):
        out = list(out.values())
    return [t for t in flat_tensors(out) if t.is_floating_point()]


def _same(a, b) -> tuple[bool, float]:
    fa, fb = _flat(a), _flat(b)
    if len(fa) != len(fb) or any(x.shape != y.shape for x, y in zip(fa, fb, strict=True)):
        return False, float("inf")
    diff = max((float((x - y).abs().max()) for x, y in zip(fa, fb, strict=True)), default=0.0)
    scale = max((float(x.abs().max()) for x in fa), default=0.0)
    return diff <= 1e-9 * max(scale, 1.0), diff  # float64: rounding is ~1e-15


def reason_key(why: str) -> str:
    """A short key for a reason (the op or the kind of constraint, not where it happened)."""
    for key in ("size is read", "masked reference", "model output", "argument whose channels",
                "excluded", "sizes fixed", "state of", "label rule", "cannot be pruned",
                "several axes", "called more than once", "is a grouped conv",
                "a pruned trial failed"):
        if key in why:
            return key
    if why.startswith("aten."):
        return why.split(" at ")[0]  # an op the labels cannot follow, e.g. aten.roll.default
    return why.split(":")[0][:40]


def setting(seed: int) -> dict:
    """The pruning setting of a seed: ratio 0.3/0.5/0.7, local or global scope, L1/L2/random."""
    rng = random.Random(seed * 7919 + 1)
    return {"ratio": rng.choice([0.3, 0.5, 0.7]), "scope": rng.choice(["local", "global"]),
            "criterion": rng.choice(["l1", "l2", "random"])}


def run_case(seed: int) -> Outcome:
    torch.manual_seed(seed)
    model = FuzzNet(seed).eval()
    x = inputs(seed)
    try:
        plan = plan_structured(model, x, **setting(seed))
    except PruneError as err:
        return Outcome(seed, "refused", reasons=["whole plan: " + str(err)[:60]])
    reasons = sorted({reason_key(w) for _, _, w in plan.fixed
                      if "model output" not in w})
    if not plan.edits:
        return Outcome(seed, "refused", reasons=reasons)
    pruned = plan.apply(copy=True)
    ref = zero_reference(copy.deepcopy(model).double(), plan)
    small = copy.deepcopy(pruned).double()
    with torch.no_grad():
        checks = [_same(ref(*inp), small(*inp))
                  for inp in ([t.double() for t in x], [t.double() for t in inputs(seed + 10_000)])]
    good = all(ok for ok, _ in checks)
    out = Outcome(seed, "pruned" if good else "wrong", reasons=reasons,
                  detail="" if good else f"max diff {max(d for _, d in checks):.3g}")
    try:
        res = verify(model, plan, pruned=pruned, rtol=1e-3)
        if good and not res.ok:
            out.verify, out.detail = "false_alarm", f"verify diff {res.max_abs_diff:.3g}"
        elif not good and res.ok:
            out.verify = "missed"
    except Exception as err:  # noqa: BLE001 - counted, reported
        out.verify, out.detail = "crash", f"{type(err).__name__}: {str(err)[:120]}"
    return out
