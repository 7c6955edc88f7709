"""Encode one tensor of a model into byte sections and back (pruning + sharing + Huffman).

Three kinds, chosen per tensor:

* ``shared`` — a layer shared by :func:`prunekit.compression.share_weights`: its codebook (raw
  values), the codebook index of every kept weight and, when pruned, the relative positions of
  the kept weights (:mod:`prunekit.compression.sparse_index`); both integer streams Huffman-coded
  (:mod:`prunekit.compression.huffman`);
* ``sparse`` — a pruned layer that is not shared: Huffman-coded gaps + raw kept values;
* ``raw`` — any other tensor (biases, norms, dense unshared layers), its bytes as they are.

Every kind also records the size its tensor would take at each Deep Compression stage
(Han, Mao & Dally, ICLR 2016, figure 1): ``dense`` (the tensor in its dtype), ``pruned``
(relative indices + raw values of the kept weights, fillers included), ``shared`` (indices +
codebook indices at their fixed widths + codebook) and ``huffman`` (the stored streams, their
code tables and the codebook). Shared pruned layers also record ``shared_paper`` and
``huffman_paper``: the same with every filler charged a codebook index, as the paper's filler
zero is (here a filler is a gap symbol alone).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from prunekit.compression.huffman import Stream, decode, huffman_encode, lengths_from_table
from prunekit.compression.sparse_index import decode_gaps, encode_gaps


def tensor_bytes(t: Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def bytes_tensor(data: bytes, dtype: str, shape: list[int]) -> Tensor:
    dt = getattr(torch, dtype)
    if not data:
        return torch.zeros(shape, dtype=dt)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dt).reshape(shape).clone()


def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


class Sections:
    """Appends byte sections to a payload; entries record ``[offset, length]``."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.parts.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _stream_entry(s: Stream, sec: Sections) -> dict[str, Any]:
    return {**s.meta(), "data": sec.add(s.data), "table": sec.add(s.table())}


def _stream_bits(s: Stream) -> int:
    return s.nbits + (s.table_bits() if s.coding == "huffman" else 0)


def encode_raw(key: str, t: Tensor, sec: Sections) -> dict[str, Any]:
    bits = t.numel() * t.element_size() * 8
    return {"key": key, "kind": "raw", "shape": list(t.shape), "dtype": _dtype_name(t),
            "data": sec.add(tensor_bytes(t)),
            "bits": {"dense": bits, "pruned": bits, "shared": bits, "huffman": bits}}


def _scan(mask: Tensor, order: str) -> tuple[np.ndarray, np.ndarray]:
    """Kept weights' positions in scan ``order`` and their row-major flat indices.

    ``row`` scans the weight row-major (output-major); ``col`` scans its ``(out, -1)`` view
    column by column (input-major, the CSC order of EIE), where inputs that feed nothing form
    one run.
    """
    m = mask.detach().cpu()
    if order == "row" or m.dim() < 2:
        pos = np.flatnonzero(m.reshape(-1).numpy())
        return pos, pos
    rows = m.shape[0]
    m2 = m.reshape(rows, -1)
    pos = np.flatnonzero(m2.T.contiguous().numpy())
    return pos, _col_to_flat(pos, rows, m2.shape[1])


def _col_to_flat(pos: np.ndarray, rows: int, rest: int) -> np.ndarray:
    return (pos % rows) * rest + pos // rows


def _best_scan(mask: Tensor, index_bits: int) -> tuple[str, np.ndarray, Stream, np.ndarray]:
    """The scan order whose coded gaps are smaller: ``(order, flat indices, gap stream, gap
    symbols)``."""
    best = None
    for order in ("row", "col") if mask.dim() >= 2 else ("row",):
        pos, flat = _scan(mask, order)
        symbols = encode_gaps(pos, index_bits)
        gaps = huffman_encode(symbols, index_bits)
        if best is None or _stream_bits(gaps) < _stream_bits(best[2]):
            best = (order, flat, gaps, symbols)
    return best


def _paper_fillers(stage: dict, gap_symbols: np.ndarray, sym: np.ndarray, bits: int,
                   clusters: int, index_bits: int, gap_bits: int, cb_bits: int) -> None:
    """Sizes if every filler also carried a codebook index, as the paper's filler zero does."""
    codes = np.full(gap_symbols.size, clusters, dtype=np.int64)
    codes[gap_symbols != 0] = sym
    width = bits + 1 if clusters >= 2 ** bits else bits
    stage["shared_paper"] = gap_symbols.size * (index_bits + bits) + cb_bits
    stage["huffman_paper"] = gap_bits + _stream_bits(huffman_encode(codes, width)) + cb_bits


