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

from prunekit.call import call_model, is_kv_cache, no_kv_cache
from prunekit.graph.rules import flat_tensors
from prunekit.handlers.base import get_handler
from prunekit.structural.apply import apply_plan


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


def _masker():
    """``mask(x, dim, keep)``: ``x`` with the channels not in ``keep`` zeroed along ``dim``;
    each 0/1 vector is built once (kept alive with its ``keep`` tensor, so the ``id`` key
    stays valid)."""
    cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def mask(x: Tensor, dim: int, keep: Tensor) -> Tensor:
        key = (id(keep), x.shape[dim], x.dtype, x.device)
        hit = cache.get(key)
        if hit is None:
            m = torch.zeros(x.shape[dim], dtype=x.dtype, device=x.device)
            m[keep.to(x.device)] = 1
            hit = cache[key] = (m, keep)
        shape = [1] * x.dim()
        shape[dim] = -1
        return x * hit[0].view(shape)
    return mask


def _replace(obj: Any, table: dict[int, Tensor]) -> Any:
    """``obj`` with every tensor whose id is in ``table`` replaced (tuples, lists, dicts)."""
    if isinstance(obj, Tensor):
        return table.get(id(obj), obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_replace(v, table) for v in obj)
    if isinstance(obj, dict) and type(obj) is dict:
        return {k: _replace(v, table) for k, v in obj.items()}
    return obj


def _unit_keep(h, m: nn.Module, e) -> Tensor | None:
    """Kept units of the state inputs (one copy of the output space)."""
    if e.keep_out is None:
        return None
    rep = int(h.out_repeats(m))
    size = e.out_full // rep
    return e.keep_out[e.keep_out < size]


def _input_table(h, m: nn.Module, e, args: tuple, kwargs: dict, op) -> dict[int, Tensor]:
    table: dict[int, Tensor] = {}
    if e.keep_in is not None:
        for t, d in h.in_tensors(m, args, kwargs):
            table[id(t)] = op(t, d, e.keep_in)
    units = _unit_keep(h, m, e)
    if units is not None:
        for t, d in h.state_tensors(m, args, kwargs):
            table[id(t)] = op(t, d, units)
    return table


def _narrow(x: Tensor, dim: int, keep: Tensor) -> Tensor:
    return x.index_select(dim, keep.to(x.device))


def _install(masked: nn.Module, pruned: nn.Module, plan) -> list:
    mods, small = dict(masked.named_modules()), dict(pruned.named_modules())
    handles = []
    mask = _masker()
    for e in plan.edits:
        m = mods[e.name]
        h = get_handler(m)
        if e.exact and not e.internal:
            def pre(mod, args, kwargs, e=e, h=h):
                table = _input_table(h, mod, e, args, kwargs, mask)
                return (_replace(args, table), _replace(kwargs, table)) if table else None

            def post(mod, args, out, e=e, h=h):
                if e.keep_out is None:
                    return None
                table = {id(t): mask(t, d, e.keep_out)
                         for t, d in h.out_tensors(mod, out)}
                return _replace(out, table)
            handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(m.register_forward_hook(post))
            continue

        def pre_in(mod, args, kwargs, e=e, h=h):  # the dense module sees masked inputs
            table = _input_table(h, mod, e, args, kwargs, mask)
            return (_replace(args, table), _replace(kwargs, table)) if table else None

        def replace(mod, args, kwargs, out, e=e, h=h, sm=small[e.name]):
            args, kwargs = _select_inputs(h, mod, args, kwargs, e)
            y = sm(*args, **kwargs)
            return _scatter(h, mod, sm, out, y, e)
        handles.append(m.register_forward_pre_hook(pre_in, with_kwargs=True))
        handles.append(m.register_forward_hook(replace, with_kwargs=True))
    return handles


def _select_inputs(h, m: nn.Module, args: tuple, kwargs: dict, e) -> tuple[tuple, dict]:
    """Keep only the kept channels of every argument that carries them (the handler's
    ``in_tensors`` and ``state_tensors``, by position or keyword, as in cross-attention
    ``mha(q, kv, kv)`` or an RNN's ``h0``). A KV cache is not passed on: the dense module has
    already written this step into it."""
    kwargs = {k: (None if is_kv_cache(k, v) else v) for k, v in kwargs.items()}
    table = _input_table(h, m, e, args, kwargs, _narrow)
    return _replace(args, table), _replace(kwargs, table)


def _scatter(h, m: nn.Module, sm: nn.Module, out: Any, y: Any, e) -> Any:
    """Put the pruned module's outputs back at the kept positions of the dense ones."""
    table: dict[int, Tensor] = {}
    dense = h.out_tensors(m, out)
    chan = {id(t) for t, _ in dense}
    if e.keep_out is not None:
        small = h.out_tensors(sm, y)
        for (t, d), (v, _) in zip(dense, small, strict=False):
            if t.shape != v.shape and t.shape[d] == e.out_full:
                table[id(t)] = torch.zeros_like(t).index_copy(d, e.keep_out.to(t.device), v)
    return _scatter_rest(out, y, e, table, chan)


