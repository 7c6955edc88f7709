"""Handlers for BatchNorm*/SyncBatchNorm, LayerNorm, GroupNorm and InstanceNorm*.

All are channel-wise (input channel ``i`` is output channel ``i``). BatchNorm's ``|gamma|`` is the
Network Slimming criterion (Liu et al., "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017). LayerNorm computes statistics over the channels it normalises, so
removing a channel changes the others' outputs: masking is not exact (``verify`` then compares
against the pruned module itself). GroupNorm loses whole groups.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunekit.handlers.base import (
    HANDLERS,
    Handler,
    register_handler,
    resize_params,
    slice_param,
)

_STATS = ("weight", "bias", "running_mean", "running_var")


class _ChannelNorm(Handler):
    def in_out_coupled(self, m: nn.Module) -> bool:
        return True

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        return [(p, 0) for p in (getattr(m, "weight", None), getattr(m, "bias", None))
                if isinstance(p, nn.Parameter)]

    def prune_in(self, m: nn.Module, keep: Tensor) -> None:
        self.prune_out(m, keep)

    def cost(self, m: nn.Module, n_in: int | None, n_out: int | None) -> tuple[int, int]:
        n = self.out_channels(m) if n_out is None else n_out
        return n * len(self.weight_slices(m, "out")), 0


class BatchNormHandler(_ChannelNorm):
    def in_channels(self, m: nn.Module) -> int:
        return m.num_features

    out_channels = in_channels

    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        return 1 if x.dim() >= 2 else 0

    out_dim = in_dim

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        for name in _STATS:
            slice_param(m, name, 0, keep)
        m.num_features = len(keep)

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        for name in _STATS:
            if name in shapes:
                m.num_features = int(shapes[name][0])
        resize_params(m, shapes)


class InstanceNormHandler(BatchNormHandler):
    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        return x.dim() - m._get_no_batch_dim()

    out_dim = in_dim


class LayerNormHandler(_ChannelNorm):
    """Only a 1-D ``normalized_shape`` (the last axis) is prunable."""

    def in_channels(self, m: nn.Module) -> int | None:
        return m.normalized_shape[0] if len(m.normalized_shape) == 1 else None

    out_channels = in_channels

    def masking_is_exact(self, m: nn.Module) -> bool:
        return False

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 0, keep)
        slice_param(m, "bias", 0, keep)
        m.normalized_shape = (len(keep),)

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        for name in ("weight", "bias"):
            if name in shapes:
                m.normalized_shape = (int(shapes[name][0]),)
        resize_params(m, shapes)


class ChannelsFirstLayerNormHandler(LayerNormHandler):
    """LayerNorm over dim 1 of ``(N, C, H, W)`` (torchvision ConvNeXt's ``LayerNorm2d``)."""

    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        return 1

    out_dim = in_dim


class RMSNormHandler(LayerNormHandler):
    """RMS normalisation over the last axis: ``x * rsqrt(mean(x^2) + eps) * weight`` (Zhang &
    Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019).

    ``torch.nn.RMSNorm`` and the ``*RMSNorm`` classes of Hugging Face models (LLaMA, Qwen2,
    Mistral, Gemma, ...), recognised by structure: a 1-D ``weight`` and no children. Like
    LayerNorm, removing a channel changes the statistics, so masking is not exact.
    """

    def in_channels(self, m: nn.Module) -> int | None:
        w = getattr(m, "weight", None)
        if isinstance(w, Tensor) and w.dim() == 1:
            return int(w.numel())
        shape = getattr(m, "normalized_shape", None)
        return int(shape[0]) if shape is not None and len(shape) == 1 else None

    out_channels = in_channels

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 0, keep)
        if getattr(m, "normalized_shape", None) is not None:
            m.normalized_shape = (len(keep),)

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        if "weight" in shapes and getattr(m, "normalized_shape", None) is not None:
            m.normalized_shape = (int(shapes["weight"][0]),)
        resize_params(m, shapes)


def is_hf_rmsnorm(m: nn.Module) -> bool:
    """A Hugging Face-style ``*RMSNorm`` module (by structure; transformers is not imported)."""
    w = m._parameters.get("weight")
    return (type(m).__name__.endswith("RMSNorm") and isinstance(w, Tensor) and w.dim() == 1
            and not m._modules and set(m._parameters) == {"weight"})


class GroupNormHandler(_ChannelNorm):
    def in_channels(self, m: nn.Module) -> int:
        return m.num_channels

    out_channels = in_channels

    def in_granularity(self, m: nn.Module) -> int:
        return m.num_channels // m.num_groups

    out_granularity = in_granularity

    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        return 1

    out_dim = in_dim

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        per = m.num_channels // m.num_groups
        slice_param(m, "weight", 0, keep)
        slice_param(m, "bias", 0, keep)
        m.num_groups = len(keep) // per
        m.num_channels = len(keep)

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        per = m.num_channels // m.num_groups
        for name in ("weight", "bias"):
            if name in shapes:
                m.num_channels = int(shapes[name][0])
                m.num_groups = m.num_channels // per
        resize_params(m, shapes)


class PReLUHandler(_ChannelNorm):
    """Per-channel PReLU (``num_parameters > 1``, channels at dim 1); a shared slope is traced
    as an ordinary element-wise op instead (not a leaf)."""

    def is_leaf(self, m: nn.Module) -> bool:
        return m.num_parameters > 1

    def in_channels(self, m: nn.Module) -> int:
        return m.num_parameters

    out_channels = in_channels

    def in_dim(self, m: nn.Module, x: Tensor) -> int:
        return 1 if x.dim() >= 2 else 0

    out_dim = in_dim

    def prune_out(self, m: nn.Module, keep: Tensor) -> None:
        slice_param(m, "weight", 0, keep)
        m.num_parameters = len(keep)

    def weight_slices(self, m: nn.Module, dim: str) -> list[tuple[Tensor, int]]:
        return [(m.weight, 0)]

    def resize(self, m: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
        if "weight" in shapes:
            m.num_parameters = int(shapes["weight"][0])
        resize_params(m, shapes)


BATCHNORM, INSTANCENORM = BatchNormHandler(), InstanceNormHandler()
register_handler(_BatchNorm, BATCHNORM)
for _c in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
    register_handler(_c, BATCHNORM)
for _c in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
    register_handler(_c, INSTANCENORM)
register_handler(nn.LayerNorm, LayerNormHandler())
register_handler(nn.GroupNorm, GroupNormHandler())
register_handler(nn.PReLU, PReLUHandler())
RMSNORM = RMSNormHandler()
if hasattr(nn, "RMSNorm"):
    register_handler(nn.RMSNorm, RMSNORM)
HANDLERS.add_resolver(lambda m: RMSNORM if is_hf_rmsnorm(m) else None)

try:  # torchvision ConvNeXt's channels-first LayerNorm (overrides forward, so register it)
    from torchvision.models.convnext import LayerNorm2d as _TVLayerNorm2d

    register_handler(_TVLayerNorm2d, ChannelsFirstLayerNormHandler())
except ImportError:  # pragma: no cover - torchvision is optional
    pass
