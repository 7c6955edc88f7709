"""Trace one eager forward pass into channel-coupling records.

Why eager tracing with module hooks + ``TorchDispatchMode`` (and not torch.fx / torch.export /
the autograd graph):

* it runs the model exactly as the user does — data-dependent Python control flow, HF models
  with dict outputs and ``use_cache``, ``**kwargs`` forwards — where ``torch.fx`` symbolic
  tracing and ``torch.export`` often refuse (dynamic control flow, non-tensor outputs) and the
  autograd graph misses ops that do not need grad (integer / no-grad paths);
* modules with a registered handler are leaves: their forward hooks say which channel dims they
  consume and produce, and what happens inside them is not traced, so a handler fully owns its
  module's semantics (attention heads, LSTM gates, user layers);
* between leaves, every ATen op is seen by a dispatch mode in canonical form (a few hundred
  ATen ops instead of thousands of Python-level aliases) and tensors are matched by identity
  (weak references, so ids are never reused).

Channel labels (:mod:`prunekit.graph.labels`) follow each op by :mod:`prunekit.graph.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from prunekit.call import call_model, no_kv_cache
from prunekit.graph.labels import Coupling, canon, fiber
from prunekit.graph.modes import containers_training, find_leaves
from prunekit.graph.ragged import RaggedTracker
from prunekit.graph.rules import flat_tensors, rule_for
from prunekit.graph.sizes import SizeReads
from prunekit.handlers.base import get_handler


@dataclass
class LeafRecord:
    """One handled module as seen by the trace (aggregated over its calls)."""

    name: str
    module: nn.Module
    handler: Any
    in_labels: Tensor | None = None  # (in_channels,) channel ids feeding each input position
    out_ids: Tensor | None = None  # (out_channels,) ids of the produced channels
    coupled: bool = False
    grouped: int = 1
    calls: int = 0
    positions: int = 0  # output elements per channel, summed over calls (for MACs)
    external: str | None = None  # why its parameters were touched outside its forward
    in_dim: int = 1
    out_dim: int = 1


@dataclass
class FreeParam:
    """A parameter/buffer used by traced ops outside any handled module (layer scale, ...)."""

    name: str
    owner: nn.Module
    attr: str
    tensor: Tensor
    ids: Tensor  # same shape as tensor


@dataclass
class TraceResult:
    uf: Coupling
    leaves: dict[str, LeafRecord]
    free: list[FreeParam]
    outputs: Any
    sized: dict[str, list[Tensor]] = field(default_factory=dict)
    train_outputs: Any = None  # outputs of the containers-in-training-mode pass, if one ran
    ragged: list[tuple[int, ...]] = field(default_factory=list)  # data-dependent output dims
    train_ragged: list[tuple[int, ...]] = field(default_factory=list)


class _Mode(TorchDispatchMode):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.tracer.ragged.observe(func, args, kwargs, out)
        if self.tracer.depth == 0:
            self.tracer.on_op(func, args, kwargs, out)
        return out


class Tracer:
    """Runs the model once and records channel coupling (see module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.uf = Coupling()
        self.labels: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.depth = 0
        self.stack: list[str] = []
        self.leaves = {n: LeafRecord(n, m, get_handler(m)) for n, m in find_leaves(model).items()}
        self.free: dict[int, FreeParam] = {}
        self._owned: dict[int, str] = {}
        self._free_src: dict[int, tuple[str, nn.Module, str, Tensor]] = {}
        self.sized: dict[str, list[Tensor]] = {}
        self.ragged = RaggedTracker()
        self.count_only: set[str] | None = None  # second pass: count MACs of these leaves only
        self._index()

    # ---------------------------------------------------------------- bookkeeping
    def _index(self) -> None:
        leaf_mods = {id(r.module): n for n, r in self.leaves.items()}
        owner_of: dict[int, str] = {}
        for n, r in self.leaves.items():
            for p in list(r.module.parameters()) + list(r.module.buffers()):
                if id(p) in owner_of and owner_of[id(p)] != n:
                    r.external = f"shares parameters with {owner_of[id(p)]}"
                    self.leaves[owner_of[id(p)]].external = f"shares parameters with {n}"
                owner_of[id(p)] = n
        self._owned = owner_of
        for mname, m in self.model.named_modules():
            if id(m) in leaf_mods:
                continue
            for attr, t in list(m._parameters.items()) + list(m._buffers.items()):
                if t is None or id(t) in owner_of or not t.is_floating_point():
                    continue
                self._free_src.setdefault(id(t), (f"{mname}.{attr}".lstrip("."), m, attr, t))

    def where(self) -> str:
        return self.stack[-1] if self.stack else "<model>"

    def note_sized(self, label: Tensor) -> None:
        """Remember labels reshaped/split here (fixed if a pruned trial fails in this module)."""
        self.sized.setdefault(self.where(), []).append(label)

    def why(self, func: Any, what: str) -> str:
        return f"{func} at {self.where() or '<model>'}: {what}"

    def get(self, t: Tensor) -> Tensor | None:
        lab = self.labels.get(t)
        if lab is not None:
            return lab
        key = id(t)
        if key in self._free_src and self._free_src[key][3] is t:
            name, owner, attr, _ = self._free_src.pop(key)
            ids = self.uf.new(t.numel()).reshape(t.shape)
            self.free[key] = FreeParam(name, owner, attr, t, ids)
            self.labels[t] = ids
            return ids
        if key in self._owned and self.depth == 0:
            rec = self.leaves[self._owned[key]]
            if rec.external is None:
                rec.external = f"its parameters are used outside its forward at {self.where()}"
        return None

    def set(self, t: Tensor, label: Tensor | None) -> None:
        if label is None:
            self.labels.pop(t, None)
        else:
            while label.dim() < t.dim():
                label = label.unsqueeze(0)
            self.labels[t] = label

    # ---------------------------------------------------------------- ops between leaves
    def on_op(self, func, args, kwargs, out) -> None:
        tensors = flat_tensors(args) + flat_tensors(kwargs)
        if not any(self.get(t) is not None for t in tensors):
            for o in flat_tensors(out):
                if not any(o is t for t in tensors):
                    self.labels.pop(o, None)
            return
        try:
            rule_for(func)(self, func, args, kwargs, out)
        except Exception as e:  # a rule bug must not give a wrong model: be conservative
            why = self.why(func, f"label rule failed ({type(e).__name__}: {e})")
            for t in tensors:
                self.uf.fix(self.get(t), why)
            for o in flat_tensors(out):
                self.labels.pop(o, None)

    # ---------------------------------------------------------------- leaves
    def leaf_in(self, rec: LeafRecord, args: tuple, kwargs: dict) -> None:
        m, h = rec.module, rec.handler
        cin = h.in_channels(m)
        for t, dim in h.in_tensors(m, args, kwargs):
            lab = self.get(t)
            rec.in_dim = dim
            if cin is None or t.shape[dim] != cin:
                self.uf.fix(lab, f"consumed by {rec.name} ({type(m).__name__}), whose input "
                                 "channels cannot be pruned")
                continue
            fb = fiber(lab, tuple(t.shape), dim, cin)  # (cin, rest)
            vec = fb[:, 0].clone()
            if fb.shape[1] > 1:
                self.uf.union_pairs(fb, vec[:, None], f"read as one input channel by {rec.name}")
            if rec.in_labels is None:
                rec.in_labels = vec
            else:
                self.uf.union_pairs(rec.in_labels, vec, f"{rec.name} called more than once")
        g = h.in_granularity(m) if cin else 1
        if rec.in_labels is not None and g > 1:
            for block in rec.in_labels.reshape(-1, g):
                self.uf.union_all(block, f"{rec.name} removes input channels in blocks of {g}")
        consumed = {id(t) for t, _ in h.in_tensors(m, args, kwargs)} | self._states_in(rec, args, kwargs)
        for t in flat_tensors(args) + flat_tensors(kwargs):
            if id(t) not in consumed:  # an argument whose channels the handler does not prune
                self.uf.fix(self.get(t), f"passed to {rec.name} ({type(m).__name__}) as an "
                                         "argument whose channels it cannot prune")
        self.depth += 1

    def _states_in(self, rec: LeafRecord, args: tuple, kwargs: dict) -> set[int]:
        """Couple state inputs (an RNN's ``h0``) to the module's output units."""
        m, h = rec.module, rec.handler
        states = h.state_tensors(m, args, kwargs)
        cout = h.out_channels(m)
        if not states or not cout:
            return set()
        if rec.out_ids is None:
            rec.out_ids = self.uf.new(cout)
        units = rec.out_ids[: cout // int(h.out_repeats(m))]
        for t, dim in states:
            if t.shape[dim] != units.numel():
                self.uf.fix(self.get(t), f"state of {rec.name} with a size other than its units")
                continue
            fb = fiber(self.get(t), tuple(t.shape), dim, units.numel())
            self.uf.union_pairs(fb, units[:, None], f"initial state of {rec.name}")
        return {id(t) for t, _ in states}

    def _out_vector(self, rec: LeafRecord, cin: int | None, cout: int) -> Tensor:
        m, h = rec.module, rec.handler
        inl = rec.in_labels if rec.in_labels is not None else torch.zeros(cin or 0, dtype=torch.long)
        rec.coupled = bool(h.in_out_coupled(m)) and cin == cout
        rec.grouped = int(h.groups(m))
        if rec.coupled:
            return inl.clone()
        if rec.grouped > 1 and cin:
            ipg, opg = cin // rec.grouped, cout // rec.grouped
            if ipg == 1:
                return inl.repeat_interleave(opg)
            vec = rec.out_ids if rec.out_ids is not None else self.uf.new(cout)
            why = f"{rec.name} is a grouped conv: whole groups are removed"
            for gi in range(rec.grouped):
                blk = torch.cat([inl[gi * ipg:(gi + 1) * ipg], vec[gi * opg:(gi + 1) * opg]])
                self.uf.union_all(blk, why)
            return vec
        vec = rec.out_ids if rec.out_ids is not None else self.uf.new(cout)
        g = h.out_granularity(m)
        if g > 1:
            for block in vec.reshape(-1, g):
                self.uf.union_all(block, f"{rec.name} removes output channels in blocks of {g}")
        rep = int(h.out_repeats(m))  # bidirectional RNN: [fwd | bwd]
        if rep > 1 and cout % rep == 0:
            parts = vec.reshape(rep, -1)
            for r in range(1, rep):
                self.uf.union_pairs(parts[0], parts[r], f"{rec.name} keeps the same units in "
                                                        "every direction")
        return vec

    def leaf_out(self, rec: LeafRecord, output: Any) -> None:
        self.depth -= 1
        m, h = rec.module, rec.handler
        for t in flat_tensors(output):
            self.labels.pop(t, None)
        cout = h.out_channels(m)
        rec.calls += 1
        if cout is None:
            return
        vec = self._out_vector(rec, h.in_channels(m), cout)
        if rec.out_ids is None:
            rec.out_ids = vec
        elif vec is not rec.out_ids:
            self.uf.union_pairs(rec.out_ids, vec, f"{rec.name} called more than once")
        for i, (t, dim) in enumerate(h.out_tensors(m, output)):
            if t.shape[dim] != cout:
                continue
            rec.out_dim = dim
            if i == 0 and (self.count_only is None or rec.name in self.count_only):
                rec.positions += h.mac_positions(m, t, dim)
            shape = [1] * t.dim()
            shape[dim] = cout
            self.labels[t] = vec.reshape(shape)


def _hooks(tracer: Tracer) -> list:
    handles = []
    leaf_ids = {id(r.module): r for r in tracer.leaves.values()}

    def push(name):
        def pre(mod, args):
            tracer.stack.append(name)
            for t in flat_tensors(args):  # a module may read sizes of its inputs (x.shape)
                lab = tracer.labels.get(t)
                if lab is not None:
                    tracer.sized.setdefault(name, []).append(lab)
        return pre

    def pop(mod, args, out):
        if tracer.stack:
            tracer.stack.pop()

    for name, m in tracer.model.named_modules():
        handles.append(m.register_forward_pre_hook(push(name)))
        handles.append(m.register_forward_hook(pop))
        rec = leaf_ids.get(id(m))
        if rec is None:
            continue
        handles.append(m.register_forward_pre_hook(
            lambda mod, a, kw, rec=rec: tracer.leaf_in(rec, a, kw), with_kwargs=True))
        handles.append(m.register_forward_hook(
            lambda mod, a, out, rec=rec: tracer.leaf_out(rec, out)))
    return handles


def fix_outputs(tracer: Tracer, out: Any) -> list[str]:
    """Channels that reach the model's outputs keep their meaning: fix them."""
    seen = []
    if hasattr(out, "to_tuple") and callable(out.to_tuple):
        out = out.to_tuple()
    for t in flat_tensors(out):
        lab = tracer.get(t)
        if lab is not None:
            tracer.uf.fix(canon(lab), "reaches the model output")
            seen.append(str(tuple(t.shape)))
    return seen


def _run(tracer: Tracer, model: nn.Module, example_inputs: Any) -> Any:
    handles = _hooks(tracer)
    try:
        with torch.no_grad(), no_kv_cache(model), _Mode(tracer), SizeReads(tracer):
            return call_model(model, example_inputs)
    except Exception as e:
        where = tracer.stack[-1] if tracer.stack else "<model>"
        raise ValueError(f"example_inputs do not run through the model (failed in module "
                         f"{where!r}: {type(e).__name__}: {e})") from e
    finally:
        for hd in handles:
            hd.remove()
        tracer.stack.clear()


def _train_pass(tracer: Tracer, model: nn.Module, example_inputs: Any) -> Any:
    """Second run for modules an eval-mode forward never calls (auxiliary heads).

    The same tracer goes on (same ids, same leaf records), so a module called in both runs
    couples its channels with themselves and the newly called modules join the graph.
    Containers run in training mode, layers in eval mode (:mod:`prunekit.graph.modes`).

    Raises:
        ValueError: the model does not run like this (the tracer is then half-updated).
    """

    tracer.count_only = {n for n, r in tracer.leaves.items() if r.calls == 0}
    try:
        with containers_training(model):
            return _run(tracer, model, example_inputs)
    finally:
        tracer.count_only = None


def _eval_pass(model: nn.Module, example_inputs: Any) -> tuple[Tracer, Any]:
    tracer = Tracer(model)
    was_training = model.training
    model.eval()
    try:
        return tracer, _run(tracer, model, example_inputs)
    finally:
        model.train(was_training)


def trace(model: nn.Module, example_inputs: Any) -> TraceResult:
    """Run ``model`` once on ``example_inputs`` (eval mode, no grad) and record coupling.

    When some handled modules are not called in eval mode (training-only branches such as
    GoogLeNet's auxiliary classifiers), the model runs a second time with its containers in
    training mode (:func:`_train_pass`) so the channels those modules read are coupled too.
    If that run fails (e.g. inputs too small for an auxiliary head's pooling), the eval-only
    trace is redone and those modules stay "not called" (reported, never pruned).

    Raises:
        ValueError: the model does not run on ``example_inputs`` (the message names the module).
    """
    tracer, out = _eval_pass(model, example_inputs)
    train_out = None
    if any(r.calls == 0 for r in tracer.leaves.values()):
        try:
            train_out = _train_pass(tracer, model, example_inputs)
            fix_outputs(tracer, train_out)
        except ValueError:
            tracer, out = _eval_pass(model, example_inputs)
    fix_outputs(tracer, out)
    for rec in tracer.leaves.values():
        if rec.external:
            tracer.uf.fix(rec.in_labels, f"{rec.name}: {rec.external}")
            tracer.uf.fix(rec.out_ids, f"{rec.name}: {rec.external}")
    return TraceResult(tracer.uf, tracer.leaves, list(tracer.free.values()), out, tracer.sized,
                       train_out, tracer.ragged.output_dims(out),
                       [] if train_out is None else tracer.ragged.output_dims(train_out))
