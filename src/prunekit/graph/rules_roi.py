"""Label rules for region pooling (torchvision ``roi_align`` / ``roi_pool``) and ``index_put``.

Two-stage detectors pool every region of interest out of the FPN features
(``MultiScaleRoIAlign``): per level ``roi_align(features, rois)`` gives ``(K, C, ph, pw)``, and
the per-level results are written into a fresh ``zeros((num_rois, C, ph, pw))`` with
``result[idx] = pooled``. Both keep every channel where it was, so the FPN channels stay
prunable instead of being fixed as "not understood":

* ``roi_align`` / ``roi_pool``: channel ``c`` of the input is channel ``c`` of the output; the
  input's label may vary along dim 1 only (channels), never along the batch or spatial dims;
* ``index_put`` (``dst[idx] = values``) indexing leading dims whose labels do not vary: the
  destination's label is coupled with the values' label on the remaining dims. An unlabelled
  destination is a fresh intermediate (parameters and buffers are always labelled once read),
  so it takes the values' label.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from prunekit.graph.labels import align, canon, varying_dims
from prunekit.graph.rule_base import Ctx, aten, clear, combine, fix_all, flat_tensors

_ROI_OPS = {"roi_align", "roi_pool"}


def roi_pool_rule(ctx: Ctx, func, args, kwargs, out) -> None:
    x = args[0]
    lab = ctx.get(x)
    if lab is None:
        return clear(ctx, out)
    if x.dim() != 4 or not varying_dims(align(lab, 4)) <= {1}:
        return fix_all(ctx, func, args, kwargs, out, "region pooling across channel positions")
    per_channel = align(lab, 4)[:1, :, :1, :1]  # (1, C, 1, 1)
    for o in flat_tensors(out):
        same = o.dim() == 4 and o.shape[1] == x.shape[1]
        ctx.set(o, per_channel if same else None)


def index_put_rule(ctx: Ctx, func, args, kwargs, out) -> None:
    dst, indices = args[0], args[1]
    values = args[2] if len(args) > 2 else kwargs["values"]
    n_idx = len(indices)
    if any(t is not None and t.dtype in (torch.bool, torch.uint8) for t in indices) \
            or values.dim() > dst.dim():
        return fix_all(ctx, func, args, kwargs, out, "index_put with a mask or broadcast")
    d_lab, v_lab = ctx.get(dst), ctx.get(values)
    rest = tuple(dst.shape[n_idx:])  # dims written as a whole: values broadcast onto them
    items: list[tuple[tuple[int, ...], Tensor | None]] = []
    if d_lab is not None:
        full = align(d_lab, dst.dim())
        if any(d < n_idx for d in varying_dims(full)):
            return fix_all(ctx, func, args, kwargs, out, "index_put into indexed channel dims")
        items.append((rest, full[(0,) * n_idx]))
    if v_lab is not None:
        k = min(values.dim(), len(rest))  # trailing dims of values line up with ``rest``
        v_full = align(v_lab, values.dim())
        if any(d < values.dim() - k for d in varying_dims(v_full)):
            return fix_all(ctx, func, args, kwargs, out, "index_put values vary on indexed dims")
        lead = values.dim() - k
        items.append((tuple(values.shape[lead:]), v_full[(0,) * lead]))
    if not items:
        return clear(ctx, out)
    lab = combine(ctx, items, rest, ctx.why(func, "index_put couples written channels"))
    lab = None if lab is None else canon(lab.reshape((1,) * n_idx + tuple(lab.shape)))
    for o in [dst, *flat_tensors(out)]:
        ctx.set(o, lab)


def extra_rule(packet: Any):
    """The rule for ``packet`` defined here, or ``None``."""
    if packet in (aten.index_put, aten.index_put_, aten._index_put_impl_):
        return index_put_rule
    ns, name = getattr(packet, "_qualified_op_name", "::").split("::", 1)
    if ns == "torchvision" and name in _ROI_OPS:
        return roi_pool_rule
    return None
