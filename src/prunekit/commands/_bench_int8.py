"""``prunekit bench`` with compression: int8 variants of every model (``--quantize int8``),
``.pkc`` files as models, and the "compressed size" / "int8" figures of the report.

Strings are parsed here; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.config import BenchConfig
from prunekit.commands.core import load_cli_model
from prunekit.commands.errors import fail
from prunekit.compression import CompressedFileError, decompress
from prunekit.compression.columns import add_columns
from prunekit.compression.columns import int8_variants as make_int8
from prunekit.compression.columns import sizes as model_sizes


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
    return model_sizes(named, specs)


def int8_variants(named: dict[str, nn.Module], x: Tensor, cfg: BenchConfig
                  ) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """``<name>+int8`` for every model (:func:`prunekit.compression.columns.int8_variants`);
    a model that cannot be quantized is a one-line error."""
    if not isinstance(x, Tensor):
        fail("--quantize int8 needs one input tensor")
    try:
        return make_int8(named, x, cfg.threads, cfg.fold_bn)
    except ValueError as e:
        fail(f"--quantize int8: {str(e).splitlines()[0]}")


__all__ = ["add_columns", "check_quantize", "int8_variants", "load_bench_model", "sizes"]
