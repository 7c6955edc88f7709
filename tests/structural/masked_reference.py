"""An independent masked reference: the dense model with every removed channel zeroed in the
weights that read it (consumers' input columns, an RNN's removed units), built from a plan's
kept indices alone — none of the engine's verify hooks are used."""

from __future__ import annotations

import copy

import torch
from torch import nn


def _removed(keep: torch.Tensor, full: int) -> torch.Tensor:
    mask = torch.ones(full, dtype=torch.bool)
    mask[keep] = False
    return mask


def _zero_conv_in(m: nn.Module, removed: torch.Tensor) -> None:
    w = m.weight.data  # (out, in/groups, ...)
    ipg, opg = w.shape[1], w.shape[0] // m.groups
    for c in torch.nonzero(removed).flatten().tolist():
        g, i = divmod(c, ipg)
        w[g * opg:(g + 1) * opg, i] = 0


def _zero_rnn_units(m: nn.RNNBase, removed: torch.Tensor) -> None:
    g = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
    for layer in range(m.num_layers):
        for s in ["", "_reverse"][: 1 + m.bidirectional]:
            for kind in ("ih", "hh"):
                w = getattr(m, f"weight_{kind}_l{layer}{s}").data
                w.view(g, m.hidden_size, -1)[:, removed] = 0
                b = getattr(m, f"bias_{kind}_l{layer}{s}", None)
                if b is not None:
                    b.data.view(g, m.hidden_size)[:, removed] = 0
            getattr(m, f"weight_hh_l{layer}{s}").data[:, removed] = 0
            if layer:
                getattr(m, f"weight_ih_l{layer}{s}").data[:, removed.repeat(1 + m.bidirectional)] = 0


def zero_reference(model: nn.Module, plan) -> nn.Module:
    """Dense copy of ``model`` computing what ``plan`` promises (raises on unknown layers)."""
    ref = copy.deepcopy(model)
    mods = dict(ref.named_modules())
    with torch.no_grad():
        for e in plan.edits:
            m = mods[e.name]
            if e.keep_in is not None and not e.coupled:
                rem = _removed(e.keep_in, e.in_full)
                if isinstance(m, nn.Linear):
                    m.weight.data[:, rem] = 0
                elif isinstance(m, nn.modules.conv._ConvNd):
                    _zero_conv_in(m, rem)
                elif isinstance(m, nn.RNNBase):
                    for s in ["", "_reverse"][: 1 + m.bidirectional]:
                        getattr(m, f"weight_ih_l0{s}").data[:, rem] = 0
                elif isinstance(m, nn.MultiheadAttention):
                    m.in_proj_weight.data[:, rem] = 0
                else:
                    raise NotImplementedError(type(m).__name__)
            if isinstance(m, nn.RNNBase) and e.keep_out is not None:
                _zero_rnn_units(m, _removed(e.keep_out[e.keep_out < m.hidden_size],
                                            m.hidden_size))
            if isinstance(m, nn.MultiheadAttention) and "heads" in e.internal:
                rem = _removed(e.internal["heads"], m.num_heads).repeat_interleave(m.head_dim)
                m.out_proj.weight.data[:, rem] = 0
    return ref
