"""The planner's value trial: a pruned copy must compute what the masked reference computes.

:func:`values_match` compares a pruned trial copy with the dense model whose removed channels
are zeroed where they are consumed (:mod:`prunekit.structural.verify`), on the example inputs
and on perturbed copies of them; :func:`localize` finds, by bisection over the pruned groups,
the groups whose pruning alone breaks that equality, so the planner can freeze them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.handlers.base import PruneError
from prunekit.structural.apply import trial
from prunekit.structural.verify import compare, compare_fp64, runs

_TRIAL_ATOL, _TRIAL_RTOL = 1e-5, 1e-4
_CLEAR_RTOL = 1e-6  # below this (relative to the outputs) fp32 rounding explains a difference
_FP64_MAX_PARAMS = 50_000_000  # larger models: the fp32 comparison decides alone


def values_match(plan: Any, pruned: nn.Module) -> bool:
    """Values, not only shapes: the pruned copy against the masked dense model on the example
    inputs and on perturbed copies of them (a channel that happens to be zero on the example
    would hide a wrong model), in fp32, and in float64 when the fp32 difference is small but
    not clearly rounding (a size read as a number that scales the outputs by a few per mille
    must not pass). The inputs go through as one batch when they can (one masked and one
    pruned forward instead of three of each); copies the model cannot run are skipped."""
    inputs = [plan.example_inputs]
    if sum(p.numel() for p in plan.model.parameters()) <= _FP64_MAX_PARAMS:
        for sign in (1.0, -1.0):  # negated inputs flip which ReLUs are dead
            other = _perturbed(plan.example_inputs, sign)
            if other is not None:
                inputs.append(other)
    if len(inputs) > 1 and (both := _batched(inputs)) is not None:
        verdict = _match_on(plan, pruned, both)
        if verdict is not None:
            return verdict
    return all(_match_on(plan, pruned, x) is not False for x in inputs)


def _match_on(plan: Any, pruned: nn.Module, x: Any) -> bool | None:
    """Whether pruned == masked reference on ``x``; ``None`` when the dense model itself
    cannot run ``x`` (a perturbed or batched copy it does not accept)."""
    try:
        res = compare(plan.model, plan, pruned, x, _TRIAL_ATOL, _TRIAL_RTOL, share=True)
        if not res.ok:
            return False
        if res.max_abs_diff <= _CLEAR_RTOL * max(res.max_abs_ref, 1.0):
            return True
        if sum(p.numel() for p in plan.model.parameters()) > _FP64_MAX_PARAMS:
            return True
        return compare_fp64(plan.model, plan, pruned, x).ok
    except Exception:  # the reference itself cannot be built: not proven right
        return None if x is not plan.example_inputs and not runs(plan.model, x) else False


def _batched(xs: list[Any]) -> Any:
    """The inputs concatenated along dim 0 (every tensor; other values taken from the first);
    ``None`` when their structures or non-batch shapes differ."""

    def cat(vals: list[Any]) -> Any:
        v0 = vals[0]
        if isinstance(v0, Tensor):
            if v0.dim() == 0:
                raise ValueError("a 0-dim tensor has no batch dim")
            return torch.cat(vals, 0)
        if isinstance(v0, (tuple, list)):
            if any(len(v) != len(v0) for v in vals):
                raise ValueError("structures differ")
            return type(v0)(cat([v[i] for v in vals]) for i in range(len(v0)))
        if isinstance(v0, dict) and type(v0) is dict:
            return {k: cat([v[k] for v in vals]) for k in v0}
        return v0

    try:
        return cat(xs)
    except (ValueError, RuntimeError, TypeError, KeyError, IndexError):
        return None


def _perturbed(x: Any, sign: float = 1.0) -> Any:
    """``sign`` times the floating tensors, plus seeded noise of their own scale; ``None`` if
    there are none."""
    gen = torch.Generator().manual_seed(1234)
    found = []

    def walk(v: Any) -> Any:
        if isinstance(v, Tensor) and v.is_floating_point() and v.numel():
            found.append(v)
            noise = torch.randn(v.shape, generator=gen, dtype=v.dtype).to(v.device)
            return sign * v + noise * (v.detach().float().std().nan_to_num(1.0).item() + 1e-3)
        if isinstance(v, (tuple, list)):
            return type(v)(walk(a) for a in v)
        if isinstance(v, dict) and type(v) is dict:
            return {k: walk(a) for k, a in v.items()}
        return v

    out = walk(x)
    return out if found else None


def localize(plan: Any) -> list[str]:
    """Names to freeze: the groups (or modules' internal groups) whose pruning *alone* gives
    values other than the masked reference, found by bisection over the pruned groups."""
    only = plan._only  # type: ignore[attr-defined]

    def bad(cands: list) -> bool:
        sub = only(cands)
        if not sub.edits:
            return False
        try:
            return not values_match(sub, trial(sub))
        except PruneError:
            return True

    def search(cands: list) -> list:
        if not bad(cands):
            return []
        if len(cands) == 1:
            return cands
        half = len(cands) // 2
        found = search(cands[:half]) + search(cands[half:])
        return found or cands  # only the combination fails: freeze all of it

    found = search(list(plan._candidates))  # type: ignore[attr-defined]
    return [n for c in found for n in plan._names(c)]  # type: ignore[attr-defined]
