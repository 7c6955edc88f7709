"""``prunekit bench`` with compression: int8 variants of every model (``--quantize int8``),
``.pkc`` files as models, and the "compressed size" / "int8" figures of the report.

Strings are parsed here; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from prunekit.bench.bn_fold import fold_batchnorm
from prunekit.bench.config import BenchConfig
from prunekit.commands.core import load_cli_model
from prunekit.compression import CompressedFileError, decompress
from prunekit.compression.int8 import quantize as quantize_int8
from prunekit.masks import finalize, masked_modules
from prunekit.stats import bitmask_bytes
from prunekit.commands.errors import fail

CALIB_BATCHES = 8


def check_quantize(quantize: str | None, cfg: BenchConfig) -> None:
    """One-line exit 2 unless ``--quantize`` is absent or ``int8`` in a setting it supports."""
    if quantize is None:
        return
    if quantize != "int8":
        fail(f"--quantize must be int8, got {quantize!r}")
    if "onnxruntime" not in cfg.runtimes:
        fail("--quantize int8 times the int8 models in ONNX Runtime: add --runtime onnxruntime")
    if torch.device(cfg.device).type != "cpu" or cfg.dtype != "fp32":
        fail("--quantize int8 needs --device cpu and --dtype fp32")


def load_bench_model(spec: str, trust: bool) -> nn.Module:
    """A model spec, or a ``.pkc`` file (decoded with the architecture it records)."""
    if not spec.endswith(".pkc"):
        return load_cli_model(spec, None, trust)
    try:
        return decompress(spec)
    except (CompressedFileError, ValueError, OSError) as e:
        fail(f"{spec}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def sizes(named: dict[str, nn.Module], specs: dict[str, str]) -> dict[str, dict[str, int]]:
    """Per model: bytes in prunekit's bitmask format, and the ``.pkc`` file's bytes if one."""
    out = {}
    for name, model in named.items():
        out[name] = {"compressed_bytes": bitmask_bytes(_plain(model))}
        if specs[name].endswith(".pkc"):
            out[name]["pkc_bytes"] = os.path.getsize(specs[name])
    return out


def _plain(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).eval()
    if masked_modules(m):
        finalize(m)
    return m


def _like(x: Tensor, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    if x.is_floating_point():
        return torch.randn(x.shape, generator=gen)
    return torch.randint(0, int(x.max()) + 1, x.shape, generator=gen)


def _first(out: Any) -> Tensor:
    return next(t for t in tree_flatten(out)[0] if isinstance(t, Tensor))


def int8_variants(named: dict[str, nn.Module], x: Tensor, cfg: BenchConfig
                  ) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """``<name>+int8`` for every model: ONNX Runtime static int8 (calibrated on random batches
    shaped like ``x``) for float inputs, dynamic int8 for token ids; with its fidelity to fp32
    on a separate random batch."""
    if not isinstance(x, Tensor):
        fail("--quantize int8 needs one input tensor")
    models, info = {}, {}
    held_out = _like(x, 10_000)
    for name, model in named.items():
        plain = _plain(model)
        calib = [_like(x, s) for s in range(CALIB_BATCHES)] if x.is_floating_point() else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nodes left in fp32 are reported below
                q = quantize_int8(plain, example_inputs=x, calib_data=calib, threads=cfg.threads)
        except ValueError as e:
            fail(f"--quantize int8: {name}: {str(e).splitlines()[0]}")
        with torch.no_grad():
            ref = _first(plain(held_out)).float()
        out = q(held_out).float()
        fid = {"rel_err": float((out - ref).norm() / ref.norm().clamp_min(1e-12)),
               "max_abs_err": float((out - ref).abs().max())}
        if ref.dim() == 2 and ref.shape[1] > 1:
            fid["top1_agree"] = float((out.argmax(1) == ref.argmax(1)).float().mean())
        if cfg.fold_bn:  # its static costs then read like the fp32 models' (BN folded)
            fold_batchnorm(plain)
        models[f"{name}+int8"] = q.module(plain)
        info[f"{name}+int8"] = {"source": name, "mode": q.mode, "onnx_bytes":
                                os.path.getsize(q.path), "fp32_nodes": q.fp32_nodes, **fid}
    return models, info


def _median(data: dict[str, Any], model: str, runtime: str, batch: int) -> float | None:
    for c in data["cells"]:
        if (c["model"], c["runtime"], c["batch"], c["status"]) == (model, runtime, batch, "ok"):
            return c["median_ms"]
    return None


def add_columns(data: dict[str, Any], size_info: dict[str, dict[str, int]],
                int8_info: dict[str, dict[str, Any]]) -> None:
    """Put sizes and int8 facts into the bench result (``models`` entries, ``speedups`` rows)."""
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
        data["notes"].append(
            f"int8: ONNX Runtime quantizer (static QDQ calibrated on {CALIB_BATCHES} random "
            "batches of the input shape for float inputs, dynamic for token ids); fidelity "
            "(rel_err, max_abs_err, top1_agree) against the fp32 model on another random batch; "
            "int8 over fp32 = the fp32 source's median / the int8 median in the same run")
