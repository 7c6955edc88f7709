"""Perplexity (strided windows) and embedding fidelity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llm_models import tiny_bert, tiny_llama
from prunekit.llm.eval import _windows, embedding_fidelity, perplexity


def _ref_ppl(model, ids, seqlen, stride):
    """Every token t >= 1 scored once, by the first window that contains it as a new target."""
    nll, n, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids) - 1, stride):
        end = min(begin + seqlen, len(ids))
        with torch.no_grad():
            lp = F.log_softmax(model(input_ids=ids[None, begin:end]).logits[0], -1)
        for t in range(max(prev_end, begin + 1), end):
            nll -= float(lp[t - begin - 1, ids[t]])
            n += 1
        prev_end = end
        if end == len(ids):
            break
    return math.exp(nll / n), n


@pytest.mark.parametrize("seqlen,stride", [(16, 16), (16, 5), (7, 7)])
def test_llm_perplexity_matches_token_by_token_reference(seqlen, stride):
    model = tiny_llama()
    ids = torch.randint(0, 96, (50,), generator=torch.Generator().manual_seed(0))
    want, n = _ref_ppl(model, ids, seqlen, stride)
    assert sum(t for *_, t in _windows(50, seqlen, stride)) == n
    if stride < seqlen:  # overlapping windows score every token but the first
        assert n == 49
    got = perplexity(model, ids, seqlen=seqlen, stride=stride, batch_size=3)
    assert got == pytest.approx(want, rel=1e-5)


def test_llm_perplexity_bad_args():
    with pytest.raises(ValueError, match="stride"):
        perplexity(tiny_llama(), torch.arange(10), seqlen=8, stride=9)
    with pytest.raises(ValueError, match="too short"):
        perplexity(tiny_llama(), torch.arange(1), seqlen=8)


def test_llm_embedding_fidelity():
    e = F.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    same = embedding_fidelity(e, e.clone())
    assert same.mean_cosine == pytest.approx(1.0, abs=1e-6) and same.top1_agreement == 1.0
    noisy = embedding_fidelity(e, e + 0.5 * torch.randn(20, 8, generator=torch.Generator().manual_seed(1)))
    assert noisy.mean_cosine < 0.99 and noisy.top1_agreement <= 1.0
    with pytest.raises(ValueError, match="embedding sets"):
        embedding_fidelity(e, e[:5])


def test_llm_sentence_embeddings_with_bert():
    from llm_models import byte_tokenizer
    from prunekit.llm.eval import sentence_embeddings

    tok = byte_tokenizer()
    tok.pad_token = "!"
    model = tiny_bert()
    model.resize_token_embeddings(256)
    emb = sentence_embeddings(model, tok, ["a b c", "longer sentence here", "x"], batch_size=2)
    assert emb.shape == (3, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    one = sentence_embeddings(model, tok, ["x"])  # padding does not change the pooled result
    torch.testing.assert_close(one[0], emb[2], atol=1e-5, rtol=1e-5)