def encode_layer(key: str, weight: Tensor, mask: Tensor | None, index_bits: int,
                 sec: Sections, codebook: Tensor | None = None, codes: Tensor | None = None,
                 bits: int = 0) -> dict[str, Any]:
    """A ``shared`` (``codebook`` given) or ``sparse`` entry for one weight."""
    elem = weight.element_size() * 8
    entry: dict[str, Any] = {"key": key, "shape": list(weight.shape), "dtype": _dtype_name(weight),
                             "index_bits": index_bits, "layout": "dense" if mask is None else "csr"}
    pos = None
    stage = {"dense": weight.numel() * elem}
    gap_bits = 0
    if mask is not None:
        entry["order"], pos, gaps, gap_symbols = _best_scan(mask, index_bits)
        entry["gaps"] = _stream_entry(gaps, sec)
        stage["pruned"] = gaps.n * (index_bits + elem)
        gap_fixed, gap_bits = gaps.n * index_bits, _stream_bits(gaps)
    else:
        stage["pruned"], gap_fixed = stage["dense"], 0
    n_kept = weight.numel() if pos is None else int(pos.size)
    if codebook is None:
        kept = weight.detach().reshape(-1) if pos is None else \
            weight.detach().reshape(-1)[torch.from_numpy(pos)]
        entry.update(kind="sparse", values=sec.add(tensor_bytes(kept)))
        stage["shared"] = stage["huffman"] = gap_fixed + n_kept * elem
        stage["huffman"] = gap_bits + n_kept * elem
    else:
        flat = codes.detach().cpu().reshape(-1).to(torch.int64).numpy()
        sym = flat if pos is None else flat[pos]
        cs = huffman_encode(sym, bits)
        cb_bits = codebook.numel() * codebook.element_size() * 8
        entry.update(kind="shared", bits=bits, clusters=int(codebook.numel()),
                     codebook=sec.add(tensor_bytes(codebook)), codes=_stream_entry(cs, sec))
        stage["shared"] = gap_fixed + n_kept * bits + cb_bits
        stage["huffman"] = gap_bits + _stream_bits(cs) + cb_bits
        if pos is not None:
            _paper_fillers(stage, gap_symbols, sym, bits, int(codebook.numel()), index_bits,
                           gap_bits, cb_bits)
    entry["n_kept"] = n_kept
    entry["bits"] = stage
    return entry


def _read(payload: memoryview, span: list[int]) -> bytes:
    off, n = span
    if off < 0 or off + n > len(payload):
        raise ValueError("section lies outside the payload")
    return bytes(payload[off:off + n])


def _stream(payload: memoryview, e: dict[str, Any]) -> Stream:
    lengths = lengths_from_table(_read(payload, e["table"]), e["nsym"]) if e["nsym"] else ()
    return Stream(e["coding"], e["n"], e["nbits"], _read(payload, e["data"]), e["width"], lengths)


def decode_entry(e: dict[str, Any], payload: memoryview) -> Tensor:
    """The tensor an entry describes (bit-identical to what was encoded; pruned entries 0)."""
    shape, dtype = e["shape"], e["dtype"]
    if e["kind"] == "raw":
        return bytes_tensor(_read(payload, e["data"]), dtype, shape)
    numel = int(np.prod(shape)) if shape else 1
    pos = None
    if e["layout"] == "csr":
        pos = decode_gaps(decode(_stream(payload, e["gaps"])), e["index_bits"])
        if pos.size != e["n_kept"] or (pos.size and (pos[-1] >= numel)):
            raise ValueError(f"{e['key']}: positions do not fit the tensor")
        if e.get("order") == "col":
            pos = _col_to_flat(pos, shape[0], numel // shape[0])
    if e["kind"] == "sparse":
        vals = bytes_tensor(_read(payload, e["values"]), dtype, [e["n_kept"]])
    elif e["kind"] == "shared":
        cb = bytes_tensor(_read(payload, e["codebook"]), dtype, [e["clusters"]])
        codes = decode(_stream(payload, e["codes"]))
        if codes.size != e["n_kept"] or (codes.size and codes.max() >= cb.numel()):
            raise ValueError(f"{e['key']}: codebook indices do not fit the codebook")
        vals = cb[torch.from_numpy(codes)]
    else:
        raise ValueError(f"{e.get('key')}: unknown entry kind {e['kind']!r}")
    if pos is None:
        return vals.reshape(shape).clone()
    out = torch.zeros(numel, dtype=vals.dtype)
    out[torch.from_numpy(pos)] = vals
    return out.reshape(shape)


__all__ = ["Sections", "decode_entry", "encode_layer", "encode_raw"]
