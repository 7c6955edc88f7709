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


def _zero_proj_units(m: nn.LSTM, removed: torch.Tensor) -> None:
    """Projected outputs removed: zero rows of ``weight_hr`` (``h_t`` is 0 there, so every
    reader of those units reads 0)."""
    for layer in range(m.num_layers):
        for s in ["", "_reverse"][: 1 + m.bidirectional]:
            getattr(m, f"weight_hr_l{layer}{s}").data[removed] = 0


def _zero_cell_units(m: nn.LSTM, removed: torch.Tensor) -> None:
    """Cell units removed (LSTM with projections): gate rows and ``weight_hr`` columns."""
    for layer in range(m.num_layers):
        for s in ["", "_reverse"][: 1 + m.bidirectional]:
            for kind in ("ih", "hh"):
                getattr(m, f"weight_{kind}_l{layer}{s}").data.view(4, m.hidden_size, -1)[
                    :, removed] = 0
                b = getattr(m, f"bias_{kind}_l{layer}{s}", None)
                if b is not None:
                    b.data.view(4, m.hidden_size)[:, removed] = 0
            getattr(m, f"weight_hr_l{layer}{s}").data[:, removed] = 0


def _zero_rnn_units(m: nn.RNNBase, removed: torch.Tensor) -> None:
    if getattr(m, "proj_size", 0) > 0:
        _zero_proj_units(m, removed)
        return
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


class _KeptLayerNorm(nn.Module):
    """LayerNorm over the kept channels only (statistics change when channels go); the removed
    channels are 0."""

    def __init__(self, ln: nn.LayerNorm, keep: torch.Tensor) -> None:
        super().__init__()
        self.ln, self.keep = ln, keep

    def forward(self, x):
        k = self.keep
        w = None if self.ln.weight is None else self.ln.weight[k]
        b = None if self.ln.bias is None else self.ln.bias[k]
        y = torch.nn.functional.layer_norm(x[..., k], (k.numel(),), w, b, self.ln.eps)
        return torch.zeros_like(x).index_copy(-1, k, y)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def zero_reference(model: nn.Module, plan) -> nn.Module:
    """Dense copy of ``model`` computing what ``plan`` promises (raises on unknown layers)."""
    ref = copy.deepcopy(model)
    mods = dict(ref.named_modules())
    with torch.no_grad():
        for e in plan.edits:
            m = mods[e.name]
            if isinstance(m, nn.LayerNorm):
                _replace(ref, e.name, _KeptLayerNorm(m, e.keep_out))
                continue
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
                units = m.proj_size or m.hidden_size
                _zero_rnn_units(m, _removed(e.keep_out[e.keep_out < units], units))
            if isinstance(m, nn.LSTM) and "hidden_units" in e.internal:
                _zero_cell_units(m, _removed(e.internal["hidden_units"], m.hidden_size))
            if isinstance(m, nn.MultiheadAttention) and "heads" in e.internal:
                rem = _removed(e.internal["heads"], m.num_heads).repeat_interleave(m.head_dim)
                m.out_proj.weight.data[:, rem] = 0
    return ref
