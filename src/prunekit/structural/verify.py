"""Equivalence check: masking the planned channels == removing them.

The *masked* reference is a copy of the dense model in which every pruned channel is zeroed
where it is **consumed**: each module's input slices of removed channels are set to zero (and
its removed output channels too). Zeroing a conv's output is not enough on its own — a
following BatchNorm adds its bias and brings the channel back — while zeroing the consumer's
input slice is exactly what removing the channel does to that consumer. Modules whose handler
says masking is not exact (LayerNorm: statistics over the channels; modules with internal
groups such as attention heads) run their *pruned* counterpart on the kept inputs and scatter
the result back. The pruned model must then reproduce the masked model's outputs.
"""

from __future__ import annotations

import copy as _copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.calibration import call_model, is_kv_cache, no_kv_cache
from prunekit.graph.rules import flat_tensors


@dataclass
class VerifyResult:
    """``ok`` when every output matches within ``atol``; ``max_abs_diff`` over all outputs."""

    ok: bool
    max_abs_diff: float
    atol: float
    detail: str = ""
    max_abs_ref: float = 0.0  # scale of the reference outputs (a tiny scale makes ok trivial)

    def __bool__(self) -> bool:
        return self.ok


def _mask(x: Tensor, dim: int, keep: Tensor) -> Tensor:
    m = torch.zeros(x.shape[dim], dtype=x.dtype, device=x.device)
    m[keep.to(x.device)] = 1
    shape = [1] * x.dim()
    shape[dim] = -1
    return x * m.reshape(shape)


def _install(masked: nn.Module, pruned: nn.Module, plan) -> list:
    mods, small = dict(masked.named_modules()), dict(pruned.named_modules())
    handles = []
    for e in plan.edits:
        m = mods[e.name]
        if e.exact and not e.internal:
            if e.keep_in is not None:
                def pre(mod, args, e=e):
                    if args and isinstance(args[0], Tensor):
                        return (_mask(args[0], e.in_dim, e.keep_in),) + tuple(args[1:])
                    return None
                handles.append(m.register_forward_pre_hook(pre))
            if e.keep_out is not None:
                def post(mod, args, out, e=e):
                    return _mask(out, e.out_dim, e.keep_out) if isinstance(out, Tensor) else out
                handles.append(m.register_forward_hook(post))
            continue

        def replace(mod, args, kwargs, out, e=e, sm=small[e.name]):
            args, kwargs = _select_inputs(args, kwargs, e)
            return _scatter(out, sm(*args, **kwargs), e)
        handles.append(m.register_forward_hook(replace, with_kwargs=True))
    return handles


_is_cache = is_kv_cache


def _select_inputs(args: tuple, kwargs: dict, e) -> tuple[tuple, dict]:
    """Keep only ``e.keep_in`` of the channel-carrying input (first arg or ``hidden_states``,
    and every other argument that is the same tensor, as in ``mha(x, x, x)``). A KV cache is
    not passed on: the dense module has already written this step into it."""
    kwargs = {k: (None if _is_cache(k, v) else v) for k, v in kwargs.items()}
    if e.keep_in is None:
        return args, kwargs
    if args and isinstance(args[0], Tensor):
        x = args[0]
    else:
        key = "hidden_states" if "hidden_states" in kwargs else next(
            k for k, v in kwargs.items() if isinstance(v, Tensor))
        x = kwargs[key]
    small = x.index_select(e.in_dim, e.keep_in.to(x.device))
    args = tuple(small if a is x else a for a in args)
    kwargs = {k: (small if v is x else v) for k, v in kwargs.items()}
    return args, kwargs


def _scatter(out: Any, y: Any, e) -> Any:
    """Put the pruned module's outputs back at the kept positions of the dense ones."""
    if isinstance(out, (tuple, list)) and isinstance(y, (tuple, list)) and len(out) == len(y):
        return type(out)(_scatter(o, v, e) for o, v in zip(out, y))
    if not isinstance(out, Tensor) or not isinstance(y, Tensor) or out.shape == y.shape:
        return y
    d = e.out_dim if out.dim() == y.dim() and out.shape[e.out_dim] != y.shape[e.out_dim] else -1
    keep = e.keep_out if e.keep_out is not None else torch.arange(out.shape[d])
    keep = keep[keep < out.shape[d]]  # e.g. an RNN's h_n holds one direction's units
    if keep.numel() != y.shape[d]:
        return y
    return torch.zeros_like(out).index_copy(d, keep.to(out.device), y)


def _outputs(out: Any) -> list[Tensor]:
    if hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    return [t for t in flat_tensors(out) if t.is_floating_point()]


def verify(model: nn.Module, plan, example_inputs: Any = None, atol: float = 1e-4,
           pruned: nn.Module | None = None) -> VerifyResult:
    """Check that ``plan`` removes exactly what masking its channels removes.

    Args:
        model: the dense model (not modified).
        plan: a :class:`~prunekit.structural.result.StructuredPlan` made for ``model``.
        example_inputs: inputs to compare on (default: the plan's example inputs).
        atol: maximum absolute difference allowed (fp32).
        pruned: an already pruned copy to check instead of pruning a fresh copy.
    """
    from prunekit.structural.apply import apply_plan

    x = plan.example_inputs if example_inputs is None else example_inputs
    if pruned is None:
        pruned = apply_plan(plan, copy=True, model=model)
    masked = _copy.deepcopy(model)
    handles = _install(masked, pruned, plan)
    modes = (masked.training, pruned.training)
    masked.eval()
    pruned.eval()
    try:
        with torch.no_grad(), no_kv_cache(masked), no_kv_cache(pruned):
            ref = _outputs(call_model(masked, x))
            got = _outputs(call_model(pruned, x))
    finally:
        for h in handles:
            h.remove()
        masked.train(modes[0])
        pruned.train(modes[1])
    if len(ref) != len(got) or any(a.shape != b.shape for a, b in zip(ref, got)):
        return VerifyResult(False, float("inf"), atol,
                            f"output shapes differ: {[tuple(a.shape) for a in ref]} vs "
                            f"{[tuple(b.shape) for b in got]}")
    diff = max((float((a.float() - b.float()).abs().max()) for a, b in zip(ref, got)
                if a.numel()), default=0.0)
    scale = max((float(a.float().abs().max()) for a in ref if a.numel()), default=0.0)
    return VerifyResult(diff <= atol, diff, atol, max_abs_ref=scale)
