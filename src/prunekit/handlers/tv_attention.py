"""Heads of torchvision's MaxViT attention (``RelativePositionalMultiHeadAttention``).

Its forward reshapes the attention output back to the *input* width (``reshape(B, G, P, D)``),
so the inner width ``n_heads * head_dim`` must equal the input width and heads could never be
removed independently of the residual stream. After any surgery the module's class is switched
to a subclass whose forward reshapes to ``n_heads * head_dim`` instead (same parameters, same
state_dict keys). Recognised by class name so torchvision is imported only when such a module
is present.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.handlers._slicing import as_index, slice_param
from prunekit.handlers._fused_qkv import FusedQKVHandler, slice_fused_heads
from prunekit.handlers.base import HANDLERS, InternalGroup

_NAME = "RelativePositionalMultiHeadAttention"


@functools.lru_cache(maxsize=1)
def _pruned_cls() -> type:
    from torchvision.models.maxvit import RelativePositionalMultiHeadAttention as Base

    class PrunedRelativePositionalMultiHeadAttention(Base):
        """MaxViT attention whose inner width may differ from its input width."""

        def forward(self, x: Tensor) -> Tensor:
            b, g, p, _ = x.shape  # (B, G, P, D)
            h, dh = self.n_heads, self.head_dim
            q, k, v = torch.chunk(self.to_qkv(x), 3, dim=-1)
            q = q.reshape(b, g, p, h, dh).permute(0, 1, 3, 2, 4)  # (B, G, H, P, DH)
            k = k.reshape(b, g, p, h, dh).permute(0, 1, 3, 2, 4) * self.scale_factor
            v = v.reshape(b, g, p, h, dh).permute(0, 1, 3, 2, 4)
            dot = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k)
            attn = F.softmax(dot + self.get_relative_positional_bias(), dim=-1)
            out = torch.einsum("B G H I J, B G H J D -> B G H I D", attn, v)
            return self.merge(out.permute(0, 1, 3, 2, 4).reshape(b, g, p, h * dh))

    return PrunedRelativePositionalMultiHeadAttention


def is_maxvit_attention(m: nn.Module) -> bool:
    return any(c.__name__ == _NAME and c.__module__ == "torchvision.models.maxvit"
               for c in type(m).__mro__)


def _swap(m: nn.Module) -> None:
    if type(m).__name__ == _NAME:
        m.__class__ = _pruned_cls()


def prune_maxvit_heads(m: nn.Module, keep: Tensor) -> None:
    """Keep heads ``keep``: q/k/v rows of ``to_qkv``, ``merge`` columns, bias-table columns."""
    heads = as_index(keep, m.n_heads, f"{type(m).__name__} heads")
    slice_fused_heads(m.to_qkv, m.merge, heads, m.head_dim)
    slice_param(m, "relative_position_bias_table", 1, heads)
    m.n_heads = heads.numel()
    _swap(m)


class MaxViTAttentionHandler(FusedQKVHandler):
    """in: ``to_qkv`` input features; out: ``merge`` output features; internal: heads."""

    QKV, OUT = "to_qkv", "merge"

    def swap(self, m: nn.Module) -> None:
        _swap(m)

    def heads(self, m: nn.Module) -> tuple[int, int]:
        return m.n_heads, m.head_dim

    def head_params(self, m: nn.Module) -> int:
        return m.relative_position_bias_table.shape[0]  # one column per head

    def internal_groups(self, m: nn.Module) -> list[InternalGroup]:
        inner = m.n_heads * m.head_dim
        qkv = [(t, 0) for t in m.to_qkv.weight.detach().split(inner)]
        table = m.relative_position_bias_table.detach().repeat_interleave(m.head_dim, dim=1)
        slices = [*qkv, (m.merge.weight.detach(), 1), (table, 1)]
        return [InternalGroup("heads", m.n_heads, m.head_dim, slices,
                              lambda keep: prune_maxvit_heads(m, keep))]

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        self.resize_linears(m, shapes, ["to_qkv", "merge"])
        m.n_heads = m.relative_position_bias_table.shape[1]


MAXVIT_HANDLER = MaxViTAttentionHandler()
HANDLERS.add_resolver(lambda m: MAXVIT_HANDLER if is_maxvit_attention(m) else None)
