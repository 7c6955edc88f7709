"""Batch-1 kernels for a linear layer whose input is mostly zero, and their measured choice.

Every kernel computes ``linear(x * (|x| > threshold))`` — the masked-dense reference. They differ
in which weights they read:

* ``masked_dense``: the layer's own forward on the masked input (reads every weight);
* ``gather_rows``: ``torch.index_select`` of the needed rows of the input-major weight
  ``W^T`` (``(in, out)``, rows contiguous), then a small matmul;
* ``gather_bag``: ``torch.nn.functional.embedding_bag`` over the same rows with the nonzero
  inputs as per-sample weights — a weighted row sum that reads each needed row once and writes
  nothing in between. ``W^T`` is viewed as ``(in * blocks, out / blocks)`` and each block of
  output columns is one bag, so the CPU kernel splits the work across threads;
* ``compiled``: ``torch.compile`` of the masked-dense function.

Only inputs holding a single token (batch-1 decode) take a gather kernel; prefill and batches
above one always run masked-dense, so every batch and sequence length gets the reference answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.bench.timer import Clock, WallClock
from prunekit.handlers.linear import is_conv1d  # HF Conv1D, recognised by structure


def is_sparsifiable(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or is_conv1d(m)


@dataclass
class LayerState:
    """What one sparsified layer carries: its threshold, kernel and input-major weight cache."""

    threshold: float
    sparsity: float
    kernel: str = "masked_dense"
    blocks: int = 1
    enabled: bool = True
    reason: str = ""
    times_ms: dict[str, float] = field(default_factory=dict)
    orig_forward: Callable[..., Tensor] | None = None
    _wt: Tensor | None = None
    _key: tuple[int, int] | None = None
    _compiled: Callable[..., Tensor] | None = None


def input_major(m: nn.Module, st: LayerState) -> Tensor:
    """``W^T`` as a contiguous ``(in, out)`` tensor, rebuilt when the weight changes."""
    w = m.weight
    if is_conv1d(m):
        return w if w.is_contiguous() else w.contiguous()
    key = (w.data_ptr(), w._version)
    if st._wt is None or st._key != key:
        t = w.detach().t()
        st._wt = t if t.is_contiguous() else t.contiguous()
        st._key = key
    return st._wt


def mask_input(x: Tensor, threshold: float) -> Tensor:
    """``x`` where ``|x| > threshold``, else 0 (one fused kernel: ``hardshrink``)."""
    return x if threshold < 0 else F.hardshrink(x, threshold)


def _bias(m: nn.Module) -> Tensor | None:
    return getattr(m, "bias", None)


def gather_rows(m: nn.Module, st: LayerState, x: Tensor) -> Tensor:
    xs = x.reshape(-1)
    idx = mask_input(xs, st.threshold).nonzero().squeeze(1)
    y = xs.index_select(0, idx).unsqueeze(0) @ input_major(m, st).index_select(0, idx)
    b = _bias(m)
    y = y if b is None else y + b
    return y.reshape(*x.shape[:-1], y.shape[-1])


def gather_bag(m: nn.Module, st: LayerState, x: Tensor) -> Tensor:
    wt = input_major(m, st)
    n_in, n_out = wt.shape
    nb = st.blocks
    xs = x.reshape(-1)
    idx = mask_input(xs, st.threshold).nonzero().squeeze(1)
    vals = xs.index_select(0, idx)
    if nb == 1:
        y = F.embedding_bag(idx, wt, torch.zeros(1, dtype=torch.long), mode="sum",
                            per_sample_weights=vals)
    else:
        steps = torch.arange(nb, device=x.device)
        rows = (idx.unsqueeze(0) * nb + steps.unsqueeze(1)).reshape(-1)
        y = F.embedding_bag(rows, wt.view(n_in * nb, n_out // nb), steps * idx.numel(),
                            mode="sum", per_sample_weights=vals.repeat(nb))
    y = y.reshape(-1)
    b = _bias(m)
    y = y if b is None else y + b
    return y.reshape(*x.shape[:-1], n_out)


def masked_dense(m: nn.Module, st: LayerState, x: Tensor) -> Tensor:
    assert st.orig_forward is not None
    return st.orig_forward(mask_input(x, st.threshold))


def compiled(m: nn.Module, st: LayerState, x: Tensor) -> Tensor:
    if st._compiled is None:
        fwd = st.orig_forward
        thr = st.threshold
        st._compiled = torch.compile(lambda t: fwd(mask_input(t, thr)), dynamic=False)
    assert st._compiled is not None
    return st._compiled(x)


KERNEL_FNS: dict[str, Callable[[nn.Module, LayerState, Tensor], Tensor]] = {
    "masked_dense": masked_dense, "gather_rows": gather_rows, "gather_bag": gather_bag,
    "compiled": compiled,
}


def dynamic_forward(m: nn.Module, st: LayerState, x: Tensor, *args: Any, **kw: Any) -> Tensor:
    """The forward installed on a sparsified layer (original forward when disabled)."""
    assert st.orig_forward is not None
    if not st.enabled or args or kw:
        return st.orig_forward(x, *args, **kw)
    if st.kernel != "masked_dense" and x.numel() == x.shape[-1] and not torch.is_grad_enabled():
        return KERNEL_FNS[st.kernel](m, st, x)
    return masked_dense(m, st, x)


def _close(out: Tensor, ref: Tensor) -> bool:
    tol = 1e-4 if ref.dtype == torch.float32 or ref.dtype == torch.float64 else 2e-2
    scale = ref.float().abs().max().clamp_min(1e-6)
    return bool(((out.float() - ref.float()).abs().max() / scale) <= tol)


def _variants(m: nn.Module, kernels: tuple[str, ...]) -> list[tuple[str, int]]:
    n_out = m.weight.shape[1] if is_conv1d(m) else m.weight.shape[0]
    out: list[tuple[str, int]] = []
    for k in kernels:
        if k == "gather_bag":
            blocks = sorted({1, 2, 4, max(1, torch.get_num_threads())})
            out += [(k, b) for b in blocks if n_out % b == 0]
        else:
            out.append((k, 1))
    return out


def _label(name: str, blocks: int) -> str:
    return f"{name}/{blocks}" if name == "gather_bag" else name


def _check(m: nn.Module, st: LayerState, x0: Tensor,
           kernels: tuple[str, ...]) -> tuple[list[tuple[str, int]], list[str]]:
    """Candidates whose output equals the masked-dense reference, and the failed ones."""
    ok_list: list[tuple[str, int]] = []
    failed: list[str] = []
    ref = masked_dense(m, st, x0)
    for name, nb in _variants(m, kernels):
        st.kernel, st.blocks = name, nb
        try:
            ok, why = _close(KERNEL_FNS[name](m, st, x0), ref), "output differs"
        except Exception as exc:  # noqa: BLE001 - a failing kernel is reported, not raised
            ok, why = False, type(exc).__name__
        if ok:
            ok_list.append((name, nb))
        else:
            failed.append(f"{_label(name, nb)} ({why})")
    return ok_list, failed


def choose_kernels(layers: dict[str, tuple[nn.Module, LayerState, Tensor]],
                   kernels: tuple[str, ...], repeats: int, clock: Clock | None = None) -> None:
    """Time each candidate at batch 1 on real activations; each layer keeps its fastest one.

    ``layers`` maps a name to ``(module, state, samples (n, in))``. A round calls one candidate
    on every layer in model order, as a decode step does, so a layer's weights have been
    evicted from cache by the others when the model is bigger than the cache. A candidate whose
    output differs from the masked-dense reference is dropped and named in ``state.reason``.
    """
    clock = clock or WallClock()
    cands: dict[str, list[tuple[str, int]]] = {}
    times: dict[str, dict[str, list[float]]] = {n: {} for n in layers}
    with torch.no_grad():
        for n, (m, st, xs) in layers.items():
            cands[n], failed = _check(m, st, xs[:1], kernels)
            st.reason = f"failed the masked-dense check: {', '.join(failed)}" if failed else ""
        labels = list(dict.fromkeys(_label(*c) for v in cands.values() for c in v))
        for r in range(repeats):
            for lab in labels:
                for n, (m, st, xs) in layers.items():
                    hit = [c for c in cands[n] if _label(*c) == lab]
                    if not hit:
                        continue
                    st.kernel, st.blocks = hit[0]
                    x = xs[r % xs.shape[0]].unsqueeze(0)
                    fn = KERNEL_FNS[st.kernel]
                    times[n].setdefault(lab, []).append(
                        clock.time_call(functools.partial(fn, m, st, x)))
    for n, (_m, st, _xs) in layers.items():
        med = {k: sorted(v)[len(v) // 2] for k, v in times[n].items()}
        best = min(med, key=med.__getitem__) if med else "masked_dense"
        st.kernel, _, nb = best.partition("/")
        st.blocks = int(nb) if nb else 1
        st.times_ms = med
