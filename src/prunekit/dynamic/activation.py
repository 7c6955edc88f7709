"""Training-free activation sparsity (TEAL) with a measured batch-1 kernel per layer.

``sparsify_activations`` calibrates one input threshold per linear layer, installs a forward
that zeroes the input entries at or below it, and picks the fastest kernel measured correct
for single-token inputs (see :mod:`prunekit.dynamic.kernels`). Weights and ``state_dict`` are
unchanged; :func:`prunekit.save` writes the thresholds beside the weights and
:func:`prunekit.load` restores them.

Reference: Liu et al., "Training-Free Activation Sparsity in Large Language Models", ICLR 2025.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.timer import Clock
from prunekit.call import no_kv_cache
from prunekit.dynamic.calibrate import collect_inputs, count_zeros, quantile_threshold
from prunekit.dynamic.config import ActivationSparsityConfig
from prunekit.dynamic.greedy import capture_calls, group_blocks, greedy_targets
from prunekit.dynamic.kernels import (
    LayerState, choose_kernels, dynamic_forward, input_major, is_conv1d, is_sparsifiable,
)
from prunekit.dynamic.report import ActivationSparsityReport, LayerRow

STATE_ATTR = "_prunekit_dynamic"
EXTENSION = {"dynamic": "prunekit.dynamic.persist"}


def select_layers(model: nn.Module, cfg: ActivationSparsityConfig) -> dict[str, nn.Module]:
    """Linear / Conv1D modules matched by ``include`` and not by ``exclude``."""
    out = {}
    for name, m in model.named_modules():
        if not is_sparsifiable(m):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in cfg.include) and not any(
                fnmatch.fnmatchcase(name, p) for p in cfg.exclude):
            out[name] = m
    if not out:
        raise ValueError(f"model: no nn.Linear or Conv1D layer matches include={cfg.include} "
                         f"exclude={cfg.exclude} in {type(model).__name__}")
    return out


def _split(calib: Any, heldout: float) -> tuple[list[Any], list[Any]]:
    items = list(calib.split(1)) if isinstance(calib, Tensor) else list(calib)
    if len(items) < 2:
        raise ValueError(f"calib: need at least 2 samples (one held out), got {len(items)}")
    n_held = max(1, int(round(heldout * len(items))))
    return items[:-n_held], items[-n_held:]


def _run(model: nn.Module, items: Sequence[Any], batch: int = 4) -> None:
    """Feed calibration items; Tensors rows are batched, tuples/dicts are called as given."""
    with torch.no_grad(), no_kv_cache(model):
        if items and all(isinstance(i, Tensor) for i in items):
            for k in range(0, len(items), batch):
                model(torch.cat(list(items[k:k + batch])))
            return
        for item in items:
            if isinstance(item, dict):
                model(**item)
            elif isinstance(item, (tuple, list)):
                model(*item)
            else:
                model(item)


def _size(m: nn.Module) -> int:
    return int(m.weight.numel())


def _targets(model: nn.Module, layers: dict[str, nn.Module], rows: dict[str, Tensor],
             calls: dict[str, Any], cfg: ActivationSparsityConfig) -> dict[str, float]:
    if cfg.allocation == "uniform" or cfg.sparsity == 0.0:
        return dict.fromkeys(layers, float(cfg.sparsity))
    with disabled(model):
        return greedy_targets(model, layers, rows, calls, cfg.sparsity, cfg.greedy_step)


def attach(m: nn.Module, st: LayerState, layout: str = "both") -> None:
    """Install the dynamic forward on ``m`` (idempotent: an existing state is replaced)."""
    old = m.__dict__.get(STATE_ATTR)
    st.orig_forward = old.orig_forward if old is not None else m.forward
    own = old is None and "forward" not in m.__dict__
    st.plain = type(m) is nn.Linear and (own or (old is not None and old.plain))
    m.__dict__[STATE_ATTR] = st
    m.forward = functools.partial(dynamic_forward, m, st)
    if layout == "input_major" and not is_conv1d(m):
        wt = input_major(m, st)
        m.weight.data = wt.t()
        st._key = (m.weight.data_ptr(), m.weight._version)


def detach(model: nn.Module) -> int:
    """Remove activation sparsity from every layer of ``model``; return how many were reset."""
    n = 0
    for m in model.modules():
        st = m.__dict__.pop(STATE_ATTR, None)
        if st is not None:
            m.__dict__.pop("forward", None)
            n += 1
    model.__dict__.pop("_prunekit_extensions", None)
    return n


def layer_states(model: nn.Module) -> dict[str, LayerState]:
    return {n: m.__dict__[STATE_ATTR] for n, m in model.named_modules()
            if STATE_ATTR in m.__dict__}


@contextmanager
def disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` dense (original forwards) inside the block, e.g. to time both ways."""
    states = list(layer_states(model).values())
    prev = [s.enabled for s in states]
    for s in states:
        s.enabled = False
    try:
        yield model
    finally:
        for s, p in zip(states, prev, strict=True):
            s.enabled = p


