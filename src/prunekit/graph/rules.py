"""Per-operator label propagation rules (ATen level).

Each rule receives the op, its real arguments and outputs, and sets the outputs' channel labels
(see :mod:`prunekit.graph.labels`). Rules are small and conservative: whenever an operation
mixes values across a dimension that carries channel labels in a way we cannot mirror by slicing
(a reduction over channels, a matmul contracting channels, an op we do not know), the ids
involved are *fixed* — the group becomes unprunable with a stated reason — so the engine can
refuse a group but never produce a wrong model.

Categories:
    pointwise   every op tagged ``torch.Tag.pointwise`` (add, mul, activations, where, ...):
                broadcast, couple the ids that meet at the same element.
    movement    view/reshape/permute/transpose/slice/select/cat/split/index/pad/...: the same
                op is run on the label tensor itself, so any data movement is mirrored exactly
                (this covers flatten-after-conv, channel shuffle, pixel shuffle, concat offsets).
    identity    clone/_to_copy/detach/...: label unchanged.
    reduction   sum/mean/amax/var/norm/...: fine over non-channel dims, fixes channels otherwise.
    dim-local   softmax/cumsum/sort/topk along one dim: same.
    spatial     pooling/upsampling/padding/layer_norm over the last k dims: same.
    affine      functional batch norm / prelu: per-channel vectors at dim 1.
    matmul      mm/bmm/addmm/baddbmm: channels may ride on batch/row/column dims, never on the
                contracted dim.
    unknown     anything else that touches labels: fix them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from prunekit.graph.guards import guard
from prunekit.graph.labels import canon, expand_full, varying_dims
from prunekit.graph.rule_base import (  # noqa: F401  (flat_tensors: part of this module's API)
    Ctx, Rule, _arg, _items, _is_view, aten, clear, combine, fix_all, flat_tensors,
)
from prunekit.graph.rules_roi import extra_rule  # index_put, roi_align

def pointwise(ctx: Ctx, func, args, kwargs, out) -> None:
    ins = flat_tensors(args) + flat_tensors(kwargs)
    outs = flat_tensors(out)
    if not outs:
        return
    why = ctx.why(func, "element-wise op couples these channels")
    lab = combine(ctx, _items(ctx, ins), tuple(outs[0].shape), why)
    inplace = torch.Tag.inplace in func.tags or func is aten.copy_.default
    if inplace and args and isinstance(args[0], Tensor) and _is_view(args[0]):
        old = ctx.get(args[0])
        same = (old is None and lab is None) or (
            old is not None and lab is not None and old.shape == lab.shape and torch.equal(old, lab))
        if not same:
            fix_all(ctx, func, args, kwargs, out, "in-place write into a view")
            return
    for o in outs:
        ctx.set(o, lab if lab is None or lab.dim() <= o.dim() else None)


# ---------------------------------------------------------------- movement (run on labels)
_NO_LABEL = object()


def movement(ctx: Ctx, func, args, kwargs, out) -> None:
    packet = func.overloadpacket
    if not guard(ctx, func, args, kwargs, out):
        return
    src = args[0]
    if isinstance(src, (list, tuple)):  # cat / stack
        labs = [ctx.get(t) for t in src]
        if all(lab is None for lab in labs):
            return clear(ctx, out)
        new0 = [expand_full(lab, t.shape) for lab, t in zip(labs, src, strict=True)]
    else:
        lab = ctx.get(src)
        if lab is None:
            return clear(ctx, out)
        new0 = expand_full(lab, src.shape)
    if packet in (aten.view, aten._unsafe_view, aten.reshape):
        res = new0.reshape(args[1])
    elif packet is aten.constant_pad_nd:
        res = func(new0, args[1], 0)
    else:
        res = func(new0, *args[1:], **kwargs)
    outs, labs = flat_tensors(out), flat_tensors(res)
    if len(outs) != len(labs):
        return fix_all(ctx, func, args, kwargs, out, "label mirror failed")
    if any(o.numel() == 0 for o in outs):  # an empty result carries no labels to follow
        return fix_all(ctx, func, args, kwargs, out, "channels flow into an empty tensor "
                                                     "(e.g. no detections): positions unknown")
    for o, r in zip(outs, labs, strict=True):
        ctx.set(o, canon(r) if tuple(r.shape) == tuple(o.shape) else None)


def identity(ctx: Ctx, func, args, kwargs, out) -> None:
    lab = ctx.get(args[0])
    for o in flat_tensors(out):
        ctx.set(o, lab if o.shape == args[0].shape else None)


# ---------------------------------------------------------------- reductions and friends
def _dims(dim: Any, ndim: int) -> set[int]:
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return set(range(ndim))
    dims = dim if isinstance(dim, (list, tuple)) else [dim]
    return {int(d) % max(ndim, 1) for d in dims}


def reduction(ctx: Ctx, func, args, kwargs, out) -> None:
    x = args[0]
    lab = ctx.get(x)
    if lab is None:
        return clear(ctx, out)
    has_dim = any(a.name == "dim" for a in func._schema.arguments)
    rdims = _dims(_arg(func, args, kwargs, "dim") if has_dim else None, x.dim())
    if varying_dims(lab) & rdims:
        ctx.uf.fix(lab, ctx.why(func, "reduces over a channel dim"))
        return clear(ctx, out)
    keep = bool(_arg(func, args, kwargs, "keepdim", False))
    if not keep:
        idx = tuple(0 if d in rdims else slice(None) for d in range(x.dim()))
        lab = lab[idx]
    for o in flat_tensors(out):
        ctx.set(o, lab if lab.dim() == o.dim() else None)


def dim_local(ctx: Ctx, func, args, kwargs, out) -> None:
    x = args[0]
    lab = ctx.get(x)
    if lab is None:
        return clear(ctx, out)
    d = _dims(_arg(func, args, kwargs, "dim", -1), x.dim())
    if varying_dims(lab) & d:
        ctx.uf.fix(lab, ctx.why(func, "mixes values along a channel dim"))
        return clear(ctx, out)
    for o in flat_tensors(out):
        ctx.set(o, lab if o.dim() == x.dim() else None)


def spatial(k: int | None) -> Rule:
    """Ops that mix values only within the last ``k`` dims (pooling, upsampling, ...)."""

    def rule(ctx: Ctx, func, args, kwargs, out) -> None:
        x = args[0]
        others = [t for t in flat_tensors(args[1:]) if ctx.get(t) is not None]
        lab = ctx.get(x)
        n = len(args[1]) if k is None else k  # native_layer_norm: normalized_shape
        if lab is None and not others:
            return clear(ctx, out)
        if others or (varying_dims(lab) & set(range(x.dim() - n, x.dim()))):
            return fix_all(ctx, func, args, kwargs, out, "mixes values along a channel dim")
        outs = flat_tensors(out)
        for i, o in enumerate(outs):
            ctx.set(o, lab if o.dim() == x.dim() and (i == 0 or o.shape == outs[0].shape) else None)

    return rule


def affine(ctx: Ctx, func, args, kwargs, out) -> None:
    """Functional batch norm / prelu: 1-D vectors apply along dim 1 of the input."""
    x = args[0]
    items = [(tuple(x.shape), ctx.get(x))]
    for v in flat_tensors(args[1:]):
        if v.dim() == 1 and x.dim() >= 2 and v.numel() > 1:
            shape = (1, v.numel()) + (1,) * (x.dim() - 2)
            lab = ctx.get(v)
            items.append((shape, None if lab is None else lab.reshape(shape)))
    lab = combine(ctx, items, tuple(x.shape), ctx.why(func, "per-channel affine op"))
    outs = flat_tensors(out)
    for i, o in enumerate(outs):
        ctx.set(o, lab if i == 0 else None)


def matmul(ctx: Ctx, func, args, kwargs, out) -> None:
    packet = func.overloadpacket
    bias = None
    if packet in (aten.addmm, aten.baddbmm):
        bias, a, b = args[0], args[1], args[2]
    else:
        a, b = args[0], args[1]
    la, lb = ctx.get(a), ctx.get(b)
    lbias = ctx.get(bias) if bias is not None else None
    if la is None and lb is None and lbias is None:
        return clear(ctx, out)
    if (la is not None and (a.dim() - 1) in varying_dims(la)) or (
            lb is not None and (b.dim() - 2) in varying_dims(lb)):
        return fix_all(ctx, func, args, kwargs, out, "contracts a channel dim (matmul)")
    o = flat_tensors(out)[0]
    sa = tuple(a.shape[:-1]) + (1,)
    sb = tuple(b.shape[:-2]) + (1, b.shape[-1])
    items = [(sa, None if la is None else la.narrow(-1, 0, 1) if la.shape[-1] > 1 else la),
             (sb, None if lb is None else lb.narrow(-2, 0, 1) if lb.shape[-2] > 1 else lb)]
    if bias is not None:
        items.append((tuple(bias.shape), lbias))
    lab = combine(ctx, items, tuple(o.shape), ctx.why(func, "matmul"))
    ctx.set(o, lab)


def as_strided(ctx: Ctx, func, args, kwargs, out) -> None:
    """Memory-format fix-ups (same shape, e.g. in adaptive pooling) keep the label."""
    o = flat_tensors(out)[0]
    if tuple(o.shape) == tuple(args[0].shape):
        lab = ctx.get(args[0])
        return ctx.set(o, lab)
    unknown(ctx, func, args, kwargs, out)


def unknown(ctx: Ctx, func, args, kwargs, out) -> None:
    fix_all(ctx, func, args, kwargs, out, "operation not understood on a channel dim")


def noop(ctx: Ctx, func, args, kwargs, out) -> None:
    """fill_/zero_ and friends: the tensor keeps its label."""


_MOVEMENT = [
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "unsqueeze",
    "squeeze", "slice", "select", "narrow", "split", "split_with_sizes", "unbind", "flip", "roll",
    "repeat", "index", "index_select", "gather", "pixel_shuffle", "pixel_unshuffle",
    "channel_shuffle", "native_channel_shuffle", "constant_pad_nd", "cat", "stack", "unfold",
    "movedim", "swapaxes", "diagonal", "embedding", "repeat_interleave", "take_along_dim",
    "_reshape_alias", "chunk", "tensor_split", "unflatten", "flatten", "hsplit", "vsplit",
    "expand_as", "view_as", "reshape_as", "tile", "rot90",
]
_IDENTITY = ["clone", "contiguous", "detach", "alias", "_to_copy", "to", "lift_fresh",
             "lift_fresh_copy", "_copy", "dropout", "native_dropout", "feature_dropout",
             "alpha_dropout", "_conj", "resolve_conj", "resolve_neg", "type_as",
             "_assert_tensor_metadata"]
_REDUCTION = ["sum", "mean", "amax", "amin", "var", "std", "var_mean", "std_mean", "argmax",
              "argmin", "norm", "linalg_vector_norm", "logsumexp", "prod", "any", "all",
              "nansum", "nanmean", "count_nonzero", "median", "nanmedian", "mode", "aminmax"]
_DIM_LOCAL = ["_softmax", "_log_softmax", "softmax", "log_softmax", "cumsum", "cumprod",
              "logcumsumexp", "sort", "topk", "cummax", "cummin", "kthvalue", "_safe_softmax",
              "argsort"]
_SPATIAL = ["max_pool{}d", "max_pool{}d_with_indices", "avg_pool{}d", "adaptive_avg_pool{}d",
            "_adaptive_avg_pool{}d", "adaptive_max_pool{}d", "upsample_nearest{}d",
            "_upsample_nearest_exact{}d", "reflection_pad{}d", "replication_pad{}d",
            "lp_pool{}d", "fractional_max_pool{}d"]
_SPATIAL_FIXED = {"upsample_bilinear2d": 2, "_upsample_bilinear2d_aa": 2, "upsample_bicubic2d": 2,
                  "_upsample_bicubic2d_aa": 2, "upsample_linear1d": 1, "upsample_trilinear3d": 3,
                  "grid_sampler_2d": 2, "grid_sampler_3d": 3, "_pdist_forward": 1,
                  "im2col": 2, "col2im": 2}
_AFFINE = ["_native_batch_norm_legit_no_training", "native_batch_norm", "_native_batch_norm_legit",
           "_prelu_kernel", "prelu", "batch_norm"]
_POINTWISE_EXTRA = ["hardswish", "hardswish_", "mish_", "gelu_", "threshold", "threshold_",
                    "rrelu_with_noise", "rrelu_with_noise_", "log_sigmoid_forward", "glu_backward",
                    "softshrink", "hardshrink", "_conj_physical", "nan_to_num", "nan_to_num_",
                    "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_",
                    "hardtanh", "hardtanh_", "silu", "silu_", "elu", "elu_", "relu", "relu_",
                    "leaky_relu", "leaky_relu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
                    "masked_fill", "masked_fill_", "lerp", "lerp_", "addcmul", "addcdiv"]
_MATMUL = ["mm", "bmm", "addmm", "baddbmm"]
_NOOP = ["fill_", "zero_", "normal_", "uniform_", "bernoulli_", "set_", "random_"]


def _packet(name: str):
    return getattr(aten, name, None)


def build_table() -> dict[Any, Rule]:
    table: dict[Any, Rule] = {}

    def put(names, rule):
        for n in names:
            p = _packet(n)
            if p is not None:
                table[p] = rule

    put(_MOVEMENT, movement)
    put(_IDENTITY, identity)
    put(_REDUCTION, reduction)
    put(_DIM_LOCAL, dim_local)
    for k in (1, 2, 3):
        put([s.format(k) for s in _SPATIAL], spatial(k))
    for n, k in _SPATIAL_FIXED.items():
        put([n], spatial(k) if n not in ("im2col", "col2im", "_pdist_forward") else unknown)
    put(["native_layer_norm", "layer_norm"], spatial(None))
    put(_AFFINE, affine)
    put(_MATMUL, matmul)
    put(_POINTWISE_EXTRA, pointwise)
    put(["as_strided", "as_strided_"], as_strided)
    put(_NOOP, noop)
    return table


RULES = build_table()


def rule_for(func) -> Rule:
    """The propagation rule for an ATen op overload."""
    packet = func.overloadpacket
    if packet in (aten.max, aten.min) and any(a.name == "other" for a in func._schema.arguments):
        return pointwise
    r = RULES.get(packet)
    if r is None:
        r = extra_rule(packet)
    if r is not None:
        return r
    if torch.Tag.pointwise in func.tags or func is aten.copy_.default:
        return pointwise
    if torch.Tag.inplace in func.tags:
        base = _packet(packet.__name__.rstrip("_"))
        if base is not None and any(torch.Tag.pointwise in getattr(base, o).tags
                                    for o in base.overloads()):
            return pointwise
    return unknown
