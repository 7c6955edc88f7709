"""Canonical Huffman coding of integer symbol streams (through ``bitarray``'s C coder).

Deep Compression's last stage (Han, Mao & Dally, ICLR 2016, section 4) Huffman-codes the
codebook indices and the sparse-index gaps, whose distributions are far from uniform. A canonical
code is described by two short lists (how many codes of each length, and the symbols in
canonical order), so the file stores those instead of a tree. ``bitarray.util.canonical_huffman``
builds the code and ``canonical_decode`` decodes it in C.

Streams that Huffman cannot describe for ``canonical_decode`` (codes longer than 31 bits, which
need Fibonacci-skewed counts over millions of symbols) or that it would not shrink are stored
at a fixed width instead; :class:`Stream` says which.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

_EXTRA = "compression"


def _bitarray():
    try:
        import bitarray
        import bitarray.util
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("Huffman coding needs bitarray; install with: "
                          f"pip install 'prunekit[{_EXTRA}]'") from None
    return bitarray


@dataclass(frozen=True)
class Stream:
    """An encoded stream: ``coding`` is ``huffman`` or ``fixed``; ``nbits`` payload bits.

    For ``huffman``, ``lengths[s]`` is the code length of symbol ``s`` (0: absent); the
    canonical code follows from it (symbols ordered by length, then value). For ``fixed``,
    every symbol takes ``width`` bits.
    """

    coding: str
    n: int
    nbits: int
    data: bytes
    width: int = 0
    lengths: tuple[int, ...] = ()

    def table(self) -> bytes:
        """The stored code table: every symbol's code length in 5 bits."""
        return fixed_width(np.asarray(self.lengths), LENGTH_BITS).data if self.lengths else b""

    def table_bits(self) -> int:
        return LENGTH_BITS * len(self.lengths)

    def meta(self) -> dict:
        return {"coding": self.coding, "n": self.n, "nbits": self.nbits, "width": self.width,
                "nsym": len(self.lengths)}


LENGTH_BITS = 5  # code lengths 0..31 (canonical_decode handles codes up to 31 bits)


def fixed_width(symbols: np.ndarray, width: int) -> Stream:
    """Pack non-negative ``symbols`` at ``width`` bits each (big-endian bit order)."""
    s = np.asarray(symbols, dtype=np.uint32).reshape(-1)
    if s.size and int(s.max()) >= 1 << width:
        raise ValueError(f"symbol {int(s.max())} does not fit in {width} bits")
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint32)
    bits = ((s[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
    return Stream("fixed", int(s.size), int(bits.size), np.packbits(bits).tobytes(), width)


def _canonical(lengths: list[int]) -> tuple[list[int], list[int]]:
    """``(count, symbol)`` for ``canonical_decode``: symbols by (code length, value)."""
    order = sorted((n, s) for s, n in enumerate(lengths) if n)
    count = [0] * (max(n for n, _ in order) + 1)
    for n, _ in order:
        count[n] += 1
    return count, [s for _, s in order]


def _code_table(count: list[int], symbol: list[int], ba) -> dict:
    """The canonical code words of ``(count, symbol)`` (first code of each length: DEFLATE's)."""
    table, code, i = {}, 0, 0
    for length in range(1, len(count)):
        for _ in range(count[length]):
            table[symbol[i]] = ba.util.int2ba(code, length=length, endian="big")
            code, i = code + 1, i + 1
        code <<= 1
    return table


def huffman_encode(symbols: np.ndarray, width: int) -> Stream:
    """Huffman-code ``symbols`` (non-negative ints below ``2**width``); fall back to fixed width
    when that is not larger, code table included."""
    s = np.asarray(symbols, dtype=np.int64).reshape(-1)
    fixed = fixed_width(s, width)
    if s.size == 0:
        return fixed
    ba = _bitarray()
    values, counts = np.unique(s, return_counts=True)
    freq = Counter({int(k): int(v) for k, v in zip(values, counts, strict=True)})
    if len(freq) == 1:  # one symbol: a 1-bit code (bitarray needs two symbols for a tree)
        code_len = {next(iter(freq)): 1}
    else:
        code_len = {k: len(c) for k, c in ba.util.canonical_huffman(freq)[0].items()}
    lengths = [0] * (int(values[-1]) + 1)
    for k, n in code_len.items():
        lengths[k] = n
    payload = sum(freq[k] * code_len[k] for k in freq)
    if max(lengths) > 31 or payload + LENGTH_BITS * len(lengths) >= fixed.nbits:
        return fixed
    count, symbol = _canonical(lengths)
    out = ba.bitarray(endian="big")
    out.encode(_code_table(count, symbol, ba), s.tolist())
    return Stream("huffman", int(s.size), len(out), out.tobytes(), width, tuple(lengths))


def lengths_from_table(table: bytes, nsym: int) -> tuple[int, ...]:
    """Inverse of :meth:`Stream.table`."""
    return tuple(int(v) for v in decode(Stream("fixed", nsym, nsym * LENGTH_BITS, table,
                                               LENGTH_BITS)))


def decode(stream: Stream) -> np.ndarray:
    """Symbols (int64) of an encoded stream.

    Raises:
        ValueError: the payload holds fewer symbols than recorded.
    """
    if stream.n == 0:
        return np.zeros(0, dtype=np.int64)
    if len(stream.data) * 8 < stream.nbits:
        raise ValueError(f"stream payload has {len(stream.data) * 8} bits, needs {stream.nbits}")
    if stream.coding == "fixed":
        bits = np.unpackbits(np.frombuffer(stream.data, dtype=np.uint8))[:stream.nbits]
        bits = bits.reshape(stream.n, stream.width).astype(np.int64)
        return bits @ (1 << np.arange(stream.width - 1, -1, -1, dtype=np.int64))
    if stream.coding != "huffman":
        raise ValueError(f"unknown stream coding {stream.coding!r}")
    ba = _bitarray()
    a = ba.bitarray(endian="big")
    a.frombytes(stream.data)
    del a[stream.nbits:]
    count, symbol = _canonical(list(stream.lengths))
    if len(symbol) == 1:
        out = np.full(stream.nbits, symbol[0], dtype=np.int64)
    else:
        out = np.fromiter(ba.util.canonical_decode(a, count, symbol), dtype=np.int64)
    if out.size != stream.n:
        raise ValueError(f"stream decodes to {out.size} symbols, expected {stream.n}")
    return out


__all__ = ["Stream", "decode", "fixed_width", "huffman_encode", "lengths_from_table"]