def sparsify_activations(model: nn.Module, calib: Any, sparsity: float | None = None, *,
                         config: ActivationSparsityConfig | None = None,
                         clock: Clock | None = None) -> ActivationSparsityReport:
    """Calibrate per-layer input thresholds and install sparse forwards on ``model``.

    Args:
        model: any module with ``nn.Linear`` (or HF ``Conv1D``) layers; HF decoders and encoders
            take token ids.
        calib: calibration inputs: a Tensor whose rows are samples (e.g. ``(n, seq)`` token
            ids), or a sequence of inputs (Tensor, tuple of args, or dict of kwargs). The last
            ``config.heldout`` fraction measures the realised sparsity.
        sparsity: target sparsity (overrides ``config.sparsity``).
        config: see :class:`ActivationSparsityConfig`.
        clock: timing seam for the kernel choice (default wall clock).

    Returns:
        Per-layer thresholds, realised held-out sparsity, chosen kernel and its measured time.

    Raises:
        ValueError: bad sparsity, no matching layer, too little calibration data; the model is
            left unchanged.
    """
    cfg = config or ActivationSparsityConfig()
    if sparsity is not None:
        cfg = ActivationSparsityConfig(**{**cfg.__dict__, "sparsity": sparsity})
    layers = select_layers(model, cfg)
    fit, held = _split(calib, cfg.heldout)
    was_training = model.training
    model.eval()
    try:
        blocks = list(group_blocks(layers)) if cfg.allocation == "greedy" else []
        with disabled(model), collect_inputs(layers, cfg.max_rows, cfg.seed) as store, \
                capture_calls(model, blocks, cfg.greedy_rows) as calls:
            _run(model, fit)  # an earlier sparsification is off: calibrate on dense inputs
        seen = dict(zip(layers, store.pop("__seen__")[0].tolist(), strict=True))
        short = {n: s for n, s in seen.items() if s < cfg.min_tokens}
        if short:
            name, got = next(iter(short.items()))
            raise ValueError(f"calib: layer {name} saw {got} token positions, fewer than "
                             f"min_tokens={cfg.min_tokens}; pass more calibration data")
        rows = {n: torch.cat(v) for n, v in store.items()}
        targets = _targets(model, layers, rows, calls, cfg)
        thresholds = {n: quantile_threshold(rows[n], targets[n]) for n in layers}
        with disabled(model), count_zeros(layers, thresholds) as counts:
            _run(model, held)
        states = {n: LayerState(threshold=thresholds[n], sparsity=targets[n],
                                mask_multi=cfg.multi_token == "masked") for n in layers}
        try:
            for n, m in layers.items():
                attach(m, states[n], cfg.weight_layout)
            _pick(layers, states, rows, cfg, clock)
        except BaseException:
            detach(model)
            raise
    finally:
        model.train(was_training)
    model.__dict__.setdefault("_prunekit_extensions", {}).update(EXTENSION)
    model.__dict__["_prunekit_dynamic_config"] = {"sparsity": cfg.sparsity,
                                                  "allocation": cfg.allocation,
                                                  "multi_token": cfg.multi_token}
    return _report(layers, states, counts, cfg)


def _pick(layers: dict[str, nn.Module], states: dict[str, LayerState],
          rows: dict[str, Tensor], cfg: ActivationSparsityConfig, clock: Clock | None) -> None:
    timed = {}
    for n, m in layers.items():
        if torch.nn.utils.parametrize.is_parametrized(m):
            states[n].reason = "parametrized weight: kept masked-dense"
            continue
        samples = rows[n][:cfg.repeats].to(device=m.weight.device, dtype=m.weight.dtype)
        timed[n] = (m, states[n], samples)
    if timed:
        choose_kernels(timed, (cfg.kernel,) if cfg.kernel else cfg.kernels, cfg.repeats, clock)


def _report(layers: dict[str, nn.Module], states: dict[str, LayerState],
            counts: dict[str, list[int]], cfg: ActivationSparsityConfig
            ) -> ActivationSparsityReport:
    rows, num, den = [], 0.0, 0.0
    for n, m in layers.items():
        z, tot = counts[n]
        held = z / tot if tot else float("nan")
        st = states[n]
        label = f"gather_bag/{st.blocks}" if st.kernel == "gather_bag" else st.kernel
        rows.append(LayerRow(n, st.threshold, st.sparsity, held, label, dict(st.times_ms),
                             st.reason))
        if tot:
            num += held * _size(m)
            den += _size(m)
    return ActivationSparsityReport(tuple(rows), cfg.sparsity, cfg.allocation,
                                    num / den if den else float("nan"))
