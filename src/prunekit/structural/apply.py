"""Transactional application of a StructuredPlan.

1. validate every edit against the live model (handler present, sizes as planned, indices in
   range, non-empty);
2. snapshot the ``__dict__`` (parameters, buffers, attributes, children) of every module that
   will change, with its lists/dicts/sets copied one level deeper (``RNNBase`` keeps its
   weights in a ``_flat_weights`` list that ``__setattr__`` edits in place) — handlers always
   assign new tensors, never edit a tensor in place, so this snapshot restores the original;
3. mutate through the handlers;
4. run the example inputs through the pruned model and compare the output shapes;
5. on any failure restore the snapshots and raise :class:`PruneError` naming module and op.
"""

from __future__ import annotations

import copy as _copy
from typing import Any

import torch
from torch import nn

from prunekit.call import call_model, no_kv_cache
from prunekit.graph.rules import flat_tensors
from prunekit.handlers.base import PruneError, get_handler, slice_param
from prunekit.structural.attrs import sync_model_attributes, undo_attributes
from prunekit.graph.ragged import same_shapes
from prunekit.graph.modes import containers_training


def _snapshot(mods: list[nn.Module]) -> list[tuple[nn.Module, dict, type]]:
    snaps = []
    for root in mods:
        for m in root.modules():
            d = dict(m.__dict__)
            for key, v in d.items():  # containers one level deeper: RNNBase.__setattr__ writes
                if type(v) in (list, dict, set) or key in ("_parameters", "_buffers", "_modules"):
                    d[key] = _copy.copy(v)  # into the existing ``_flat_weights`` list
            snaps.append((m, d, type(m)))  # handlers may swap the class (pruned attention)
    return snaps


def _restore(snaps: list[tuple[nn.Module, dict, type]]) -> None:
    for m, d, cls in reversed(snaps):
        m.__dict__.clear()
        m.__dict__.update(d)
        if type(m) is not cls:
            m.__class__ = cls


def _validate(plan, modules: dict[str, nn.Module]) -> None:
    for e in plan.edits:
        m = modules.get(e.name)
        if m is None:
            raise PruneError(f"{e.name}: module not found in the model being pruned")
        h = get_handler(m)
        if h is None:
            raise PruneError(f"{e.name} ({type(m).__name__}): no handler registered")
        for side, full, keep, cur in (("in", e.in_full, e.keep_in, h.in_channels(m)),
                                      ("out", e.out_full, e.keep_out, h.out_channels(m))):
            if keep is None:
                continue
            if cur != full:
                raise PruneError(f"{e.name}.{side}: has {cur} channels, the plan was made for "
                                 f"{full} (model changed since planning?)")
            if len(keep) == 0 or int(keep.min()) < 0 or int(keep.max()) >= full:
                raise PruneError(f"{e.name}.{side}: kept indices empty or out of range")
    for p in plan.param_edits:
        owner = modules.get(p.owner) if p.owner else plan_root(modules)
        t = getattr(owner, p.attr, None) if owner is not None else None
        if t is None or t.dim() <= p.axis or t.shape[p.axis] != p.full:
            raise PruneError(f"parameter {p.owner}.{p.attr}: missing or not of the planned size")


def plan_root(modules: dict[str, nn.Module]) -> nn.Module:
    return modules[""]


def _mutate(plan, modules: dict[str, nn.Module]) -> None:
    for e in plan.edits:
        m = modules[e.name]
        h = get_handler(m)
        op = "?"
        try:
            for name, keep in e.internal.items():
                op = f"internal group {name}"
                groups = {g.name: g for g in h.internal_groups(m)}
                groups[name].prune(keep)
            if e.coupled:
                op = "prune_out (coupled)"
                h.prune_out(m, e.keep_out)
                continue
            if e.keep_out is not None:
                op = "prune_out"
                h.prune_out(m, e.keep_out)
            if e.keep_in is not None:
                op = "prune_in"
                h.prune_in(m, e.keep_in)
        except PruneError as err:
            raise PruneError(f"{e.name} ({type(m).__name__}) {op}: {err}") from err
        except Exception as err:
            raise PruneError(f"{e.name} ({type(m).__name__}) {op} failed: "
                             f"{type(err).__name__}: {err}") from err
    for p in plan.param_edits:
        owner = modules[p.owner]
        try:
            slice_param(owner, p.attr, p.axis, p.keep)
        except Exception as err:
            raise PruneError(f"parameter {p.owner}.{p.attr} slice failed: {err}") from err


