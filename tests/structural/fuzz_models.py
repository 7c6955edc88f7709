"""Random architectures for fuzzing the structural engine (built from an integer seed).

Image blocks: convs (plain, grouped, depthwise), residuals (some in place), concat,
split/chunk, SE gates, three kinds of channel shuffle (``F.channel_shuffle``,
``nn.ChannelShuffle``, the ``view``/``transpose`` idiom with either factor larger), arithmetic
on a size read as a Python number (``** -0.5``, ``math.sqrt``, a division, ``torch.arange``),
a shared module called twice, a parameter used directly, gated halves (``chunk``), channel
permutations (``flip``, ``roll``, a constant index), pixel shuffle, channels-last linear layers,
GroupNorm, in-place writes into a channel slice. Some models get negative biases (many ReLUs
dead on the example inputs, which hides wrong channels from a value check).
Sequence blocks: GRU/LSTM/RNN (initial state from a prunable layer, ``(h_n, c_n)`` consumed
downstream), self- and cross-attention with key/value by position or keyword, attention
scaled by ``x.shape[-1] ** -0.5``, LayerNorm, a conv over time, an LSTM with ``proj_size``.
Outputs: a tensor, a tuple or a dict.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_KINDS = ["conv", "residual", "residual_inplace", "concat", "split", "depthwise", "grouped",
               "se", "shuffle_f", "shuffle_m", "shuffle_view", "size_arith", "shared", "scale",
               "size_sqrt", "size_div", "size_arange", "glu", "flip", "roll", "perm_index",
               "pixel_shuffle", "channels_last", "groupnorm", "inplace_slice"]
SEQ_KINDS = ["gru", "lstm", "lstm_state", "rnn", "self_attn", "cross_attn", "cross_attn_kw",
             "linear", "size_scaled", "bi_gru", "layernorm", "conv_time", "lstm_proj"]
MORE_IMAGE = {"size_sqrt", "size_div", "size_arange", "flip", "roll", "perm_index"}


class ImageBlock(nn.Module):
    def __init__(self, kind: str, c: int, rng: random.Random) -> None:
        super().__init__()
        self.kind, self.out = kind, c
        if kind == "conv":
            self.out = rng.choice([4, 6, 8, 12])
            self.a, self.n = nn.Conv2d(c, self.out, 3, padding=1), nn.BatchNorm2d(self.out)
        elif kind in ("residual", "residual_inplace", "shared"):
            self.a, self.n = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        elif kind == "concat":
            self.a, self.b = nn.Conv2d(c, 4, 1), nn.Conv2d(c, 4, 3, padding=1)
            self.out = 8
        elif kind == "split":
            self.a = nn.Conv2d(c - c // 2, c - c // 2, 1)
        elif kind == "depthwise":
            self.a, self.n = nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c)
        elif kind == "grouped":
            g = 2 if c % 2 == 0 else 1
            self.a = nn.Conv2d(c, 2 * c, 1, groups=g)
            self.out = 2 * c
        elif kind == "se":
            self.a, self.b = nn.Conv2d(c, max(c // 2, 1), 1), nn.Conv2d(max(c // 2, 1), c, 1)
        elif kind.startswith("shuffle"):
            divs = [d for d in range(2, c) if c % d == 0] or [1]
            self.g = rng.choice(divs)
            self.a = nn.Conv2d(c, c, 1)
            self.shuffle = nn.ChannelShuffle(self.g)
        elif kind == "size_arith":
            self.a = nn.Conv2d(c, c, 1)
        elif kind == "scale":
            self.a = nn.Conv2d(c, c, 1)
            self.gamma = nn.Parameter(torch.rand(1, c, 1, 1) + 0.5)
        elif kind in MORE_IMAGE or kind == "inplace_slice":
            self.a = nn.Conv2d(c, c, 1)
            self.register_buffer("perm", torch.randperm(c, generator=torch.Generator().manual_seed(
                rng.randrange(1 << 30))))
        elif kind == "glu":
            self.a = nn.Conv2d(c, 2 * c, 1)
        elif kind == "pixel_shuffle":
            self.a = nn.Conv2d(c, 4 * c, 1)
        elif kind == "channels_last":
            self.a = nn.Linear(c, c)
        elif kind == "groupnorm":
            self.a = nn.Conv2d(c, c, 3, padding=1)
            self.n = nn.GroupNorm(2 if c % 2 == 0 else 1, c)

    def forward(self, x):
        k = self.kind
        if k in ("conv", "depthwise"):
            return F.relu(self.n(self.a(x)))
        if k == "residual":
            return F.relu(x + self.n(self.a(x)))
        if k == "residual_inplace":
            y = self.n(self.a(x))
            y += x
            return F.relu_(y)
        if k == "shared":
            return F.relu(self.a(F.relu(self.a(x))) + x)
        if k == "concat":
            return torch.cat([self.a(x), F.relu(self.b(x))], 1)
        if k == "split":
            p, q = torch.split(x, [x.shape[1] // 2, x.shape[1] - x.shape[1] // 2], 1)
            return torch.cat([p, F.relu(self.a(q))], 1)
        if k == "grouped":
            return F.relu(self.a(x))
        if k == "se":
            return x * torch.sigmoid(self.b(F.relu(self.a(x.mean((2, 3), keepdim=True)))))
        if k == "shuffle_f":
            return F.channel_shuffle(F.relu(self.a(x)), self.g)
        if k == "shuffle_m":
            return self.shuffle(F.relu(self.a(x)))
        if k == "shuffle_view":
            y = F.relu(self.a(x))
            b, c, h, w = y.shape
            return y.view(b, self.g, c // self.g, h, w).transpose(1, 2).reshape(b, c, h, w)
        if k == "size_arith":
            y = self.a(x)
            return y * y.shape[1] ** -0.5
        if k == "scale":
            return self.a(x) * self.gamma
        return self._more(k, x)

    def _more(self, k, x):
        y = F.relu(self.a(x)) if k not in ("channels_last", "groupnorm") else x
        c = y.shape[1]
        if k == "size_sqrt":
            return y / math.sqrt(c)
        if k == "size_div":
            return y + y.mean((2, 3), keepdim=True) / c
        if k == "size_arange":
            return y * (1 + torch.arange(c, dtype=y.dtype).view(1, c, 1, 1) / c)
        if k == "glu":
            p, q = y.chunk(2, 1)
            return p * torch.sigmoid(q)
        if k == "flip":
            return y.flip(1)
        if k == "roll":
            return torch.roll(y, 1, 1)
        if k == "perm_index":
            return y[:, self.perm]
        if k == "pixel_shuffle":
            return F.avg_pool2d(F.pixel_shuffle(y, 2), 2)
        if k == "channels_last":
            return F.relu(self.a(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if k == "groupnorm":
            return F.relu(self.n(self.a(x)))
        y = y.clone()  # inplace_slice
        y[:, : c // 2] *= 2.0
        return y


class SeqBlock(nn.Module):
    def __init__(self, kind: str, d: int, cimg: int, rng: random.Random) -> None:
        super().__init__()
        self.kind, self.out = kind, d
        if kind in ("gru", "rnn", "bi_gru"):
            h = rng.choice([4, 6, 8])
            cls = nn.RNN if kind == "rnn" else nn.GRU
            self.rnn = cls(d, h, batch_first=True, bidirectional=kind == "bi_gru",
                           num_layers=rng.choice([1, 2]))
            self.h0 = nn.Linear(cimg, h) if kind != "bi_gru" and rng.random() < 0.7 else None
            self.out = h * (2 if kind == "bi_gru" else 1)
        elif kind in ("lstm", "lstm_state"):
            h = rng.choice([4, 6, 8])
            self.rnn = nn.LSTM(d, h, batch_first=True)
            self.h0 = nn.Linear(cimg, h) if rng.random() < 0.5 else None
            self.out = h
        elif kind in ("self_attn", "cross_attn", "cross_attn_kw"):
            self.mha = nn.MultiheadAttention(d, rng.choice([1, 2] if d % 2 == 0 else [1]),
                                             batch_first=True)
            self.kv = nn.Linear(cimg, d)
            self.weights = rng.random() < 0.3
        elif kind in ("linear", "size_scaled"):
            self.out = rng.choice([6, 8, 12])
            self.a = nn.Linear(d, self.out)
        elif kind == "layernorm":
            self.a, self.n = nn.Linear(d, d), nn.LayerNorm(d)
        elif kind == "conv_time":
            self.a = nn.Conv1d(d, d, 3, padding=1)
        elif kind == "lstm_proj":
            self.out = rng.choice([3, 4])
            self.rnn = nn.LSTM(d, rng.choice([6, 8]), batch_first=True, proj_size=self.out)

    def forward(self, x, feat):
        k = self.kind
        if k in ("gru", "rnn", "bi_gru", "lstm", "lstm_state"):
            hx = None
            if getattr(self, "h0", None) is not None:
                h0 = self.h0(feat).unsqueeze(0).repeat(self.rnn.num_layers, 1, 1)
                hx = (h0, torch.zeros_like(h0)) if k.startswith("lstm") else h0
            y, state = self.rnn(x, hx)
            if k == "lstm_state":
                h, c = state
                y = y + (h[-1] * c[-1]).unsqueeze(1)
            return y, None
        if k == "self_attn":
            y, w = self.mha(x, x, x, need_weights=self.weights)
            return x + y, w
        if k in ("cross_attn", "cross_attn_kw"):
            kv = self.kv(feat).unsqueeze(1).expand(-1, 3, -1)
            if k == "cross_attn":
                y, w = self.mha(x, kv, kv, need_weights=self.weights)
            else:
                y, w = self.mha(x, key=kv, value=kv, need_weights=self.weights)
            return y + x, w
        if k == "layernorm":
            return self.n(x + F.relu(self.a(x))), None
        if k == "conv_time":
            return F.relu(self.a(x.transpose(1, 2))).transpose(1, 2) + x, None
        if k == "lstm_proj":
            return self.rnn(x)[0], None
        y = F.relu(self.a(x))
        if k == "size_scaled":
            y = y * y.shape[-1] ** -0.5
        return y, None


class FuzzNet(nn.Module):
    """One random architecture: an image path and a sequence path joined at the head."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = random.Random(seed)
        self.image_kinds = [rng.choice(IMAGE_KINDS) for _ in range(rng.randint(1, 4))]
        self.seq_kinds = [rng.choice(SEQ_KINDS) for _ in range(rng.randint(1, 3))]
        self.output = rng.choice(["tensor", "tuple", "dict"])
        c = rng.choice([6, 8, 12])
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        blocks = []
        for k in self.image_kinds:
            blocks.append(ImageBlock(k, c, rng))
            c = blocks[-1].out
        self.image = nn.ModuleList(blocks)
        d = rng.choice([8, 12])
        self.embed = nn.Linear(4, d)
        seq = []
        for k in self.seq_kinds:
            seq.append(SeqBlock(k, d, c, rng))
            d = seq[-1].out
        self.seq = nn.ModuleList(seq)
        self.head = nn.Linear(d + c, 3)
        if rng.random() < 0.3:  # many ReLUs dead on the example inputs
            with torch.no_grad():
                for m in self.modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not self.head \
                            and m.bias is not None:
                        m.bias -= 0.5 + rng.random()

    def forward(self, img, tokens):
        x = F.relu(self.stem(img))
        for b in self.image:
            x = b(x)
        feat = x.mean((2, 3))
        s = self.embed(tokens)
        weights = []
        for b in self.seq:
            s, w = b(s, feat)
            if w is not None:
                weights.append(w)
        out = self.head(torch.cat([s.mean(1), feat], 1))
        if self.output == "tuple":
            return (out, *weights)
        if self.output == "dict":
            return {"logits": out, "pooled": s.mean(1).sum(1, keepdim=True)}
        return out


def inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 6, 6, generator=g), torch.randn(2, 5, 4, generator=g)
