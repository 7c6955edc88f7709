"""Measured latency by width for layers whose width changes more than output channels:
depthwise and grouped convolutions, attention heads, MLP hidden widths.

:mod:`prunekit.bench.latency_lut` tabulates Linear and ungrouped Conv2d output channels. Other
layer families change shape differently when pruned: a depthwise conv loses input and output
channels together (``groups`` follows), a grouped conv keeps whole groups' worth of channels, an
attention block loses whole heads (q, k, v and o shrink together), an MLP its hidden width
(up and down projections together). Each ``*_curve`` here builds the layer at every width of
``counts`` (random weights: speed only) and times them interleaved on the layer's real input
size, returning ``{width: ms}``. :func:`time_per_unit` turns a curve into the measured time
saved per removed unit relative to a proportional (MACs) model, which the global selection
uses to spend the MAC budget where the device saves time (cf. HALP, Shen et al., "Structural
Pruning via Latency-Saliency Knapsack", 2022).

>>> import torch
>>> curve = mlp_width_curve(64, [64, 128, 256], tokens=4, timer=lambda mods, x: {
...     k: float(k) for k in mods})
>>> curve
{64: 64.0, 128: 128.0, 256: 256.0}
>>> round(time_per_unit(curve, 256), 3)
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.inputs import resize_batch
from prunekit.bench.latency_lut import measure_curve
from prunekit.bench.sparse import capture_inputs
from prunekit.bench.timer import compare_latency

Timer = Callable[[Mapping[int, Any], Any], Mapping[int, float]]


def _time(mods: dict[int, Any], make_x: Callable[[int], Tensor], timer: Timer | None,
          clock: Any = None, repeats: int = 10) -> dict[int, float]:
    if timer is not None:
        return {int(k): float(v) for k, v in timer(mods, make_x(max(mods))).items()}
    xs = {k: make_x(k) for k in mods}
    wrapped = {k: (lambda _x, m=m, xk=xs[k]: m(xk)) for k, m in mods.items()}
    # interleaved round by round; each width runs on its own input (inputs differ per width)
    with torch.no_grad():
        stats = compare_latency(wrapped, xs[max(mods)], warmup=2, repeats=repeats, rotate=None,
                                number=None, clock=clock)
    return {k: stats[k].median for k in mods}


def depthwise_curve(conv: nn.Conv2d, x: Tensor, counts: Iterable[int],
                    timer: Timer | None = None, clock: Any = None) -> dict[int, float]:
    """A depthwise conv (``groups == in == out``) at each channel count on ``x``'s spatial
    size (input channels shrink with the outputs)."""
    if not (conv.groups == conv.in_channels == conv.out_channels):
        raise ValueError(f"conv must be depthwise (groups == in == out channels), got "
                         f"groups={conv.groups}, in={conv.in_channels}, out={conv.out_channels}")
    mods = {c: nn.Conv2d(c, c, conv.kernel_size, conv.stride, conv.padding, conv.dilation, c,
                         conv.bias is not None).eval() for c in counts}
    return _time(mods, lambda c: torch.randn(x.shape[0], c, *x.shape[2:]), timer, clock)


def grouped_curve(conv: nn.Conv2d, x: Tensor, counts: Iterable[int],
                  timer: Timer | None = None, clock: Any = None) -> dict[int, float]:
    """A grouped conv (``1 < groups``, not depthwise) at output counts divisible by its groups
    (other counts cannot exist); inputs fixed."""
    g = conv.groups
    if g <= 1:
        raise ValueError("conv must be grouped (groups > 1); use latency_lut for groups == 1")
    ok = [c for c in counts if c % g == 0]
    if not ok:
        raise ValueError(f"no count in {list(counts)} is divisible by groups={g}")
    mods = {c: nn.Conv2d(conv.in_channels, c, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, g, conv.bias is not None).eval() for c in ok}
    return _time(mods, lambda c: x, timer, clock)


class _Heads(nn.Module):
    def __init__(self, d: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.h, self.hd = heads, head_dim
        self.qkv = nn.Linear(d, 3 * heads * head_dim)
        self.o = nn.Linear(heads * head_dim, d)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, d)
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, T, head_dim)
        return self.o(y.transpose(1, 2).reshape(b, t, self.h * self.hd))


def attention_heads_curve(d_model: int, head_dim: int, counts: Iterable[int], tokens: int,
                          batch: int = 1, timer: Timer | None = None,
                          clock: Any = None) -> dict[int, float]:
    """An attention block (fused qkv, SDPA, output projection) at each head count."""
    mods = {h: _Heads(d_model, h, head_dim).eval() for h in counts}
    return _time(mods, lambda h: torch.randn(batch, tokens, d_model), timer, clock)


def mlp_width_curve(d_model: int, counts: Iterable[int], tokens: int, batch: int = 1,
                    timer: Timer | None = None, clock: Any = None) -> dict[int, float]:
    """A transformer MLP (up, GELU, down) at each hidden width."""
    mods = {w: nn.Sequential(nn.Linear(d_model, w), nn.GELU(), nn.Linear(w, d_model)).eval()
            for w in counts}
    return _time(mods, lambda w: torch.randn(batch, tokens, d_model), timer, clock)


def time_per_unit(curve: Mapping[int, float], full: int) -> float:
    """Measured time saved per removed unit, relative to a proportional model.

    1.0: removing units saves time in proportion to width (what MACs predict); below 1: the
    device saves less than MACs suggest (fixed overheads, memory-bound); above 1: more.
    Fitted as the least-squares slope of ``ms`` over width, divided by ``ms(full) / full``.
    """
    if full not in curve or curve[full] <= 0:
        raise ValueError(f"curve must hold the full width {full} with a positive time")
    xs = [float(k) for k in curve]
    ys = [float(v) for v in curve.values()]
    if len(xs) < 2:
        return 1.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return max(0.0, slope / (curve[full] / full))


def _fractions(full: int, step: int = 1) -> list[int]:
    """``full`` and about 3/4, 1/2, 1/4 of it, as multiples of ``step``."""
    out = {full}
    for f in (0.75, 0.5, 0.25):
        out.add(max(step, int(round(full * f / step)) * step))
    return sorted(c for c in out if 0 < c <= full)


def _heads_of(m: nn.Module) -> tuple[int, int] | None:
    """``(heads, head_dim)`` of an attention block whose heads are channel groups (HF BERT)."""
    heads = getattr(m, "num_attention_heads", None)
    hd = getattr(m, "attention_head_size", None) or getattr(m, "head_dim", None)
    return (int(heads), int(hd)) if heads and hd and hasattr(m, "query") else None


def _curve_for(m: nn.Module, x: Tensor, clock: Any) -> tuple[dict[int, float], int] | None:
    tokens, batch = (x.shape[-2], x.shape[0]) if x.dim() == 3 else (1, 1)
    if (hh := _heads_of(m)) is not None and x.dim() == 3:
        return attention_heads_curve(x.shape[-1], hh[1], _fractions(hh[0]), tokens, batch,
                                     clock=clock), hh[0]
    if type(m) is nn.Linear:
        full = m.out_features
        if x.dim() == 3 and full > m.in_features:  # MLP up-projection: hidden width
            return mlp_width_curve(m.in_features, _fractions(full, 8), tokens, batch,
                                   clock=clock), full
        return measure_curve(m, x, _fractions(full), _clock_timer(clock)), full
    if type(m) is nn.Conv2d:
        full, g = m.out_channels, m.groups
        if g == 1:
            return measure_curve(m, x, _fractions(full), _clock_timer(clock)), full
        if g == m.in_channels == full:
            return depthwise_curve(m, x, _fractions(full), clock=clock), full
        return grouped_curve(m, x, _fractions(full, g), clock=clock), full
    return None


def _clock_timer(clock: Any) -> Timer | None:
    if clock is None:
        return None

    def timer(mods: Mapping[int, Any], x: Tensor) -> dict[int, float]:
        stats = compare_latency(dict(mods), x, warmup=2, repeats=10, rotate=None, number=None,
                                clock=clock)
        return {int(k): v.median for k, v in stats.items()}
    return timer


def module_time_weights(model: nn.Module, example_inputs: Any, *, clock: Any = None,
                        batch: int | None = None, lo: float = 0.05, hi: float = 20.0
                        ) -> dict[str, float]:
    """``{module name: time_per_unit}`` for every Linear, Conv2d (plain, grouped, depthwise)
    and head-structured attention block, measured on the input it sees in one forward.

    Pass the result to ``plan_structured(..., scope="global", time_weights=...)``: a group
    takes the weight of its first producer found here. Layers of identical shape and input size are timed
    once. Weights are clipped to ``[lo, hi]`` (a noisy curve must not zero a group out).
    Time with the threads, clock and batch you will deploy with (see
    :mod:`prunekit.bench.harness`): ``batch`` resizes ``example_inputs`` along dim 0 first
    (``None``: their own batch). A table taken at batch 1 steers the cut for batch 1 only: at
    batch 16 the same layers are compute-bound and the weights differ.
    """
    if batch is not None:
        example_inputs = resize_batch(example_inputs, batch)
    layers = {n: m for n, m in model.named_modules()
              if type(m) in (nn.Linear, nn.Conv2d) or _heads_of(m) is not None}
    xs = capture_inputs(model.eval(), example_inputs, layers)
    cache: dict[str, float] = {}
    out: dict[str, float] = {}
    for name, m in layers.items():
        x = xs.get(name)
        if not isinstance(x, Tensor):
            continue
        key = f"{m!r}|{tuple(x.shape)}"
        if key not in cache:
            got = _curve_for(m, x, clock)
            if got is None:
                continue
            cache[key] = min(hi, max(lo, time_per_unit(*got)))
        out[name] = cache[key]
    return out
