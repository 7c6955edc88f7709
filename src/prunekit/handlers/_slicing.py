"""Small tensor-surgery helpers shared by the handlers (attention, rnn, embedding).

Every helper builds a *new* ``nn.Parameter`` from an index selection and installs it with
``setattr`` so module hooks that watch attribute assignment (``nn.RNNBase.__setattr__``
refreshing ``_flat_weights``) see the change.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def as_index(keep: Tensor | list[int], size: int, what: str) -> Tensor:
    """Validate a kept-index set: 1-D, sorted, unique, inside ``[0, size)``, not empty."""
    idx = torch.as_tensor(keep, dtype=torch.long).flatten().cpu()
    if idx.numel() == 0:
        raise ValueError(f"{what}: cannot remove every channel (size {size})")
    if idx.min() < 0 or idx.max() >= size:
        raise ValueError(f"{what}: kept index out of range [0, {size})")
    if idx.unique().numel() != idx.numel():
        raise ValueError(f"{what}: kept indices contain duplicates")
    return idx.sort().values


def sliced(t: Tensor, dim: int, idx: Tensor) -> Tensor:
    """``t`` restricted to ``idx`` along ``dim`` (a contiguous copy)."""
    return torch.index_select(t.detach(), dim, idx.to(t.device)).contiguous()


def set_param(module: nn.Module, name: str, value: Tensor) -> None:
    """Replace parameter ``name`` of ``module`` by ``value`` keeping ``requires_grad``."""
    old = getattr(module, name)
    requires_grad = old.requires_grad if isinstance(old, Tensor) else True
    setattr(module, name, nn.Parameter(value, requires_grad=requires_grad))


def slice_param(module: nn.Module, name: str, dim: int, idx: Tensor) -> None:
    """Keep ``idx`` of parameter ``name`` along ``dim`` (no-op when the parameter is ``None``)."""
    p = getattr(module, name, None)
    if p is None:
        return
    set_param(module, name, sliced(p, dim, idx))


def block_rows(keep_blocks: Tensor, block: int) -> Tensor:
    """Expand kept block indices (heads, gates units) to element indices: ``b*block + [0, block)``."""
    offs = torch.arange(block, dtype=torch.long)
    return (keep_blocks.view(-1, 1) * block + offs.view(1, -1)).flatten()


def strided_rows(keep: Tensor, period: int, copies: int) -> Tensor:
    """Indices ``keep + c*period`` for ``c`` in ``range(copies)`` (gate-structured rows, q/k/v)."""
    return torch.cat([keep + c * period for c in range(copies)])


def resize_param(module: nn.Module, name: str, shape: tuple[int, ...]) -> None:
    """Give parameter/buffer ``name`` a fresh (uninitialised) tensor of ``shape`` if it differs."""
    old = getattr(module, name, None)
    if old is None or tuple(old.shape) == tuple(shape):
        return
    new = torch.empty(shape, dtype=old.dtype, device=old.device)
    if isinstance(old, nn.Parameter):
        set_param(module, name, new)
    else:
        setattr(module, name, new)
