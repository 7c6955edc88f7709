"""Group importance for structural pruning: one score per removable unit of a coupled group.

Every criterion scores the *slices* a unit would remove from every coupled layer (a conv's
filter, the next conv's input columns, the BN entries, a layer-scale entry, ...) and sums them
over the group (Torch-Pruning's "group importance", Fang et al., CVPR 2023). Criteria:

* ``l1`` / ``l2``: filter norm (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017);
  ``l2`` is the norm of the whole coupled slice set.
* ``bn_scale``: ``|gamma|`` of the BatchNorms in the group (Liu et al., "Network Slimming",
  ICCV 2017); groups without BatchNorm fall back to ``l1``.
* ``random``: uniform baseline.
* ``taylor``: first-order Taylor ``|sum(w * dL/dw)|`` per slice over calibration batches
  (Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019).
* ``activation``: mean ``|x|`` of the channel at its consumers' inputs on calibration data.
* ``apoz``: ``1 - APoZ``, the fraction of non-zero activations at consumers' inputs (Hu et al.,
  "Network Trimming", 2016).

Registered in :data:`GROUP_CRITERIA`, separate from the weight criteria.

Units that live inside one module (attention heads / KV groups, LSTM cell units; a handler's
:class:`~prunekit.handlers.base.InternalGroup`) are scored here too, by :func:`unit_scores`,
from the slices each unit owns (heads ranked by importance as in Michel et al., "Are Sixteen
Heads Really Better than One?", NeurIPS 2019): ``l1`` / ``l2`` norms, ``taylor`` on the same
``w * dL/dw`` statistics, ``random``; ``bn_scale`` falls back to ``l1`` as for channel groups
without BatchNorm. ``activation`` and ``apoz`` are recorded at channel consumers, which such
units do not have: :func:`check_unit_criterion` refuses them with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunekit._registry import Registry
from prunekit.importance.calibration import run_calibration


@dataclass
class SliceRef:
    """``param`` sliced along ``axis``; ``units[i]`` = unit removed with position ``i`` (-1: none)."""

    name: str
    module: nn.Module | None
    kind: str  # "out" | "in" | "param"
    param: Tensor | None  # None: a consumer side without weights (activation stats only)
    axis: int
    units: Tensor


@dataclass
class GroupStats:
    """Calibration statistics: per parameter ``sum(w * grad)`` and per consumer input channel
    mean ``|x|`` and zero fraction."""

    taylor: dict[int, Tensor] = field(default_factory=dict)
    act_mean: dict[str, Tensor] = field(default_factory=dict)
    act_zero: dict[str, Tensor] = field(default_factory=dict)


GroupCriterion = Callable[[list[SliceRef], int, GroupStats | None, torch.Generator], Tensor]
GROUP_CRITERIA: Registry[GroupCriterion] = Registry("group criterion")
NEEDS: dict[str, frozenset[str]] = {}


def _per_position(p: Tensor, axis: int, fn: Callable[[Tensor, list[int]], Tensor]) -> Tensor:
    """``fn(x, dims)`` reduces ``x`` over ``dims`` (every dim but ``axis``): one value per
    position along ``axis``. No transposed copy is made (strided reduction)."""
    x = p.detach().float()
    if x.dim() == 1:
        return fn(x.reshape(-1, 1), [1])
    return fn(x, [d for d in range(x.dim()) if d != axis])


def _accumulate(slices: list[SliceRef], size: int, per_slice: Callable[[SliceRef], Tensor | None]
                ) -> Tensor:
    score = torch.zeros(size)
    for s in slices:
        if s.param is None:
            continue
        v = per_slice(s)
        if v is None:
            continue
        ok = s.units >= 0
        score.index_add_(0, s.units[ok], v.cpu()[ok])
    return score


def _register(name: str, needs: frozenset[str] = frozenset()):
    def deco(fn):
        GROUP_CRITERIA.register(name, fn)
        NEEDS[name] = needs
        return fn
    return deco


@_register("l1")
def l1(slices, size, stats, gen) -> Tensor:
    return _accumulate(slices, size, lambda s: _per_position(s.param, s.axis, lambda x, d: x.abs().sum(d)))


@_register("l2")
def l2(slices, size, stats, gen) -> Tensor:
    sq = _accumulate(slices, size, lambda s: _per_position(s.param, s.axis, lambda x, d: x.pow(2).sum(d)))
    return sq.sqrt()


@_register("random")
def random(slices, size, stats, gen) -> Tensor:
    return torch.rand(size, generator=gen)


@_register("bn_scale")
def bn_scale(slices, size, stats, gen) -> Tensor:
    bn = [s for s in slices if isinstance(s.module, _BatchNorm) and s.param is s.module.weight]
    if not bn:
        return l1(slices, size, stats, gen)
    return _accumulate(bn, size, lambda s: s.param.detach().float().abs())


@_register("taylor", frozenset({"grad"}))
def taylor(slices, size, stats, gen) -> Tensor:
    def one(s: SliceRef) -> Tensor | None:
        acc = stats.taylor.get(id(s.param)) if stats else None
        return None if acc is None else _per_position(acc, s.axis, lambda x, d: x.sum(d).abs())
    return _accumulate(slices, size, one)


def _act(slices, size, table: dict[str, Tensor], transform) -> Tensor:
    total, count = torch.zeros(size), torch.zeros(size)
    for s in slices:
        v = table.get(s.name) if s.kind == "in" else None
        if v is None or v.numel() != s.units.numel():
            continue
        ok = s.units >= 0
        total.index_add_(0, s.units[ok], transform(v)[ok])
        count.index_add_(0, s.units[ok], torch.ones(int(ok.sum())))
    return total / count.clamp_min(1)


@_register("activation", frozenset({"act"}))
def activation(slices, size, stats, gen) -> Tensor:
    return _act(slices, size, stats.act_mean if stats else {}, lambda v: v)


@_register("apoz", frozenset({"act"}))
def apoz(slices, size, stats, gen) -> Tensor:
    return _act(slices, size, stats.act_zero if stats else {}, lambda v: 1.0 - v)


def score_group(criterion: str, slices: list[SliceRef], size: int, stats: GroupStats | None,
                gen: torch.Generator) -> Tensor:
    """Scores of a coupled group's ``size`` units by the registered ``criterion`` (float)."""
    fn = GROUP_CRITERIA.get(criterion)
    return fn([r for r in slices if r.param is not None or r.kind == "in"], size, stats, gen).float()


