"""Size and int8 facts for benchmark reports: "compressed size", "int8" and Deep Compression's
stages, one row each (Han, Mao & Dally, ICLR 2016, figure 1: pruned -> + weight sharing ->
+ Huffman).

The bench harness times whatever models it is given; these helpers make the extra models
(``<name>+int8``: ONNX Runtime's quantizer through :func:`prunekit.compression.quantize`) and
put their facts into the result dictionary the report renders (``models.<name>.compressed_bytes``
/ ``pkc_bytes`` / ``int8``, ``speedups[].int8_over_fp32``, ``compression_stages``). Both
``prunekit bench --quantize int8`` and ``prunekit analyze --quantize int8 --deep-compression``
use them; in Python, :func:`analyze_extras` plugs them into :func:`prunekit.bench.analyze`.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from prunekit.bench.bn_fold import fold_batchnorm
from prunekit.compression.int8 import quantize as quantize_int8
from prunekit.compression.pkc import compress
from prunekit.compression.sharing import share_weights
from prunekit.masks import finalize, masked_modules
from prunekit.masks.apply import apply_masks
from prunekit.stats import bitmask_bytes
from prunekit.weights import select_layers

CALIB_BATCHES = 8
STAGE_ROWS = (("dense", "dense fp32"), ("pruned", "pruned: relative indices + fp32 values"),
              ("shared", "+ weight sharing (codebook indices)"), ("huffman", "+ Huffman coding"))


def plain(model: nn.Module) -> nn.Module:
    """A copy with masks finalized (pruned weights zero, ordinary parameters)."""
    m = copy.deepcopy(model).eval()
    if masked_modules(m):
        finalize(m)
    return m


def sizes(named: Mapping[str, nn.Module], files: Mapping[str, str] | None = None
          ) -> dict[str, dict[str, int]]:
    """Per model: bytes in prunekit's bitmask format, and ``pkc_bytes`` for models read from a
    ``.pkc`` file (``files``: name -> the path it was loaded from)."""
    out = {}
    for name, model in named.items():
        out[name] = {"compressed_bytes": bitmask_bytes(plain(model))}
        path = (files or {}).get(name, "")
        if path.endswith(".pkc"):
            out[name]["pkc_bytes"] = os.path.getsize(path)
    return out


def _like(x: Tensor, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    if x.is_floating_point():
        return torch.randn(x.shape, generator=gen)
    return torch.randint(0, int(x.max()) + 1, x.shape, generator=gen)


def _first(out: Any) -> Tensor:
    return next(t for t in tree_flatten(out)[0] if isinstance(t, Tensor))


def int8_variants(named: Mapping[str, nn.Module], x: Tensor, threads: int | None = None,
                  fold_bn: bool = True) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """``<name>+int8`` for every model: ONNX Runtime static int8 (calibrated on random batches
    shaped like ``x``) for float inputs, dynamic int8 for token ids; with its fidelity to fp32
    on a separate random batch.

    Raises:
        ValueError: ``x`` is not one tensor, or a model cannot be exported (named).
    """
    if not isinstance(x, Tensor):
        raise ValueError("int8 variants need one input tensor")
    models, info = {}, {}
    held_out = _like(x, 10_000)
    for name, model in named.items():
        p = plain(model)
        calib = [_like(x, s) for s in range(CALIB_BATCHES)] if x.is_floating_point() else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nodes left in fp32 are reported below
                q = quantize_int8(p, example_inputs=x, calib_data=calib, threads=threads)
        except ValueError as e:
            raise ValueError(f"{name}: {str(e).splitlines()[0]}") from None
        with torch.no_grad():
            ref = _first(p(held_out)).float()
        out = q(held_out).float()
        fid = {"rel_err": float((out - ref).norm() / ref.norm().clamp_min(1e-12)),
               "max_abs_err": float((out - ref).abs().max())}
        if ref.dim() == 2 and ref.shape[1] > 1:
            fid["top1_agree"] = float((out.argmax(1) == ref.argmax(1)).float().mean())
        if fold_bn:  # its static costs then read like the fp32 models' (BN folded)
            fold_batchnorm(p)
        models[f"{name}+int8"] = q.module(p)
        info[f"{name}+int8"] = {"source": name, "mode": q.mode, "onnx_bytes":
                                os.path.getsize(q.path), "fp32_nodes": q.fp32_nodes, **fid}
    return models, info


def stage_sizes(model: nn.Module, bits: int | Mapping[str, int] | None = None
                ) -> list[dict[str, Any]]:
    """The model's whole state_dict at every Deep Compression stage, on a copy: its masks (or,
    for finalized weight pruning, its zeros) as they are, then weight sharing (k-means, no
    fine-tuning: sizes only) and Huffman coding into a ``.pkc`` file. Rows: ``stage``,
    ``label``, ``bytes``, ``ratio`` (fp32 dense bytes over the row's)."""
    m = copy.deepcopy(model).eval()
    apply_masks(m, _zero_masks(m))  # finalized weight pruning: its zeros become masks again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small layers get fewer clusters; sizes only
        share_weights(m, bits=bits)
    with tempfile.TemporaryDirectory(prefix="prunekit-stages-") as d:
        info = compress(m, Path(d) / "m.pkc")
    dense = info["bytes"]["dense"]
    rows = [{"stage": s, "label": label, "bytes": info["bytes"][s],
             "ratio": dense / max(info["bytes"][s], 1e-9)} for s, label in STAGE_ROWS]
    rows.append({"stage": "file", "label": ".pkc file (header, checksum)",
                 "bytes": info["file_bytes"], "ratio": info["file_ratio"]})
    return rows


def _zero_masks(model: nn.Module) -> dict[str, Tensor]:
    """Keep-masks from the zeros of unmasked prunable layers that have any (finalized
    weight pruning), so the file stores them sparse again."""
    masked = masked_modules(model)
    try:
        layers = select_layers(model, ())
    except ValueError:  # every layer already masked (or none prunable)
        return {}
    return {n: mod.weight != 0 for n, mod in layers.items()
            if n not in masked and bool((mod.weight == 0).any())}


def _median(data: dict[str, Any], model: str, runtime: str, batch: int) -> float | None:
    for c in data["cells"]:
        if (c["model"], c["runtime"], c["batch"], c["status"]) == (model, runtime, batch, "ok"):
            return c["median_ms"]
    return None


def add_columns(data: dict[str, Any], size_info: Mapping[str, dict[str, int]],
                int8_info: Mapping[str, dict[str, Any]],
                stages: Mapping[str, list[dict[str, Any]]] | None = None) -> None:
    """Put sizes, int8 facts and stage rows into a bench result (``models`` entries,
    ``speedups`` rows, ``compression_stages``)."""
    for name, extra in size_info.items():
        data["models"].get(name, {}).update(extra)
    for name, extra in int8_info.items():
        data["models"].get(name, {})["int8"] = extra
    for row in data["speedups"]:
        extra = int8_info.get(row["model"])
        if extra is None:
            continue
        src = _median(data, extra["source"], row["runtime"], row["batch"])
        own = _median(data, row["model"], row["runtime"], row["batch"])
        row["int8_over_fp32"] = src / own if src and own else None
    if int8_info:
        data.setdefault("notes", []).append(
            f"int8: ONNX Runtime quantizer (static QDQ calibrated on {CALIB_BATCHES} random "
            "batches of the input shape for float inputs, dynamic for token ids); fidelity "
            "(rel_err, max_abs_err, top1_agree) against the fp32 model on another random batch; "
            "int8 over fp32 = the fp32 source's median / the int8 median in the same run")
    if stages:
        data["compression_stages"] = [{"model": name, **r} for name, rows in stages.items()
                                      for r in rows]
        data.setdefault("notes", []).append(
            "Deep Compression stages: sizes of the whole state_dict on a copy of each model "
            "(weight sharing 8-bit conv / 5-bit FC k-means without fine-tuning: sizes only, "
            "accuracy not re-evaluated)")


def analyze_extras(example_inputs: Tensor, *, int8: bool = True, stages: bool = True,
                   threads: int | None = None, fold_bn: bool = True
                   ) -> Callable[[dict[str, nn.Module]], tuple[dict[str, nn.Module],
                                                               Callable[[dict[str, Any]], None]]]:
    """The ``extras`` hook of :func:`prunekit.bench.analyze`: given the sweep's models, the
    ``<name>+int8`` models to time with them and a function that adds the size, int8 and
    stage columns to the report data. ``int8`` needs the ``onnxruntime`` runtime."""

    def hook(named: dict[str, nn.Module]):
        size_info = sizes(named)
        int8_models, int8_info = (int8_variants(named, example_inputs, threads, fold_bn)
                                  if int8 else ({}, {}))
        stage_rows = {n: stage_sizes(m) for n, m in named.items()} if stages else None
        return int8_models, lambda data: add_columns(data, size_info, int8_info, stage_rows)

    return hook


__all__ = ["CALIB_BATCHES", "add_columns", "analyze_extras", "int8_variants", "plain", "sizes",
           "stage_sizes"]
