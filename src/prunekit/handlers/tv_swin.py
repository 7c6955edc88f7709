"""Heads and width of torchvision's Swin attention (``ShiftedWindowAttention`` and ``...V2``).

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

from prunekit.handlers._slicing import as_index, block_rows, slice_param, strided_rows
from prunekit.handlers.base import HANDLERS, HandlerBase, InternalGroup, resize_params

_MODULE = "torchvision.models.swin_transformer"
_NAMES = ("ShiftedWindowAttention", "ShiftedWindowAttentionV2")


def is_swin_attention(m: nn.Module) -> bool:
    return any(c.__name__ in _NAMES and c.__module__ == _MODULE for c in type(m).__mro__)


def _is_v2(m: nn.Module) -> bool:
    return hasattr(m, "logit_scale") and hasattr(m, "cpb_mlp")


def _shift_mask(pad_h: int, pad_w: int, window: list[int], shift: list[int],
                like: Tensor) -> Tensor:
    """Additive mask ``(num_windows, N, N)``: -100 between tokens of different shifted regions.

    A row/column belongs to region 0, 1 or 2 depending on whether it lies before the last
    window, in the last window before the shift, or in the wrapped-around shift strip.
    """
    def regions(size: int, win: int, s: int) -> Tensor:
        idx = torch.arange(size, device=like.device)
        if s == 0:
            return torch.zeros_like(idx)
        return (idx >= size - win).long() + (idx >= size - s).long()

    rh, rw = regions(pad_h, window[0], shift[0]), regions(pad_w, window[1], shift[1])
    reg = (rh[:, None] * 3 + rw[None, :]).to(like.dtype)  # (pad_H, pad_W)
    reg = reg.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    reg = reg.permute(0, 2, 1, 3).reshape(-1, window[0] * window[1])  # (nW, N)
    diff = reg[:, None, :] - reg[:, :, None]
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


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


def window_attention(m: nn.Module, x: Tensor) -> Tensor:
    """Shifted-window attention of ``m`` with widths read from its tensors.

    Args:
        m: a (pruned) Swin attention module.
        x: ``(B, H, W, C_in)``.

    Returns:
        ``(B, H, W, C_out)`` with ``C_out = m.proj.out_features``.
    """
    b, h, w, c = x.shape
    win = list(m.window_size)
    pad_r, pad_b = (win[1] - w % win[1]) % win[1], (win[0] - h % win[0]) % win[0]
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    ph, pw = x.shape[1], x.shape[2]
    shift = [0 if win[0] >= ph else m.shift_size[0], 0 if win[1] >= pw else m.shift_size[1]]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    nwh, nww = ph // win[0], pw // win[1]
    n = win[0] * win[1]
    x = x.view(b, nwh, win[0], nww, win[1], c).permute(0, 1, 3, 2, 4, 5).reshape(-1, n, c)
    attn, v, inner = _attend(m, x, m.get_relative_position_bias())
    if sum(shift) > 0:
        heads = m.num_heads
        mask = _shift_mask(ph, pw, win, shift, x)  # (nW, N, N)
        attn = attn.view(b, nwh * nww, heads, n, n) + mask[None, :, None]
        attn = attn.view(-1, heads, n, n)
    attn = F.dropout(F.softmax(attn, dim=-1), p=m.attention_dropout, training=m.training)
    out = (attn @ v).transpose(1, 2).reshape(-1, n, inner)
    out = F.dropout(F.linear(out, m.proj.weight, m.proj.bias), p=m.dropout, training=m.training)
    co = out.shape[-1]
    out = out.view(b, nwh, nww, win[0], win[1], co).permute(0, 1, 3, 2, 4, 5)
    out = out.reshape(b, ph, pw, co)
    if sum(shift) > 0:
        out = torch.roll(out, shifts=(shift[0], shift[1]), dims=(1, 2))
    return out[:, :h, :w, :].contiguous()


@functools.lru_cache(maxsize=2)
def _pruned_cls(v2: bool) -> type:
    from torchvision.models import swin_transformer as sw

    base = sw.ShiftedWindowAttentionV2 if v2 else sw.ShiftedWindowAttention

    def forward(self, x: Tensor) -> Tensor:
        return window_attention(self, x)

    doc = f"{base.__name__} whose head count and widths may differ from its input width."
    name = f"Pruned{base.__name__}"
    return type(name, (base,), {"forward": forward, "__doc__": doc, "__module__": __name__,
                                "__qualname__": name})


def __getattr__(name: str) -> type:
    """The pruned classes by name (so a pickled pruned model finds them)."""
    for v2 in (False, True):
        if name == f"Pruned{_NAMES[int(v2)]}":
            return _pruned_cls(v2)
    raise AttributeError(name)


def _swap(m: nn.Module) -> None:
    if type(m).__module__ == _MODULE and type(m).__name__ in _NAMES:
        m.__class__ = _pruned_cls(_is_v2(m))


def _head_dim(m: nn.Module) -> int:
    return m.qkv.weight.shape[0] // 3 // m.num_heads


def prune_swin_heads(m: nn.Module, keep: Tensor) -> None:
    """Keep heads ``keep``: q/k/v rows of ``qkv``, ``proj`` columns, per-head bias/scale."""
    heads = as_index(keep, m.num_heads, f"{type(m).__name__} heads")
    inner, hd = m.qkv.weight.shape[0] // 3, _head_dim(m)
    _swap(m)
    elems = block_rows(heads, hd)
    rows = strided_rows(elems, inner, 3)
    slice_param(m.qkv, "weight", 0, rows)
    slice_param(m.qkv, "bias", 0, rows)
    m.qkv.out_features = rows.numel()
    slice_param(m.proj, "weight", 1, elems)
    m.proj.in_features = elems.numel()
    if _is_v2(m):
        last = m.cpb_mlp[-1]
        slice_param(last, "weight", 0, heads)
        slice_param(last, "bias", 0, heads)
        last.out_features = heads.numel()
        slice_param(m, "logit_scale", 0, heads)
    else:
        slice_param(m, "relative_position_bias_table", 1, heads)
    m.num_heads = heads.numel()


class SwinAttentionHandler(HandlerBase):
    """in: ``qkv`` input features; out: ``proj`` output features; internal: heads."""

    def in_channels(self, m: nn.Module) -> int:
        return m.qkv.in_features

    def out_channels(self, m: nn.Module) -> int:
        return m.proj.out_features

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        idx = as_index(keep, m.qkv.in_features, f"{type(m).__name__} input")
        _swap(m)
        slice_param(m.qkv, "weight", 1, idx)
        m.qkv.in_features = idx.numel()

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        idx = as_index(keep, m.proj.out_features, f"{type(m).__name__} output")
        _swap(m)
        slice_param(m.proj, "weight", 0, idx)
        slice_param(m.proj, "bias", 0, idx)
        m.proj.out_features = idx.numel()

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        if dim == "in":
            return [(m.qkv.weight, 1)]
        out = [(m.proj.weight, 0)]
        return out + ([(m.proj.bias, 0)] if m.proj.bias is not None else [])

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
        for child in children:
            sub = {k[len(child) + 1:]: v for k, v in shapes.items() if k.startswith(child + ".")}
            if sub:
                lin = m.get_submodule(child)
                resize_params(lin, sub)
                lin.out_features, lin.in_features = lin.weight.shape
        resize_params(m, shapes)
        _swap(m)
        if _is_v2(m):
            m.num_heads = m.cpb_mlp[-1].out_features
        else:
            m.num_heads = m.relative_position_bias_table.shape[1]


SWIN_HANDLER = SwinAttentionHandler()
HANDLERS.add_resolver(lambda m: SWIN_HANDLER if is_swin_attention(m) else None)
