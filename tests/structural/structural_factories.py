"""Small models built by ``module:structural_factories:NAME`` specs in the structural tests."""

from torch import nn


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.mha(x, x, x, need_weights=False)[0])


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.rnn = nn.LSTM(8, 12, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(24, 5)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def self_attention() -> nn.Module:
    return SelfAttention()


def tagger() -> nn.Module:
    return Tagger()


def tiny_swin(v2: bool = False, num_classes: int = 5) -> nn.Module:
    """A two-stage torchvision Swin (V1 or V2 blocks) small enough for unit tests (64x64 input)."""
    from torchvision.models.swin_transformer import (
        PatchMergingV2,
        SwinTransformer,
        SwinTransformerBlockV2,
    )

    kw = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if v2 else {}
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4],
                           window_size=[4, 4], num_classes=num_classes, **kw)