def _run_named(plan, model: nn.Module, what: str) -> list[tuple[int, ...]]:
    """Run the example inputs; a failure names the innermost module that was running."""
    stack: list[str] = []
    handles = []
    for name, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(lambda mod, a, n=name: stack.append(n)))
        handles.append(m.register_forward_hook(lambda mod, a, o: _pop(stack)))
    try:
        with torch.no_grad(), no_kv_cache(model):
            out = call_model(model, plan.example_inputs)
    except Exception as err:
        where = stack[-1] if stack else "<model>"
        raise PruneError(f"pruned model fails{what} in module {where!r}: "
                         f"{type(err).__name__}: {err}", module=where if stack else "") from err
    finally:
        for hd in handles:
            hd.remove()
    if hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    return [tuple(t.shape) for t in flat_tensors(out)]


def _check_forward(plan, model: nn.Module) -> None:
    """Run the pruned model; outputs must keep their number, ranks and every size that does
    not depend on data (:mod:`prunekit.graph.ragged`: e.g. the number of detections)."""

    was = model.training
    model.eval()
    try:
        shapes = _run_named(plan, model, "")
    finally:
        model.train(was)
    ragged = getattr(plan, "output_ragged", None)
    if plan.output_shapes and not same_shapes(shapes, plan.output_shapes, ragged):
        raise PruneError(f"pruned model output shapes {shapes} differ from {plan.output_shapes}"
                         + _ragged_note(ragged))
    expected = getattr(plan, "train_output_shapes", None)
    if expected:  # training-only branches (auxiliary heads) were traced: they must run too

        with containers_training(model):
            shapes = _run_named(plan, model, " in training mode")
        ragged = getattr(plan, "train_output_ragged", None)
        if not same_shapes(shapes, expected, ragged):
            raise PruneError(f"pruned model output shapes in training mode {shapes} differ "
                             f"from {expected}" + _ragged_note(ragged))


def _ragged_note(ragged: list[tuple[int, ...]] | None) -> str:
    if not ragged or not any(ragged):
        return ""
    return f" (data-dependent dims per output, not compared: {ragged})"


def _pop(stack: list[str]) -> None:
    if stack:
        stack.pop()


def shared_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that *shares* its parameters (buffers and everything else are
    copied).

    Pruning it is safe for the original: handlers never edit a tensor in place, they assign
    new, smaller ones to the copy's modules. Its cost is the pruned tensors alone, which
    :func:`apply_plan` needs anyway, so a trial never holds a second full copy of the model.
    """
    memo: dict[int, Any] = {id(p): p for p in model.parameters()}
    return _copy.deepcopy(model, memo)


def trial(plan) -> nn.Module:
    """Apply ``plan`` to a throw-away :func:`shared_copy` and run the example inputs through it.

    Returns:
        The pruned copy (its unpruned tensors are the model's own: read it, never train it).

    Raises:
        PruneError: the pruned copy fails (naming the module) or changes the output shapes.
    """
    return apply_plan(plan, validate=True, model=shared_copy(plan.model))


def apply_plan(plan, copy: bool = False, validate: bool = True, model: Any = None) -> nn.Module:
    """Apply ``plan`` (see :meth:`StructuredPlan.apply`)."""
    target = model if model is not None else plan.model
    if copy:
        target = _copy.deepcopy(target)
    modules = dict(target.named_modules())
    _validate(plan, modules)
    touched = [modules[e.name] for e in plan.edits] + [modules[p.owner] for p in plan.param_edits]
    snaps = _snapshot(touched)
    undo: list = []
    try:
        _mutate(plan, modules)
        undo = sync_model_attributes(target)
        if validate:
            _check_forward(plan, target)
    except BaseException:
        _restore(snaps)
        undo_attributes(undo)
        raise
    return target
