"""Structural surgery for ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` hidden units.

Layout (PyTorch): for layer ``l`` and direction suffix ``s`` ("" or "_reverse")
``weight_ih_l{l}{s}``: (G*H, in_l), ``weight_hh_l{l}{s}``: (G*H, R), ``bias_*``: (G*H,),
``weight_hr_l{l}{s}``: (R, H) for LSTM with projections; ``G`` = 4 (LSTM, gates i,f,g,o),
3 (GRU, gates r,z,n), 1 (RNN); ``H`` = ``hidden_size``; ``R`` = ``proj_size or hidden_size``;
``in_0 = input_size`` and ``in_l = dirs*R`` for ``l > 0`` (forward units then backward units).

A hidden unit ``j`` owns rows ``j + g*H`` of every gate matrix and bias, and column ``j`` of the
recurrent matrix (or of ``weight_hr``). PyTorch stores one ``hidden_size`` for every layer and
direction, so the kept set is the *same* in every layer and direction: the unit space of the
module is one index space of size ``R``; the output feature dim (size ``dirs*R``) is ``dirs``
concatenated copies of it (``out_repeats``). Zeroing the incoming rows and biases of a unit keeps
its state at exactly 0 (``c = 0.5*c_prev``, ``h = 0.5*tanh(c)`` from zero initial states), so
"zero, then remove" equivalence holds exactly.

After any change ``_init_flat_weights`` + ``flatten_parameters`` are called so the functional
(and cuDNN) path sees the new tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.handlers._slicing import (
    as_index,
    resize_param,
    slice_param,
    strided_rows,
)
from prunekit.handlers.base import Handler, InternalGroup, register_handler

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def gates(m: nn.RNNBase) -> int:
    """Number of gate blocks stacked in the rows of the weight matrices."""
    return _GATES[m.mode]


def directions(m: nn.RNNBase) -> int:
    return 2 if m.bidirectional else 1


def _sfx(m: nn.RNNBase) -> list[str]:
    return ["", "_reverse"][: directions(m)]


def unit_size(m: nn.RNNBase) -> int:
    """Size ``R`` of the unit space seen outside (``proj_size`` when projections are used)."""
    return m.proj_size if getattr(m, "proj_size", 0) > 0 else m.hidden_size


def _refresh(m: nn.RNNBase) -> None:
    m._init_flat_weights()
    m.flatten_parameters()


def prune_rnn_input(m: nn.RNNBase, keep: Tensor) -> None:
    """Keep input features ``keep`` (columns of ``weight_ih_l0*``)."""
    idx = as_index(keep, m.input_size, f"{type(m).__name__} input")
    for s in _sfx(m):
        slice_param(m, f"weight_ih_l0{s}", 1, idx)
    m.input_size = idx.numel()
    _refresh(m)


def _slice_unit_readers(m: nn.RNNBase, idx: Tensor, size: int) -> None:
    """Keep units ``idx`` (of ``size``) where a layer's output is read: the recurrent
    ``weight_hh`` columns of every layer and the ``weight_ih`` columns of the next layers
    (one block per direction)."""
    inner = strided_rows(idx, size, directions(m))
    for layer in range(m.num_layers):
        for s in _sfx(m):
            slice_param(m, f"weight_hh_l{layer}{s}", 1, idx)
            if layer > 0:
                slice_param(m, f"weight_ih_l{layer}{s}", 1, inner)


def prune_rnn_hidden(m: nn.RNNBase, keep: Tensor) -> None:
    """Keep hidden (cell) units ``keep`` in every layer and direction; updates ``hidden_size``."""
    h = m.hidden_size
    idx = as_index(keep, h, f"{type(m).__name__} hidden units")
    rows = strided_rows(idx, h, gates(m))
    proj = getattr(m, "proj_size", 0) > 0
    for layer in range(m.num_layers):
        for s in _sfx(m):
            for kind in ("ih", "hh"):
                slice_param(m, f"weight_{kind}_l{layer}{s}", 0, rows)
                slice_param(m, f"bias_{kind}_l{layer}{s}", 0, rows)
            if proj:  # the projection reads the cell units; its outputs are what layers read
                slice_param(m, f"weight_hr_l{layer}{s}", 1, idx)
    if not proj:
        _slice_unit_readers(m, idx, h)
    m.hidden_size = idx.numel()
    _refresh(m)


def prune_rnn_proj(m: nn.LSTM, keep: Tensor) -> None:
    """Keep projected units ``keep`` of an LSTM with ``proj_size > 0``; updates ``proj_size``."""
    r = m.proj_size
    idx = as_index(keep, r, "LSTM projection units")
    for layer in range(m.num_layers):
        for s in _sfx(m):
            slice_param(m, f"weight_hr_l{layer}{s}", 0, idx)
    _slice_unit_readers(m, idx, r)
    m.proj_size = idx.numel()
    _refresh(m)


def units_from_output(m: nn.RNNBase, keep: Tensor) -> Tensor:
    """Map kept output features (size ``dirs*R``) to kept units; every direction must agree."""
    r = unit_size(m)
    idx = as_index(keep, directions(m) * r, f"{type(m).__name__} output features")
    parts = [idx[(idx >= d * r) & (idx < (d + 1) * r)] - d * r for d in range(directions(m))]
    if any(p.numel() != parts[0].numel() or not torch.equal(p, parts[0]) for p in parts[1:]):
        raise ValueError(
            f"{type(m).__name__}: a bidirectional RNN keeps the same units in both directions; "
            "kept output features must be symmetric (j kept <=> j + hidden kept)"
        )
    return parts[0]


def _gate_view(p: Tensor, g: int) -> Tensor:
    """(G*H, ...) -> (G, H, ...) so that axis 1 indexes units."""
    return p.detach().reshape(g, p.shape[0] // g, *p.shape[1:])


def _stack_dirs(tensors: list[Tensor], axis: int) -> Tensor:
    return torch.cat(tensors, dim=axis)


def _unit_slices(m: nn.RNNBase, proj_space: bool) -> list[tuple[Tensor, int]]:
    """(tensor, axis) pairs whose ``axis`` has size ``dirs*units`` in output-feature order."""
    g = gates(m)
    out: list[tuple[Tensor, int]] = []
    for layer in range(m.num_layers):
        per_dir: dict[str, list[Tensor]] = {}
        for s in _sfx(m):
            if proj_space:
                per_dir.setdefault("hr", []).append(getattr(m, f"weight_hr_l{layer}{s}").detach())
                per_dir.setdefault("hhc", []).append(
                    getattr(m, f"weight_hh_l{layer}{s}").detach().t())
                continue
            for kind in ("ih", "hh"):
                per_dir.setdefault(f"w{kind}", []).append(
                    _gate_view(getattr(m, f"weight_{kind}_l{layer}{s}"), g))
                b = getattr(m, f"bias_{kind}_l{layer}{s}", None)
                if b is not None:
                    per_dir.setdefault(f"b{kind}", []).append(_gate_view(b, g))
        for key, ts in per_dir.items():
            axis = 0 if key in ("hr", "hhc") else 1
            out.append((_stack_dirs(ts, axis), axis))
        if layer + 1 < m.num_layers:
            for s in _sfx(m):
                out.append((getattr(m, f"weight_ih_l{layer + 1}{s}").detach(), 1))
    return out


class RNNHandler(Handler):
    """Handler for ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (multi-layer, bidirectional, projections).

    in: ``input_size`` features; out: ``dirs * R`` features = ``dirs`` copies of the unit space
    (see module docstring). Cell units of an LSTM with projections are an internal group.
    """

    def in_channels(self, m: nn.RNNBase) -> int:
        return m.input_size

    def out_channels(self, m: nn.RNNBase) -> int:
        return directions(m) * unit_size(m)

    def out_repeats(self, m: nn.RNNBase) -> int:
        """The output features are this many concatenated copies of one unit space."""
        return directions(m)

    def prune_in(self, m: nn.RNNBase, keep: Tensor) -> None:
        prune_rnn_input(m, keep)

    def prune_out(self, m: nn.RNNBase, keep: Tensor) -> None:
        units = units_from_output(m, keep)
        if getattr(m, "proj_size", 0) > 0:
            prune_rnn_proj(m, units)
        else:
            prune_rnn_hidden(m, units)

    def in_tensors(self, m: nn.RNNBase, args: tuple, kwargs: dict) -> list[tuple[Tensor, int]]:
        x = args[0] if args else kwargs.get("input")
        return [(x, x.dim() - 1)] if isinstance(x, Tensor) else []

    def state_tensors(self, m: nn.RNNBase, args: tuple, kwargs: dict
                      ) -> list[tuple[Tensor, int]]:
        """``h0`` (and ``c0`` of an LSTM without projections): last axis = units."""
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        out = [(t, t.dim() - 1) for t in states if isinstance(t, Tensor)]
        if getattr(m, "proj_size", 0) > 0:  # c0 indexes the cell units (an internal group)
            out = out[:1]
        return out

    def out_tensors(self, m: nn.RNNBase, output: Any) -> list[tuple[Tensor, int]]:
        """``output`` and, for one direction, ``h_n`` (and ``c_n`` without projections)."""
        y, state = output
        if not isinstance(y, Tensor):  # PackedSequence: not traced through
            return []
        out = [(y, y.dim() - 1)]
        if directions(m) == 1:
            states = state if isinstance(state, tuple) else (state,)
            out += [(t, t.dim() - 1) for t in states if t.shape[-1] == unit_size(m)]
        return out

    def masking_is_exact(self, m: nn.RNNBase) -> bool:
        """Zeroing an output feature does not remove the unit: it still feeds the recurrence."""
        return False

    def cost(self, m: nn.RNNBase, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        """``(params, MACs per time step)`` with ``n_in`` inputs and ``n_out`` output features."""
        return self.internal_cost(m, n_in, n_out, {})

    def internal_cost(self, m: nn.RNNBase, n_in: int | None, n_out: int | None,
                      kept: dict[str, int]) -> tuple[int, int]:
        """:meth:`cost` with ``kept["hidden_units"]`` cell units (LSTM with projections)."""
        d, g = directions(m), gates(m)
        n_in = m.input_size if n_in is None else n_in
        r = unit_size(m) if n_out is None else n_out // d
        proj = getattr(m, "proj_size", 0) > 0
        h = kept.get("hidden_units", m.hidden_size) if proj else r
        weights = 0
        for layer in range(m.num_layers):
            width = n_in if layer == 0 else d * r
            weights += d * (g * h * (width + r) + (r * h if proj else 0))
        biases = m.num_layers * d * 2 * g * h if m.bias else 0
        return weights + biases, weights

    def weight_slices(self, m: nn.RNNBase, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "in":
            return [(getattr(m, f"weight_ih_l0{s}"), 1) for s in _sfx(m)]
        return _unit_slices(m, proj_space=getattr(m, "proj_size", 0) > 0)

    def internal_groups(self, m: nn.RNNBase) -> list[InternalGroup]:
        if getattr(m, "proj_size", 0) == 0:
            return []
        cell = [(_gate_view(getattr(m, f"weight_{k}_l{lay}{s}"), gates(m)), 1)
                for lay in range(m.num_layers) for s in _sfx(m) for k in ("ih", "hh")]
        cell += [(getattr(m, f"weight_hr_l{lay}{s}").detach(), 1)
                 for lay in range(m.num_layers) for s in _sfx(m)]
        return [InternalGroup("hidden_units", m.hidden_size, 1, cell,
                              lambda keep: prune_rnn_hidden(m, keep),
                              {"min_keep": m.proj_size + 1})]  # PyTorch: proj_size < hidden

    def resize(self, m: nn.RNNBase, shapes: dict[str, tuple[int, ...]]) -> None:
        """Match saved shapes: infer ``input_size``/``hidden_size``/``proj_size`` and reallocate."""
        g = gates(m)
        if "weight_hh_l0" in shapes:
            m.hidden_size = shapes["weight_hh_l0"][0] // g
        if "weight_ih_l0" in shapes:
            m.input_size = shapes["weight_ih_l0"][1]
        if "weight_hr_l0" in shapes:
            m.proj_size = shapes["weight_hr_l0"][0]
        for name, shape in shapes.items():
            resize_param(m, name, tuple(shape))
        _refresh(m)


RNN_HANDLER = RNNHandler()
for _cls in (nn.RNN, nn.GRU, nn.LSTM):
    register_handler(_cls, RNN_HANDLER)