def _scatter_rest(out: Any, y: Any, e, table: dict[int, Tensor], chan: set[int]) -> Any:
    if isinstance(out, (tuple, list)) and isinstance(y, (tuple, list)) and len(out) == len(y):
        return type(out)(_scatter_rest(o, v, e, table, chan) for o, v in zip(out, y, strict=True))
    if isinstance(out, Tensor) and id(out) in table:
        return table[id(out)]
    if (isinstance(out, Tensor) and isinstance(y, Tensor) and out.shape == y.shape
            and e.internal and id(out) not in chan):
        return out  # e.g. attention weights averaged over heads: removing heads changes them
    if not isinstance(out, Tensor) or not isinstance(y, Tensor) or out.shape == y.shape:
        return y
    if out.dim() != y.dim() or e.keep_out is None:
        return y
    d = next((i for i in range(out.dim()) if out.shape[i] != y.shape[i]), -1)
    keep = e.keep_out[e.keep_out < out.shape[d]]  # e.g. an RNN's h_n: one direction's units
    if keep.numel() != y.shape[d]:
        return y
    return torch.zeros_like(out).index_copy(d, keep.to(out.device), y)


def _outputs(out: Any) -> list[Tensor]:
    if hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    return [t for t in flat_tensors(out) if t.is_floating_point()]


def _run(model: nn.Module, x: Any, what: str) -> list[Tensor]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), no_kv_cache(model):
            return _outputs(call_model(model, x))
    finally:
        model.train(was)


def runs(model: nn.Module, x: Any) -> bool:
    """Whether ``model`` runs on ``x`` (eval mode, no grad)."""
    try:
        _run(model, x, "dense")
        return True
    except Exception:
        return False


def compare(model: nn.Module, plan, pruned: nn.Module, x: Any, atol: float = 1e-4,
            rtol: float = 1e-4, share: bool = False) -> VerifyResult:
    """Masked reference of ``model`` vs ``pruned`` on ``x``: every floating output compared.

    ``share``: run the reference on ``model`` itself, its hooks removed afterwards (the
    planner's trial does: a forward in eval mode without grad, as the trace runs, and no copy
    of the module tree to pay for). Otherwise on a deep copy. Exceptions of the forward passes
    propagate.
    """
    masked = model if share else _copy.deepcopy(model)
    handles = _install(masked, pruned, plan)
    try:
        ref = _run(masked, x, "masked")
    finally:
        for h in handles:
            h.remove()
    got = _run(pruned, x, "pruned")
    if len(ref) != len(got) or any(a.shape != b.shape for a, b in zip(ref, got, strict=True)):
        return VerifyResult(False, float("inf"), atol,
                            f"output shapes differ: {[tuple(a.shape) for a in ref]} vs "
                            f"{[tuple(b.shape) for b in got]}")
    diff, worst = 0.0, ""
    for i, (a, b) in enumerate(zip(ref, got, strict=True)):
        if a.numel():
            d = float((a.float() - b.float()).abs().nan_to_num(float("inf")).max())
            if d > diff:
                diff, worst = d, f"output {i} {tuple(a.shape)}"
    scale = max((float(a.float().abs().max()) for a in ref if a.numel()), default=0.0)
    ok = diff <= atol + rtol * scale
    return VerifyResult(ok, diff, atol, "" if ok else f"largest difference at {worst}",
                        max_abs_ref=scale)


def _to_double(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.double() if x.is_floating_point() else x
    if isinstance(x, (tuple, list)):
        return type(x)(_to_double(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_double(v) for k, v in x.items()}
    return x


def compare_fp64(model: nn.Module, plan, pruned: nn.Module, x: Any) -> VerifyResult:
    """:func:`compare` on float64 copies: differences of rounding vanish (~1e-15), so a
    tolerance of 1e-9 relative separates a right model from a slightly wrong one."""
    dense64 = _copy.deepcopy(model).double()
    small64 = _copy.deepcopy(pruned).double()
    return compare(dense64, plan, small64, _to_double(x), atol=1e-9, rtol=1e-9, share=True)


def verify(model: nn.Module, plan, example_inputs: Any = None, atol: float = 1e-4,
           pruned: nn.Module | None = None, rtol: float = 0.0) -> VerifyResult:
    """Check that ``plan`` removes exactly what masking its channels removes.

    Every floating-point output is compared (tuples, dicts and HF outputs flattened, attention
    weights included); inputs are masked wherever they carry pruned channels (every argument
    the handler consumes, by position or keyword, and RNN initial states).

    Args:
        model: the dense model (not modified).
        plan: a :class:`~prunekit.structural.result.StructuredPlan` made for ``model``.
        example_inputs: inputs to compare on (default: the plan's example inputs).
        atol: maximum absolute difference allowed (fp32), plus ``rtol`` times the largest
            reference output.
        pruned: an already pruned copy to check instead of pruning a fresh copy.

    Raises:
        ValueError: ``example_inputs`` do not run through the dense model.
    """
    x = plan.example_inputs if example_inputs is None else example_inputs
    try:
        _run(model, x, "dense")
    except Exception as err:
        raise ValueError(f"verify: example_inputs do not run through the dense model "
                         f"({type(err).__name__}: {str(err)[:200]})") from err
    if pruned is None:
        pruned = apply_plan(plan, copy=True, model=model)
    return compare(model, plan, pruned, x, atol, rtol)
