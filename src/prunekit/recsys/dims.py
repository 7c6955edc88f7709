"""Dimension pruning: remove whole embedding columns together with the weights that read them.

A model declares its coupled column groups (``model.dim_groups()``): tables meeting in a dot
product (MF, GMF, DLRM interactions, two-tower) lose the same columns, and the first downstream
layer loses the matching input columns (NCF's MLP and predict layer, DLRM's top MLP) or output
rows (DLRM's bottom MLP). Columns are scored with a registered group criterion of the structural
engine (:data:`prunekit.importance.structured.GROUP_CRITERIA`: ``l2``, ``l1``, ``random``) over
every coupled slice, then all slices are cut in one step.

Why not :func:`prunekit.plan_structured`: the dependency graph refuses to prune a channel that a
matmul or a ``mul``-then-``sum`` contracts (``graph/rules.py``), because pruning it is only
valid when both operands lose the same channel — a cross-operand coupling the graph's
per-tensor labels do not express. The recommender models declare that coupling themselves, and
:func:`verify_dims` checks the result the way :func:`prunekit.verify` does: the pruned model must
match the dense model with the removed columns zeroed.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from prunekit.importance.structured import GROUP_CRITERIA, SliceRef
from prunekit.recsys.tables import SparseEmbedding
from prunekit.structural.resize import fix_attributes

Slice = tuple[str, int, int]
DimPlan = list[tuple[list[Slice], Tensor]]  # (group, kept positions within the group width)


def _param(model: nn.Module, path: str) -> tuple[nn.Module, str, Tensor]:
    mod_name, _, name = path.rpartition(".")
    module = model.get_submodule(mod_name)
    if isinstance(module, SparseEmbedding):
        raise ValueError(f"dims: table {mod_name!r} is stored sparse; prune dims before entries")
    return module, name, getattr(module, name)


def group_width(model: nn.Module, group: list[Slice]) -> int:
    return _param(model, group[0][0])[2].shape[group[0][1]]


def _slice_refs(model: nn.Module, group: list[Slice], width: int) -> list[SliceRef]:
    refs = []
    for path, axis, off in group:
        module, _, p = _param(model, path)
        units = torch.full((p.shape[axis],), -1, dtype=torch.long)
        units[off:off + width] = torch.arange(width)
        refs.append(SliceRef(path, module, "param", p, axis, units))
    return refs


def _check_widths(model: nn.Module, groups: list[list[Slice]], widths) -> list[int]:
    widths = [int(w) for w in widths]
    if len(widths) != len(groups):
        raise ValueError(f"dims: widths has {len(widths)} entries, {type(model).__name__} has "
                         f"{len(groups)} coupled column groups")
    for i, (group, w) in enumerate(zip(groups, widths, strict=True)):
        if not 1 <= w <= group_width(model, group):
            raise ValueError(f"dims: widths[{i}] (group of {group[0][0]!r}) must be in "
                             f"[1, {group_width(model, group)}], got {w}")
    return widths


def plan_dims(model: nn.Module, ratio: float | None = None, criterion: str = "l2",
              seed: int = 0, widths: list[int] | None = None) -> DimPlan:
    """Kept columns of every coupled group.

    Args:
        ratio: fraction of each group's columns removed (one ratio for every group).
        widths: instead of ``ratio``, the kept width of each group, in ``model.dim_groups()``
            order (e.g. NCF: GMF, MLP user, MLP item), so groups whose columns cost different
            numbers of parameters can keep different widths.
    """
    groups = model.dim_groups()
    if (ratio is None) == (widths is None):
        raise ValueError("dims: give exactly one of ratio= and widths=")
    if widths is None:
        widths = [max(1, group_width(model, g) - int(round(ratio * group_width(model, g))))
                  for g in groups]
    widths = _check_widths(model, groups, widths)
    score_fn = GROUP_CRITERIA.get(criterion)
    gen = torch.Generator().manual_seed(seed)
    plan: DimPlan = []
    for group, k in zip(groups, widths, strict=True):
        width = group_width(model, group)
        scores = score_fn(_slice_refs(model, group, width), width, None, gen)
        plan.append((group, torch.topk(scores, k).indices.sort().values))
    return plan


def _keep_per_param(model: nn.Module, plan: DimPlan) -> dict[tuple[str, int], Tensor]:
    drop: dict[tuple[str, int], set[int]] = {}
    for group, keep in plan:
        width = group_width(model, group)
        gone = sorted(set(range(width)) - set(keep.tolist()))
        for path, axis, off in group:
            drop.setdefault((path, axis), set()).update(off + g for g in gone)
    out = {}
    for (path, axis), gone in drop.items():
        size = _param(model, path)[2].shape[axis]
        out[(path, axis)] = torch.tensor([i for i in range(size) if i not in gone],
                                         dtype=torch.long)
    return out


def apply_dims(model: nn.Module, plan: DimPlan) -> None:
    """Slice every coupled parameter in place and update the modules' size attributes."""
    keeps = _keep_per_param(model, plan)
    for (path, axis), keep in keeps.items():
        module, name, p = _param(model, path)
        new = p.detach().index_select(axis, keep.to(p.device)).clone()
        if isinstance(p, nn.Parameter):
            setattr(module, name, nn.Parameter(new, requires_grad=p.requires_grad))
        else:
            setattr(module, name, new)
    for path, _ in keeps:
        module = model.get_submodule(path.rpartition(".")[0])
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            module.embedding_dim = module.weight.shape[1]
        else:
            fix_attributes(module)


def zero_dims(model: nn.Module, plan: DimPlan) -> nn.Module:
    """A copy of ``model`` with every removed column zeroed (the masked reference)."""
    ref = copy.deepcopy(model)
    keeps = _keep_per_param(model, plan)
    with torch.no_grad():
        for (path, axis), keep in keeps.items():
            _, _, p = _param(ref, path)
            mask = torch.zeros(p.shape[axis], dtype=torch.bool)
            mask[keep] = True
            shape = [1] * p.dim()
            shape[axis] = -1
            p.mul_(mask.reshape(shape).to(p.dtype))
    return ref


def _scores(model: nn.Module, users: Tensor, items: Tensor) -> Tensor:
    fn = model.score if hasattr(model, "score") else model
    with torch.no_grad():
        return fn(users, items)


def verify_dims(masked: nn.Module, pruned: nn.Module, users: Tensor, items: Tensor,
                atol: float = 1e-5) -> float:
    """Max |difference| of scores between the masked reference and the pruned model.

    Raises:
        ValueError: the difference exceeds ``atol`` (the column coupling is wrong).
    """
    diff = float((_scores(masked, users, items) - _scores(pruned, users, items)).abs().max())
    if diff > atol:
        raise ValueError(f"dims: pruned model differs from the zeroed-column reference by {diff:.3g}")
    return diff
