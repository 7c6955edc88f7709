"""The .pkc file: bit-identical round trips, stage sizes, refusal of damaged files."""

import hashlib
import struct

import pytest
import torch

pytest.importorskip("bitarray")

from prunekit.compression import (  # noqa: E402
    CompressedFileError, compress, decompress, read_manifest, share_weights,
)
from prunekit.io import load_model_spec, plain_state_dict  # noqa: E402
from prunekit.weights import prune_weights  # noqa: E402


def _bits(t):
    return (t + 0.0).contiguous().view(torch.int32)  # +0.0 folds the sign of pruned zeros


def _assert_bit_identical(model, restored):
    sd = plain_state_dict(model)
    rsd = restored.state_dict()
    assert set(sd) == set(rsd)
    for k, v in sd.items():
        assert torch.equal(_bits(v), _bits(rsd[k])), k


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_shared_model_round_trip_is_bit_identical(request, kind, tmp_path):
    model = request.getfixturevalue(f"pruned_{kind}")
    share_weights(model, bits={"Conv2d": 8, "Linear": 5})
    info = compress(model, tmp_path / "m.pkc")
    restored = decompress(tmp_path / "m.pkc", model=request.getfixturevalue(f"make_{kind}")())
    _assert_bit_identical(model, restored)
    x = torch.randn(3, 64) if kind == "mlp" else torch.randn(3, 1, 8, 8)
    assert torch.equal(model(x), restored(x))
    assert info["ratio"]["huffman"] > info["ratio"]["shared"] > info["ratio"]["pruned"] > 1
    assert info["file_bytes"] == (tmp_path / "m.pkc").stat().st_size
    assert info["file_bytes"] < info["bytes"]["pruned"]


def test_pruned_only_and_dense_shared_round_trip(pruned_mlp, make_mlp, tmp_path):
    compress(pruned_mlp, tmp_path / "p.pkc")                       # pruned, not shared
    _assert_bit_identical(pruned_mlp, decompress(tmp_path / "p.pkc", model=make_mlp()))
    dense = make_mlp()
    share_weights(dense, bits=6)                                    # shared, not pruned
    info = compress(dense, tmp_path / "d.pkc")
    assert all(e["layout"] == "dense" for e in info["tensors"] if e["kind"] == "shared")
    _assert_bit_identical(dense, decompress(tmp_path / "d.pkc", model=make_mlp()))


def test_spec_rebuilds_the_architecture(tmp_path):
    model = load_model_spec("module:prunekit.recover.tasks:mlp")
    prune_weights(model, 0.8)
    share_weights(model, bits=5)
    compress(model, tmp_path / "m.pkc")
    restored = decompress(tmp_path / "m.pkc")
    assert type(restored).__name__ == "Sequential"
    _assert_bit_identical(model, restored)


def test_no_spec_needs_model(pruned_mlp, tmp_path):
    compress(pruned_mlp, tmp_path / "m.pkc")
    with pytest.raises(ValueError, match="pass model="):
        decompress(tmp_path / "m.pkc")


def test_manifest_reports_every_stage(pruned_cnn, tmp_path):
    share_weights(pruned_cnn, bits={"Conv2d": 8, "Linear": 5})
    compress(pruned_cnn, tmp_path / "m.pkc")
    m = read_manifest(tmp_path / "m.pkc")
    assert m["version"] == 1
    for e in m["tensors"]:
        assert {"dense", "pruned", "shared", "huffman"} <= set(e["bits"])
    layer = next(e for e in m["tensors"] if e["key"] == "0.weight")
    assert layer["bits"]["huffman"] <= layer["bits"]["shared"]
    assert layer["bits"]["dense"] == 8 * 9 * 32


@pytest.fixture
def pkc(pruned_mlp, tmp_path):
    share_weights(pruned_mlp, bits=5)
    path = tmp_path / "m.pkc"
    compress(pruned_mlp, path)
    return path


def test_truncated_file_refused(pkc, make_mlp):
    data = pkc.read_bytes()
    pkc.write_bytes(data[: len(data) // 2])
    model = make_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CompressedFileError, match="checksum"):
        decompress(pkc, model=model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_corrupted_byte_refused(pkc, make_mlp):
    data = bytearray(pkc.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pkc.write_bytes(bytes(data))
    with pytest.raises(CompressedFileError, match="checksum"):
        decompress(pkc, model=make_mlp())


def test_unknown_version_refused(pkc, make_mlp):
    body = bytearray(pkc.read_bytes()[:-32])
    struct.pack_into("<H", body, 4, 99)
    pkc.write_bytes(bytes(body) + hashlib.sha256(bytes(body)).digest())
    with pytest.raises(CompressedFileError, match="unknown .pkc version 99"):
        decompress(pkc, model=make_mlp())


def test_not_a_pkc_file(tmp_path):
    p = tmp_path / "x.pkc"
    p.write_bytes(b"hello world" * 10)
    with pytest.raises(CompressedFileError, match="not a prunekit"):
        read_manifest(p)


def test_wrong_architecture_leaves_model_untouched(pkc, make_cnn):
    model = make_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit"):
        decompress(pkc, model=model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bad_index_bits_leaves_existing_file(pkc, pruned_mlp):
    data = pkc.read_bytes()
    with pytest.raises(ValueError, match="index_bits"):
        compress(pruned_mlp, pkc, index_bits={"Linear": 0})
    assert pkc.read_bytes() == data