UNIT_CRITERIA = ("l1", "l2", "bn_scale", "taylor", "random")


def check_unit_criterion(criterion: str, where: list[str]) -> None:
    """ValueError when ``criterion`` cannot score the internal units of the modules ``where``."""
    if where and criterion not in UNIT_CRITERIA:
        raise ValueError(f"criterion {criterion!r} cannot score units inside a module (heads, cell "
                         f"units of {', '.join(where[:3])}{' ...' if len(where) > 3 else ''}): "
                         f"activations are recorded at channel consumers only; use one of "
                         f"{', '.join(UNIT_CRITERIA)}, or exclude those modules")


def unit_scores(group: Any, criterion: str, gen: torch.Generator | None = None,
                stats: GroupStats | None = None) -> Tensor:
    """One score per unit of an internal ``group`` (higher = more important).

    Args:
        group: an :class:`~prunekit.handlers.base.InternalGroup` (``size`` units; along each
            ``weight_slices`` axis unit ``u`` owns ``[u*g, (u+1)*g)``).
        criterion: one of :data:`UNIT_CRITERIA` (see :func:`check_unit_criterion`).
        stats: the calibration statistics (``taylor``: ``w * grad`` of the group's tensors).
    """
    check_unit_criterion(criterion, [getattr(group, "name", "a module")])
    if criterion == "random":
        return torch.rand(group.size, generator=gen)
    score, found = torch.zeros(group.size), False
    for t, axis in group.weight_slices:
        if criterion == "taylor":
            acc = stats.taylor.get(id(t)) if stats else None
            if acc is None:
                continue
            per_pos = _per_position(acc, axis, lambda x, d: x.sum(d).abs())  # (size * g,)
            score += per_pos.reshape(group.size, -1).sum(1).cpu()
            found = True
            continue
        power = 2 if criterion == "l2" else 1
        per = t.detach().float().movedim(axis, 0).reshape(group.size, -1)
        score += per.abs().pow(power).sum(1).cpu()
    if criterion == "taylor" and not found:
        raise ValueError(f"criterion 'taylor': no gradient reached the tensors of the "
                         f"{getattr(group, 'name', 'internal')} units (calib_data and loss_fn "
                         "must give a loss that depends on them)")
    return score


def _act_hook(name: str, dim: int, stats: GroupStats, counts: dict[str, int]):
    def hook(mod, args):
        if not args or not isinstance(args[0], Tensor):
            return
        x = args[0].detach().float().movedim(dim, 0)
        x = x.reshape(x.shape[0], -1)
        m, z = x.abs().sum(1), (x == 0).float().sum(1)
        n = counts.get(name, 0) + x.shape[1]
        counts[name] = n
        if name in stats.act_mean:
            stats.act_mean[name] += m
            stats.act_zero[name] += z
        else:
            stats.act_mean[name], stats.act_zero[name] = m, z
    return hook


def collect_group_stats(model: nn.Module, consumers: dict[str, tuple[nn.Module, int]],
                        params: list[Tensor], calib_data: Iterable[Any], needs: frozenset[str],
                        loss_fn: Callable[[Any, Any], Tensor] | None = None,
                        max_batches: int | None = None) -> GroupStats:
    """Run the calibration batches once; gradients and modes are restored afterwards.

    Args:
        consumers: leaf name -> (module, input channel axis) whose inputs are recorded.
        params: tensors whose ``w * grad`` is accumulated (``taylor``).
    """
    stats, counts = GroupStats(), {}
    handles = []
    if "act" in needs:
        handles = [m.register_forward_pre_hook(_act_hook(n, d, stats, counts))
                   for n, (m, d) in consumers.items()]

    def accumulate_taylor() -> None:
        for p in params:
            if p.grad is not None:
                t = (p.grad.detach() * p.detach()).float()
                stats.taylor[id(p)] = stats.taylor.get(id(p), 0) + t

    run_calibration(model, calib_data, loss_fn=loss_fn, handles=handles, max_batches=max_batches,
                    on_backward=accumulate_taylor if "grad" in needs else None,
                    who="criterion 'taylor' needs")
    for n, c in counts.items():
        stats.act_mean[n] /= max(c, 1)
        stats.act_zero[n] /= max(c, 1)
    return stats
