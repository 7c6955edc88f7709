"""A tiny example model beside every built-in handler (the contract tests prune each one).

Each model sandwiches the handled layer between prunable producers/consumers so its channels
(or heads, or hidden units) are really removed. Factories are top-level functions, so a saved
pruned example is rebuilt by ``module:prunekit.handlers.examples:<name>``.
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.handlers.attention import PrunedMultiheadAttention
from prunekit.handlers.base import HANDLERS, HandlerExample
from prunekit.handlers import norm as _norm


class _Chain(nn.Sequential):
    """A plain ``Sequential`` (its own class, so a saved example names its builder)."""


def conv1d() -> nn.Module:
    return _Chain(nn.Conv1d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 4, 3, padding=1))


def conv2d() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))


def conv3d() -> nn.Module:
    return _Chain(nn.Conv3d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 4, 3, padding=1))


def conv_transpose1d() -> nn.Module:
    return _Chain(nn.ConvTranspose1d(3, 8, 3), nn.ReLU(), nn.ConvTranspose1d(8, 4, 3))


def conv_transpose2d() -> nn.Module:
    return _Chain(nn.ConvTranspose2d(3, 8, 3), nn.ReLU(), nn.ConvTranspose2d(8, 4, 3))


def conv_transpose3d() -> nn.Module:
    return _Chain(nn.ConvTranspose3d(3, 8, 3), nn.ReLU(), nn.ConvTranspose3d(8, 4, 3))


def linear() -> nn.Module:
    return _Chain(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def batchnorm1d() -> nn.Module:
    return _Chain(nn.Conv1d(3, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 4, 1))


def batchnorm2d() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def batchnorm3d() -> nn.Module:
    return _Chain(nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.Conv3d(8, 4, 1))


def sync_batchnorm() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), nn.SyncBatchNorm(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def instancenorm1d() -> nn.Module:
    return _Chain(nn.Conv1d(3, 8, 3, padding=1), nn.InstanceNorm1d(8, affine=True), nn.ReLU(),
                  nn.Conv1d(8, 4, 1))


def instancenorm2d() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True), nn.ReLU(),
                  nn.Conv2d(8, 4, 1))


def instancenorm3d() -> nn.Module:
    return _Chain(nn.Conv3d(3, 8, 3, padding=1), nn.InstanceNorm3d(8, affine=True), nn.ReLU(),
                  nn.Conv3d(8, 4, 1))


def layernorm() -> nn.Module:
    return _Chain(nn.Linear(6, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3))


def rmsnorm() -> nn.Module:
    return _Chain(nn.Linear(6, 16), nn.RMSNorm(16), nn.ReLU(), nn.Linear(16, 3))


def groupnorm() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def prelu() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8), nn.Conv2d(8, 4, 1))


def layernorm2d() -> nn.Module:
    return _Chain(nn.Conv2d(3, 8, 3, padding=1), _norm._TVLayerNorm2d(8), nn.ReLU(),
                  nn.Conv2d(8, 4, 1))


def embedding() -> nn.Module:
    return _Chain(nn.Embedding(20, 16), nn.ReLU(), nn.Linear(16, 3))


def embedding_bag() -> nn.Module:
    return _Chain(nn.EmbeddingBag(20, 16, mode="mean"), nn.ReLU(), nn.Linear(16, 3))


class _Recurrent(nn.Module):
    def __init__(self, cell: type) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.rnn = cell(8, 12, num_layers=2, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 6) -> (B, T, 3)
        return self.head(self.rnn(self.inp(x))[0])


def rnn() -> nn.Module:
    return _Recurrent(nn.RNN)


def gru() -> nn.Module:
    return _Recurrent(nn.GRU)


def lstm() -> nn.Module:
    return _Recurrent(nn.LSTM)


class _SelfAttention(nn.Module):
    def __init__(self, pruned: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        if pruned:  # the class a head-pruned MultiheadAttention becomes
            self.mha.__class__ = PrunedMultiheadAttention
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 6) -> (B, T, 3)
        h = self.inp(x)
        return self.head(self.mha(h, h, h, need_weights=False)[0])


def multihead_attention() -> nn.Module:
    return _SelfAttention()


def pruned_multihead_attention() -> nn.Module:
    return _SelfAttention(pruned=True)


def _image(*shape: int):
    return lambda: torch.randn(2, 3, *shape)


def _ids() -> torch.Tensor:
    return torch.randint(0, 20, (2, 5))


def _sequence() -> torch.Tensor:
    return torch.randn(2, 5, 6)


def _features() -> torch.Tensor:
    return torch.randn(4, 6)


BUILTIN_EXAMPLES: dict[type, HandlerExample] = {
    nn.Conv1d: HandlerExample(conv1d, _image(10)),
    nn.Conv2d: HandlerExample(conv2d, _image(6, 6)),
    nn.Conv3d: HandlerExample(conv3d, _image(4, 4, 4)),
    nn.ConvTranspose1d: HandlerExample(conv_transpose1d, _image(6)),
    nn.ConvTranspose2d: HandlerExample(conv_transpose2d, _image(4, 4)),
    nn.ConvTranspose3d: HandlerExample(conv_transpose3d, _image(3, 3, 3)),
    nn.Linear: HandlerExample(linear, _features),
    nn.modules.batchnorm._BatchNorm: HandlerExample(batchnorm2d, _image(6, 6)),
    nn.BatchNorm1d: HandlerExample(batchnorm1d, _image(10)),
    nn.BatchNorm2d: HandlerExample(batchnorm2d, _image(6, 6)),
    nn.BatchNorm3d: HandlerExample(batchnorm3d, _image(4, 4, 4)),
    nn.SyncBatchNorm: HandlerExample(sync_batchnorm, _image(6, 6)),
    nn.InstanceNorm1d: HandlerExample(instancenorm1d, _image(10)),
    nn.InstanceNorm2d: HandlerExample(instancenorm2d, _image(6, 6)),
    nn.InstanceNorm3d: HandlerExample(instancenorm3d, _image(4, 4, 4)),
    nn.LayerNorm: HandlerExample(layernorm, _features),
    nn.GroupNorm: HandlerExample(groupnorm, _image(6, 6)),
    nn.PReLU: HandlerExample(prelu, _image(6, 6)),
    nn.Embedding: HandlerExample(embedding, _ids),
    nn.EmbeddingBag: HandlerExample(embedding_bag, _ids),
    nn.RNN: HandlerExample(rnn, _sequence),
    nn.GRU: HandlerExample(gru, _sequence),
    nn.LSTM: HandlerExample(lstm, _sequence),
    nn.MultiheadAttention: HandlerExample(multihead_attention, _sequence),
    PrunedMultiheadAttention: HandlerExample(pruned_multihead_attention, _sequence),
}

if hasattr(nn, "RMSNorm"):
    BUILTIN_EXAMPLES[nn.RMSNorm] = HandlerExample(rmsnorm, _features)
if hasattr(_norm, "_TVLayerNorm2d"):  # torchvision's channels-first LayerNorm2d (ConvNeXt)
    BUILTIN_EXAMPLES[_norm._TVLayerNorm2d] = HandlerExample(layernorm2d, _image(6, 6))

for _cls, _example in BUILTIN_EXAMPLES.items():
    if _cls in HANDLERS:
        HANDLERS.set_example(_cls, _example)
