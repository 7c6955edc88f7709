"""Small models built by ``module:s2_factories:NAME`` specs in the structural2 tests."""

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
