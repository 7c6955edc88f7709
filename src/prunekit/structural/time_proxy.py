"""An analytic, device-independent layer-time model that steers the default global selection.

MACs are a poor proxy for CPU time: a 1x1 convolution over a 56x56 map moves as many bytes as
it multiplies, the last stage of a CNN at batch 1 streams megabytes of weights for a few
thousand positions, a depthwise convolution runs far off the GEMM path, and every layer output
passes through an activation or a residual add that counts no MACs at all. The global selection
spends a MAC budget; this module tells it what each group's MACs cost in time.

Each layer's time is estimated roofline-style, in units of the time of one dense MAC::

    t = g * MACs + b * weights + c * (input + output activations) + e * output + d

(``g`` = 1 for dense convolutions / Linear and :attr:`LayerTimeModel.grouped_mac` for grouped
and depthwise ones; norms and other layers without MACs count one element-wise pass ``e`` per
output element). The constants were fitted by ``benchmarks/time_proxy_fit.py`` on measured
layer times (every distinct Conv2d / Linear shape of ResNet-50 and MobileNetV2 at 100/50/25% of
their channels, batch 1 and 16, ReLU and add; results in
``benchmarks/results/time_proxy_fit.json``) and are fixed here, so a plan is the same on every
machine. :func:`estimated_time_weights` turns the model into one weight per channel group: the
estimated time saved by removing half of the group's units, per MAC saved, relative to the
whole model's time per MAC (1.0: removing the group saves time in proportion to MACs). This is
the latency-aware ranking of HALP (Shen et al., "Structural Pruning via Latency-Saliency
Knapsack", NeurIPS 2022) with an analytic latency model in place of a measured table, in the
spirit of the roofline model (Williams et al., "Roofline: an insightful visual performance
model for multicore architectures", CACM 2009).

Limits: one CPU-like machine balance (a GPU or an accelerator with another balance would fit
other constants); cache effects and kernel choice within a layer are not modelled; internal
groups (attention heads) weigh 1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.graph.dependency import DependencyGraph
from prunekit.structural.select import CostModel


@dataclass(frozen=True)
class LayerTimeModel:
    """Constants of the layer-time estimate, in units of one dense MAC's time.

    Attributes:
        grouped_mac: time of one MAC of a grouped / depthwise convolution.
        weight_per_mac: time to read one weight element.
        act_per_mac: time to read or write one activation element of a layer.
        elementwise_per_mac: one element-wise pass (activation, residual add, norm) per
            output element.
        fixed_macs: per-layer overhead (dispatch, threading), in MACs.
    """

    grouped_mac: float = 3.784
    weight_per_mac: float = 27.48
    act_per_mac: float = 25.85
    elementwise_per_mac: float = 14.01
    fixed_macs: float = 1.005e+06

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{f.name} must be a finite number >= 0, got {v!r}")
        if self.grouped_mac <= 0:
            raise ValueError(f"grouped_mac must be > 0, got {self.grouped_mac!r}")

    def layer_time(self, macs: float, weights: float, acts_in: float, acts_out: float,
                   grouped: bool = False) -> float:
        """Estimated time of one layer (in MACs) from its counts; no MACs: one element-wise
        pass over its output."""
        if macs <= 0:
            return self.elementwise_per_mac * acts_out
        return ((self.grouped_mac if grouped else 1.0) * macs + self.weight_per_mac * weights
                + self.act_per_mac * (acts_in + acts_out)
                + self.elementwise_per_mac * acts_out + self.fixed_macs)


DEFAULT_TIME_MODEL = LayerTimeModel()

#: Under the estimate, a group loses at most this share of its units more than the MACs-only
#: plan for the same target removes from it (``select_global(caps=)``). Normalised scores
#: within a group are nearly flat, so unbounded weights decide widths alone and empty the group
#: that is cheapest to cut (a trained residual CNN on digits kept 16 of 64 residual channels at
#: 40% of its MACs and lost 15 points after fine-tuning; bounded it matches the MACs-only plan,
#: ``benchmarks/time_proxy_accuracy.py``).
ESTIMATE_MAX_EXTRA = 0.25


def _stride(module: object) -> int:
    stride = getattr(module, "stride", 1)
    return math.prod(stride) if isinstance(stride, tuple) else int(stride or 1)


def _row_time(row, n_in: int | None, n_out: int | None, tm: LayerTimeModel
              ) -> tuple[float, int]:
    params, mpp = row.handler.cost(row.module, n_in, n_out)
    macs = mpp * row.positions
    acts_out = (n_out or 0) * row.positions
    acts_in = (n_in or 0) * row.positions * _stride(row.module)
    grouped = int(getattr(row.module, "groups", 1) or 1) > 1
    return tm.layer_time(macs, params, acts_in, acts_out, grouped), macs


def estimate_time(cost: CostModel, removed: Tensor, model: LayerTimeModel = DEFAULT_TIME_MODEL
                  ) -> tuple[float, int]:
    """``(estimated time in MACs, MACs)`` of the traced layers with ``removed`` units gone
    (a bool mask over all units of ``cost``'s graph)."""
    keep = ~removed
    total_t, total_m = 0.0, 0
    for r in cost.rows:
        n_in = CostModel._kept(r.in_idx, keep, r.cin)
        n_out = n_in if r.coupled else CostModel._kept(r.out_idx, keep, r.cout)
        t, m = _row_time(r, n_in, n_out, model)
        total_t += t
        total_m += m
    return total_t, total_m


def estimated_time_weights(cost: CostModel, offsets: list[int], sizes: list[int],
                           model: LayerTimeModel = DEFAULT_TIME_MODEL, lo: float = 0.1,
                           hi: float = 10.0) -> list[float]:
    """One weight per group (``offsets[g]``, ``sizes[g]``: its units in ``cost``'s global
    index): estimated time saved per MAC saved when half of the group's units are removed,
    over the whole model's time per MAC (without the per-layer overhead, which no removal
    saves); clipped to ``[lo, hi]``. A group whose removal saves
    no MACs, or with fewer than 2 units, weighs 1.0. Deterministic: a function of the shapes.
    """
    total = cost.total
    unit_group = torch.full((total,), -1, dtype=torch.long)
    for g, (o, s) in enumerate(zip(offsets, sizes, strict=True)):
        unit_group[o:o + s] = g
    touched: list[set[int]] = [set() for _ in offsets]
    base: list[tuple[float, int]] = []
    keep = torch.ones(total, dtype=torch.bool)
    for i, r in enumerate(cost.rows):
        for idx in (r.in_idx, r.out_idx):
            if idx is not None:
                for g in torch.unique(unit_group[idx[idx >= 0]]).tolist():
                    touched[g].add(i)
        n_in = CostModel._kept(r.in_idx, keep, r.cin)
        n_out = n_in if r.coupled else CostModel._kept(r.out_idx, keep, r.cout)
        base.append(_row_time(r, n_in, n_out, model))
    # the model's time per MAC without the per-layer overhead (which no removal changes)
    t0 = sum(t for t, _ in base) - model.fixed_macs * sum(1 for _, m in base if m > 0)
    m0 = sum(m for _, m in base)
    if m0 <= 0 or t0 <= 0:
        return [1.0] * len(offsets)
    out = []
    for g, (o, s) in enumerate(zip(offsets, sizes, strict=True)):
        if s < 2:
            out.append(1.0)
            continue
        keep = torch.ones(total, dtype=torch.bool)
        keep[o:o + s // 2] = False
        dt, dm = 0.0, 0
        for i in touched[g]:
            r = cost.rows[i]
            n_in = CostModel._kept(r.in_idx, keep, r.cin)
            n_out = n_in if r.coupled else CostModel._kept(r.out_idx, keep, r.cout)
            t, m = _row_time(r, n_in, n_out, model)
            dt += base[i][0] - t
            dm += base[i][1] - m
        out.append(1.0 if dm <= 0 else min(hi, max(lo, (dt / dm) / (t0 / m0))))
    return out


def _traced_cost(model: nn.Module, example_inputs: Any
                 ) -> tuple[DependencyGraph, CostModel, list[int], int]:
    """The dependency graph of ``model`` and the cost model over all its groups' units."""
    graph = DependencyGraph.build(model.eval(), example_inputs)
    offsets, total = [], 0
    for g in graph.groups:
        offsets.append(total)
        total += g.size
    return graph, CostModel(graph, offsets, total), offsets, total


def group_time_weights(model: nn.Module, example_inputs: Any,
                       model_constants: LayerTimeModel = DEFAULT_TIME_MODEL
                       ) -> dict[tuple[str, ...], float]:
    """``{group's producer names: weight}`` as the default global selection sees them (for
    inspection: which channel groups the estimate makes cheaper to keep or to remove).

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 32, 1), nn.ReLU(), nn.Conv2d(32, 32, 1), nn.ReLU(),
    ...                     nn.MaxPool2d(4), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
    ...                     nn.Conv2d(64, 10, 3, padding=1)).eval()
    >>> w = group_time_weights(net, torch.randn(1, 3, 64, 64))
    >>> w[("0",)] > 1 > w[("5",)]  # 1x1 convs on a large map: memory-bound; 3x3 on a small one
    True
    """
    graph, cost, offsets, total = _traced_cost(model, example_inputs)
    weights = estimated_time_weights(cost, offsets, [g.size for g in graph.groups],
                                     model_constants)
    return {tuple(g.producers): w for g, w in zip(graph.groups, weights, strict=True)}


def estimate_model_time(model: nn.Module, example_inputs: Any,
                        model_constants: LayerTimeModel = DEFAULT_TIME_MODEL) -> float:
    """Estimated time of one forward of ``model`` on ``example_inputs``, in units of one dense
    MAC's time (ratios of two models' estimates predict a speedup; traced layers only)."""
    _, cost, _, total = _traced_cost(model, example_inputs)
    return estimate_time(cost, torch.zeros(total, dtype=torch.bool), model_constants)[0]
