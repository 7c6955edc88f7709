"""Heads and width of torchvision's Swin attention (``ShiftedWindowAttention``, ``...V2``, and
the video ``ShiftedWindowAttention3d``).

Both classes pass ``self.qkv.weight`` / ``self.proj.weight`` to the functional
``shifted_window_attention``, which derives the head width as ``C // num_heads`` from the
*input* width ``C`` and reshapes the attention output back to ``C``. Heads can therefore never
be removed, nor the residual width changed, through the stock forward. The whole attention
module is one leaf here: its embedding width is exposed as in/out channels (``qkv`` inputs,
``proj`` outputs) so the residual stream stays coupled, and its heads are an internal group.

After any surgery the module's class is switched to a subclass whose forward
(:func:`window_attention`) takes the head width from the ``qkv`` weight (``inner = rows / 3``,
``head_dim = inner / num_heads``) and the output width from ``proj``; parameters and
state_dict keys are unchanged. V2 specifics kept: the key third of ``qkv.bias`` is ignored
(zeroed at run time), cosine attention scaled by ``exp(clamp(logit_scale, log 100))`` with one
``logit_scale`` per head, and the relative position bias comes from ``cpb_mlp`` whose last
Linear has one output row per head. Recognised by class name, so torchvision is imported only
when such a module is present.

Heads: Michel et al., "Are Sixteen Heads Really Better than One?", NeurIPS 2019.
Swin: Liu et al., ICCV 2021; Swin V2: Liu et al., CVPR 2022.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.handlers._slicing import as_index, slice_param
from prunekit.handlers._fused_qkv import FusedQKVHandler, slice_fused_heads
from prunekit.handlers.base import HANDLERS, InternalGroup

_BASES = {"ShiftedWindowAttention": "torchvision.models.swin_transformer",
          "ShiftedWindowAttentionV2": "torchvision.models.swin_transformer",
          "ShiftedWindowAttention3d": "torchvision.models.video.swin_transformer"}


def _base_of(cls: type) -> type | None:
    return next((c for c in cls.__mro__ if _BASES.get(c.__name__) == c.__module__), None)


def is_swin_attention(m: nn.Module) -> bool:
    return _base_of(type(m)) is not None


def _is_v2(m: nn.Module) -> bool:
    return hasattr(m, "logit_scale") and hasattr(m, "cpb_mlp")


def _shift_mask(padded: list[int], window: list[int], shift: list[int], like: Tensor) -> Tensor:
    """Additive mask ``(num_windows, N, N)``: -100 between tokens of different shifted regions.

    Along each spatial dim a position belongs to region 0, 1 or 2: before the last window, in
    the last window before the shift, or in the wrapped-around shift strip (one region when
    that dim is not shifted); a token's region is the combination over dims.
    """
    k = len(padded)
    reg = torch.zeros(padded, dtype=torch.long, device=like.device)
    for i in range(k):
        if shift[i] == 0:
            continue
        idx = torch.arange(padded[i], device=like.device)
        r = (idx >= padded[i] - window[i]).long() + (idx >= padded[i] - shift[i]).long()
        reg = reg + r.view([-1 if j == i else 1 for j in range(k)]) * 3 ** (k - 1 - i)
    reg = _partition(reg.to(like.dtype)[None, ..., None], window)[..., 0]  # (nW, N)
    diff = reg[:, None, :] - reg[:, :, None]
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


def _partition(x: Tensor, window: list[int]) -> Tensor:
    """``(B, P1..Pk, C)`` -> ``(B * nW, w1*..*wk, C)`` windows, in torchvision's order."""
    b, sizes, c = x.shape[0], x.shape[1:-1], x.shape[-1]
    k = len(window)
    split = [v for i in range(k) for v in (sizes[i] // window[i], window[i])]
    x = x.view(b, *split, c)
    order = [0, *(1 + 2 * i for i in range(k)), *(2 + 2 * i for i in range(k)), 2 * k + 1]
    return x.permute(order).reshape(-1, math.prod(window), c)


def _merge(x: Tensor, b: int, padded: list[int], window: list[int]) -> Tensor:
    """Inverse of :func:`_partition` for ``x`` ``(B * nW, N, C_out)``."""
    k = len(window)
    counts = [padded[i] // window[i] for i in range(k)]
    x = x.view(b, *counts, *window, x.shape[-1])
    order = [0, *(v for i in range(k) for v in (1 + i, 1 + k + i)), 2 * k + 1]
    return x.permute(order).reshape(b, *padded, x.shape[-1])


def _attend(m: nn.Module, x: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, int]:
    """Attention logits ``(B*nW, heads, N, N)``, values ``(B*nW, heads, N, hd)`` and the inner
    width for windowed tokens ``x`` ``(B*nW, N, C_in)``."""
    heads = m.num_heads
    inner = m.qkv.weight.shape[0] // 3
    hd = inner // heads
    qkv_bias = m.qkv.bias
    v2 = _is_v2(m)
    if v2 and qkv_bias is not None:  # V2 never uses a key bias
        qkv_bias = torch.cat([qkv_bias[:inner], torch.zeros_like(qkv_bias[inner:2 * inner]),
                              qkv_bias[2 * inner:]])
    bw, n = x.shape[:2]
    qkv = F.linear(x, m.qkv.weight, qkv_bias).reshape(bw, n, 3, heads, hd)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B*nW, heads, N, hd)
    if v2:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(m.logit_scale, max=math.log(100.0)).exp()
    else:
        attn = (q * hd ** -0.5) @ k.transpose(-2, -1)
    return attn + bias, v, inner


def _windows(m: nn.Module, sizes: list[int]) -> tuple[list[int], list[int], list[int], Tensor]:
    """Window, shift, padding and relative position bias for an input of spatial ``sizes``,
    adapted to small inputs as torchvision does (2-D: no shift when one window covers the padded
    dim; video: the window shrinks to the input)."""
    win, shift = list(m.window_size), list(m.shift_size)
    if len(sizes) == 3:
        for i in range(3):
            if sizes[i] <= win[i]:
                win[i], shift[i] = sizes[i], 0
        bias = m.get_relative_position_bias(win)
    else:
        bias = m.get_relative_position_bias()
    pads = [(win[i] - sizes[i] % win[i]) % win[i] for i in range(len(sizes))]
    if len(sizes) == 2:
        shift = [0 if win[i] >= sizes[i] + pads[i] else shift[i] for i in range(2)]
    return win, shift, pads, bias


def window_attention(m: nn.Module, x: Tensor) -> Tensor:
    """Shifted-window attention of ``m`` with widths read from its tensors.

    Args:
        m: a (pruned) Swin attention module (2-D or video).
        x: ``(B, H, W, C_in)`` or ``(B, T, H, W, C_in)``.

    Returns:
        The same layout with ``C_out = m.proj.out_features`` channels.
    """
    b, sizes = x.shape[0], list(x.shape[1:-1])
    k = len(sizes)
    win, shift, pads, bias = _windows(m, sizes)
    x = F.pad(x, [0, 0] + [p for i in reversed(range(k)) for p in (0, pads[i])])
    padded = list(x.shape[1:-1])
    dims = tuple(range(1, k + 1))
    if sum(shift) > 0:
        x = torch.roll(x, shifts=tuple(-s for s in shift), dims=dims)
    x = _partition(x, win)  # (B*nW, N, C_in)
    attn, v, inner = _attend(m, x, bias)
    if sum(shift) > 0:
        heads, n = m.num_heads, x.shape[1]
        mask = _shift_mask(padded, win, shift, x)  # (nW, N, N)
        attn = attn.view(b, mask.shape[0], heads, n, n) + mask[None, :, None]
        attn = attn.view(-1, heads, n, n)
    attn = F.dropout(F.softmax(attn, dim=-1), p=m.attention_dropout, training=m.training)
    out = (attn @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], inner)
    out = F.dropout(F.linear(out, m.proj.weight, m.proj.bias), p=m.dropout, training=m.training)
    out = _merge(out, b, padded, win)
    if sum(shift) > 0:
        out = torch.roll(out, shifts=tuple(shift), dims=dims)
    return out[(slice(None), *(slice(0, s) for s in sizes))].contiguous()


@functools.lru_cache(maxsize=4)
def _pruned_cls(base: type) -> type:
    def forward(self, x: Tensor) -> Tensor:
        return window_attention(self, x)

    doc = f"{base.__name__} whose head count and widths may differ from its input width."
    name = f"Pruned{base.__name__}"
    return type(name, (base,), {"forward": forward, "__doc__": doc, "__module__": __name__,
                                "__qualname__": name})


def __getattr__(name: str) -> type:
    """The pruned classes by name (so a pickled pruned model finds them)."""
    base = name.removeprefix("Pruned")
    if name.startswith("Pruned") and base in _BASES:
        import importlib

        return _pruned_cls(getattr(importlib.import_module(_BASES[base]), base))
    raise AttributeError(name)


def _swap(m: nn.Module) -> None:
    cls = type(m)
    if _BASES.get(cls.__name__) == cls.__module__:
        m.__class__ = _pruned_cls(cls)


def _head_dim(m: nn.Module) -> int:
    return m.qkv.weight.shape[0] // 3 // m.num_heads


def prune_swin_heads(m: nn.Module, keep: Tensor) -> None:
    """Keep heads ``keep``: q/k/v rows of ``qkv``, ``proj`` columns, per-head bias/scale."""
    heads = as_index(keep, m.num_heads, f"{type(m).__name__} heads")
    hd = _head_dim(m)
    _swap(m)
    slice_fused_heads(m.qkv, m.proj, heads, hd)
    if _is_v2(m):
        last = m.cpb_mlp[-1]
        slice_param(last, "weight", 0, heads)
        slice_param(last, "bias", 0, heads)
        last.out_features = heads.numel()
        slice_param(m, "logit_scale", 0, heads)
    else:
        slice_param(m, "relative_position_bias_table", 1, heads)
    m.num_heads = heads.numel()


class SwinAttentionHandler(FusedQKVHandler):
    """in: ``qkv`` input features; out: ``proj`` output features; internal: heads."""

    QKV, OUT = "qkv", "proj"

    def swap(self, m: nn.Module) -> None:
        _swap(m)

    def heads(self, m: nn.Module) -> tuple[int, int]:
        return m.num_heads, _head_dim(m)

    def head_params(self, m: nn.Module) -> int:
        """V2: a ``cpb_mlp`` output row and a ``logit_scale``; V1: a bias-table column."""
        if _is_v2(m):
            last = m.cpb_mlp[-1]
            return last.in_features + (last.bias is not None) + 1
        return m.relative_position_bias_table.shape[0]

    def internal_groups(self, m: nn.Module) -> list[InternalGroup]:
        """Heads, scored by their q/k/v rows and ``proj`` columns (the bias tables are
        logit offsets, not comparable in scale, and are left out of the score)."""
        inner = m.qkv.weight.shape[0] // 3
        slices = [(t, 0) for t in m.qkv.weight.detach().split(inner)]
        slices.append((m.proj.weight.detach(), 1))
        return [InternalGroup("heads", m.num_heads, _head_dim(m), slices,
                              lambda keep: prune_swin_heads(m, keep))]

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        """Match saved shapes (``pk.load``); ``num_heads`` follows the per-head tensors."""
        children = ["qkv", "proj"]
        if _is_v2(m):
            children.append(f"cpb_mlp.{len(m.cpb_mlp) - 1}")
        self.resize_linears(m, shapes, children)
        if _is_v2(m):
            m.num_heads = m.cpb_mlp[-1].out_features
        else:
            m.num_heads = m.relative_position_bias_table.shape[1]


SWIN_HANDLER = SwinAttentionHandler()
HANDLERS.add_resolver(lambda m: SWIN_HANDLER if is_swin_attention(m) else None)
