"""Calibration samples: seeded windows, sources, and the too-short error."""

from __future__ import annotations

import pytest
import torch

from prunekit.llm.calib import CalibConfig, calibration_samples


def char_tok(text):
    return [ord(c) % 96 for c in text]


TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(40))


def test_llm_calib_shapes_seed_and_windows():
    a = calibration_samples(TEXT, char_tok, nsamples=8, seqlen=32, seed=0)
    b = calibration_samples(TEXT, char_tok, nsamples=8, seqlen=32, seed=0)
    c = calibration_samples(TEXT, char_tok, nsamples=8, seqlen=32, seed=1)
    assert a.shape == (8, 32) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)
    stream = torch.tensor(char_tok(TEXT))
    for row in a:  # every sample is a contiguous window of the token stream
        starts = [s for s in range(len(stream) - 31) if torch.equal(stream[s : s + 32], row)]
        assert starts


def test_llm_calib_sources_file_iterable_and_hf_tokenizer(tmp_path):
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    p = tmp_path / "calib.txt"
    p.write_text(TEXT)
    from_file = calibration_samples(str(p), char_tok, nsamples=4, seqlen=16, seed=3)
    from_str = calibration_samples(TEXT, char_tok, nsamples=4, seqlen=16, seed=3)
    assert torch.equal(from_file, from_str)
    it = calibration_samples(["alpha beta " * 30, "gamma " * 30], char_tok, nsamples=4, seqlen=16)
    assert it.shape == (4, 16)
    vocab = {w: i for i, w in enumerate(["[UNK]", "the", "quick", "brown", "fox", "line"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    ids = calibration_samples(TEXT, hf, nsamples=2, seqlen=8)
    assert ids.shape == (2, 8) and int(ids.max()) < len(vocab)


def test_llm_calib_too_short_is_a_clear_error():
    with pytest.raises(ValueError, match=r"too short: 10 tokens.*128\*512 = 65536"):
        calibration_samples("0123456789", char_tok, nsamples=128, seqlen=512)
    with pytest.raises(ValueError, match="empty"):
        calibration_samples("   ", char_tok, nsamples=1, seqlen=1)
    with pytest.raises(ValueError, match="nsamples"):
        CalibConfig(nsamples=0)
