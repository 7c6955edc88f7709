"""The ``.pkc`` file: a pruned + shared + Huffman-coded model, safe to load (no pickle).

Layout (little-endian)::

    b"PKCZ" | version u16 | reserved u16 | header length u32 | header | payload | sha256 (32 B)

The header is zlib-compressed JSON: the format version, how to rebuild the architecture (a
prunekit model spec such as ``torchvision:alexnet`` or ``module:pkg.mod:factory``, when known),
one entry per state_dict tensor (:mod:`prunekit.compression.layer_codec`) with its byte sections
and its size at every Deep Compression stage, and the totals. The SHA-256 covers every byte
before it, so a truncated or corrupted file is refused before anything is decoded. Files are
written atomically (:func:`prunekit.io.atomic_path`).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.compression.layer_codec import Sections, decode_entry, encode_layer, encode_raw
from prunekit.compression.sharing import codebook_of, shared_modules
from prunekit.io import atomic_path, load_model_spec, plain_state_dict
from prunekit.masks.apply import get_mask, masked_modules
from prunekit.stats import module_type_name
from prunekit.structural.resize import resize_to_state_dict

MAGIC = b"PKCZ"
VERSION = 1
_FIXED = struct.Struct("<4sHHI")
STAGES = ("dense", "pruned", "shared", "huffman")
DEFAULT_INDEX_BITS = {"Conv1d": 8, "Conv2d": 8, "Conv3d": 8, "Linear": 5}


class CompressedFileError(ValueError):
    """A ``.pkc`` file is not one, is truncated or corrupted, or has an unknown version."""


def _index_bits(module: nn.Module, name: str, index_bits: int | dict[str, int]) -> int:
    if isinstance(index_bits, int):
        return index_bits
    b = index_bits.get(name, index_bits.get(module_type_name(module), 5))
    if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 16:
        raise ValueError(f"index_bits for layer {name!r} must be an integer in 1..16, got {b!r}")
    return b


def _entries(model: nn.Module, index_bits: int | dict[str, int], sec: Sections) -> list[dict]:
    shared = shared_modules(model)
    masked = masked_modules(model)
    special = {f"{n}.weight" if n else "weight": n for n in {**masked, **shared}}
    modules = dict(model.named_modules())
    entries = []
    for key, t in plain_state_dict(model).items():
        if key not in special:
            entries.append(encode_raw(key, t, sec))
            continue
        name = special[key]
        mod = modules[name]
        ib = _index_bits(mod, name, index_bits)
        if name in shared:
            cb, idx, mask, bits = codebook_of(mod)
            entries.append(encode_layer(key, t, mask, ib, sec, cb, idx, bits))
        else:
            entries.append(encode_layer(key, t, get_mask(mod), ib, sec))
    return entries


def _totals(entries: list[dict]) -> dict[str, Any]:
    totals = {s: sum(e["bits"][s] for e in entries) / 8 for s in STAGES}
    layers = [e for e in entries if e["kind"] != "raw"]
    weights = {s: sum(e["bits"][s] for e in layers) / 8 for s in STAGES}
    paper = {s: sum(e["bits"].get(f"{s}_paper", e["bits"][s]) for e in layers) / 8
             for s in ("shared", "huffman")}
    return {"bytes": totals, "weight_bytes": weights,
            "weight_ratio_paper_fillers": {s: weights["dense"] / max(v, 1e-9)
                                           for s, v in paper.items()},
            "ratio": {s: totals["dense"] / max(totals[s], 1e-9) for s in STAGES},
            "weight_ratio": {s: weights["dense"] / max(weights[s], 1e-9) for s in STAGES}}


def compress(model: nn.Module, path: str | Path, *, spec: str | None = None,
             index_bits: int | dict[str, int] | None = None) -> dict[str, Any]:
    """Write ``model`` (pruned and/or shared) to a ``.pkc`` file; return its manifest.

    Args:
        model: a model after :func:`prunekit.prune_weights` and/or :func:`share_weights`;
            tensors that are neither are stored as they are.
        path: the file to write (atomically).
        spec: how :func:`decompress` rebuilds the architecture (``torchvision:NAME``,
            ``timm:NAME``, ``module:pkg.mod:factory``); defaults to the spec the model was
            built from (:func:`prunekit.load_model_spec` records it). Without one,
            :func:`decompress` needs ``model=``.
        index_bits: width of the relative-index gaps: one int, or type/name -> bits
            (default: the paper's 8 for conv, 5 for FC).

    Returns:
        The manifest: per-tensor entries with ``bits`` per stage, totals, ratios per stage
        (``ratio``: whole state_dict; ``weight_ratio``: the pruned/shared layers' weights, the
        paper's measure) and ``file_bytes``.
    """
    spec = spec if spec is not None else model.__dict__.get("_prunekit_spec")
    if spec is not None and not isinstance(spec, str):
        raise ValueError(f"spec must be a model spec string, got {type(spec).__name__}")
    sec = Sections()
    entries = _entries(model, DEFAULT_INDEX_BITS if index_bits is None else index_bits, sec)
    manifest = {"format": "prunekit-compressed", "version": VERSION, "spec": spec,
                "model_class": module_type_name(model), "tensors": entries, **_totals(entries)}
    header = zlib.compress(json.dumps(manifest, separators=(",", ":")).encode(), 9)
    body = _FIXED.pack(MAGIC, VERSION, 0, len(header)) + header + b"".join(sec.parts)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(body + hashlib.sha256(body).digest())
    manifest["file_bytes"] = path.stat().st_size
    manifest["file_ratio"] = manifest["bytes"]["dense"] / manifest["file_bytes"]
    return manifest


def _read_file(path: str | Path) -> tuple[dict[str, Any], memoryview]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such compressed model file: {path}")
    raw = path.read_bytes()
    if len(raw) < _FIXED.size + 32 or raw[:4] != MAGIC:
        raise CompressedFileError(f"{path} is not a prunekit compressed (.pkc) file")
    _, version, _, hlen = _FIXED.unpack_from(raw)
    if version != VERSION:
        raise CompressedFileError(f"{path}: unknown .pkc version {version} (this prunekit reads "
                                  f"version {VERSION}; upgrade prunekit)")
    body, digest = raw[:-32], raw[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise CompressedFileError(f"{path}: checksum mismatch (file truncated or corrupted); "
                                  "nothing was loaded")
    try:
        manifest = json.loads(zlib.decompress(body[_FIXED.size:_FIXED.size + hlen]))
    except (zlib.error, ValueError) as exc:
        raise CompressedFileError(f"{path}: unreadable header ({exc})") from None
    return manifest, memoryview(body)[_FIXED.size + hlen:]


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a ``.pkc`` file (checksum verified; weights not decoded)."""
    manifest, payload = _read_file(path)
    manifest["file_bytes"] = Path(path).stat().st_size
    manifest["file_ratio"] = manifest["bytes"]["dense"] / manifest["file_bytes"]
    return manifest


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Decode every tensor of a ``.pkc`` file (checksum verified first)."""
    manifest, payload = _read_file(path)
    return {e["key"]: decode_entry(e, payload) for e in manifest["tensors"]}


def _check_fits(model: nn.Module, sd: dict[str, Tensor]) -> None:
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or extra:
        raise ValueError(f"decompress: the file does not fit {type(model).__name__}: "
                         f"missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in sd.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"decompress: tensor {k!r} has shape {tuple(v.shape)} in the file, "
                             f"{tuple(own[k].shape)} in the model")


def decompress(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a plain ``nn.Module`` from a ``.pkc`` file, weights bit-identical to the
    compressed model's (pruned entries are ``+0.0``).

    Args:
        path: a file written by :func:`compress`.
        model: the architecture to load into (in place); needed when the file records no spec.

    Raises:
        CompressedFileError: not a .pkc file, truncated/corrupted (checksum), unknown version.
        ValueError: no architecture known, or the weights do not fit it (model untouched).
    """
    manifest, _ = _read_file(path)
    sd = load_state_dict(path)
    if model is None:
        if not manifest.get("spec"):
            raise ValueError(f"decompress: {path} records no architecture spec; pass model= "
                             f"(a {manifest.get('model_class')} instance)")
        model = load_model_spec(manifest["spec"])
        resize_to_state_dict(model, sd)  # structurally pruned layers get their saved sizes
    _check_fits(model, sd)
    with torch.no_grad():
        model.load_state_dict(sd, strict=True)
    return model.eval()


__all__ = ["CompressedFileError", "MAGIC", "STAGES", "VERSION", "compress", "decompress",
           "load_state_dict", "read_manifest"]
