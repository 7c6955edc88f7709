"""Huffman and relative-index coding round trips, adversarial distributions included."""

import numpy as np
import pytest

pytest.importorskip("bitarray")

from prunekit.compression.huffman import decode, fixed_width, huffman_encode  # noqa: E402
from prunekit.compression.sparse_index import decode_gaps, encode_gaps  # noqa: E402


@pytest.mark.parametrize("symbols", [
    np.array([], dtype=np.int64),                       # empty layer
    np.full(1000, 7),                                   # one symbol
    np.arange(32).repeat(40),                           # uniform over the whole alphabet
    np.random.default_rng(0).geometric(0.2, 5000).clip(0, 31),  # skewed
    np.array([0, 31]),                                  # two extremes
], ids=["empty", "one-symbol", "uniform", "geometric", "two"])
def test_huffman_round_trip(symbols):
    s = huffman_encode(symbols, 5)
    assert np.array_equal(decode(s), symbols)
    assert s.nbits <= symbols.size * 5


def test_one_symbol_costs_one_bit_each():
    s = huffman_encode(np.full(100, 3), 5)
    assert s.coding == "huffman" and s.nbits == 100


def test_skewed_stream_shrinks_below_fixed_width():
    sym = np.random.default_rng(1).geometric(0.3, 10000).clip(0, 255)
    assert huffman_encode(sym, 8).nbits < 0.5 * fixed_width(sym, 8).nbits


def test_fixed_width_rejects_symbols_too_wide():
    with pytest.raises(ValueError, match="does not fit"):
        fixed_width(np.array([32]), 5)


@pytest.mark.parametrize("width", [1, 3, 5, 8])
def test_gaps_round_trip_with_fillers(width):
    rng = np.random.default_rng(width)
    pos = np.sort(rng.choice(5000, 300, replace=False))
    pos = np.concatenate(([0], pos[pos > 0], [9999]))  # a long final gap needs fillers
    gaps = encode_gaps(pos, width)
    assert (gaps == 0).any()
    assert gaps.max() < 2 ** width
    assert np.array_equal(decode_gaps(gaps, width), pos)


def test_gaps_empty():
    assert decode_gaps(encode_gaps(np.array([], dtype=np.int64), 5), 5).size == 0


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 10), data=st.data())
def test_huffman_and_gaps_round_trip_fuzz(width, data):
    symbols = np.array(data.draw(st.lists(st.integers(0, 2 ** width - 1), max_size=300)),
                       dtype=np.int64)
    assert np.array_equal(decode(huffman_encode(symbols, width)), symbols)
    pos = np.array(sorted(set(data.draw(st.lists(st.integers(0, 5000), max_size=200)))),
                   dtype=np.int64)
    assert np.array_equal(decode_gaps(encode_gaps(pos, width), width), pos)
