"""Token merging on torchvision/timm ViTs and HF BERT encoders: r=0 is the model, shapes kept,
sizes carried into attention and pooling, bad input."""

import pytest
import torch
from torch import nn

from prunekit.dynamic import mean_pool, merge_tokens, token_sizes, tokens_kept, unmerge_tokens
from prunekit.dynamic.tome import bipartite_merge

torchvision = pytest.importorskip("torchvision")


def _vit():
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=3,
                                              num_heads=2, hidden_dim=32, mlp_dim=64,
                                              num_classes=5).eval()
    nn.init.normal_(vit.heads.head.weight)  # zero-initialised by torchvision
    return vit


def test_r_zero_equals_unmodified_model():
    vit = _vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = vit(x)
        assert merge_tokens(vit, 0) == []
        assert torch.equal(vit(x), ref)
    assert tokens_kept(vit) == [17, 17, 17]


def test_merging_keeps_shapes_and_reduces_tokens():
    vit = _vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = vit(x)
        merge_tokens(vit, [2, 3, 0])
        out = vit(x)
        assert tokens_kept(vit) == [15, 12, 12]
        assert out.shape == ref.shape and torch.isfinite(out).all()
        cos = torch.nn.functional.cosine_similarity(out, ref).min()
        assert cos > 0.5
        unmerge_tokens(vit)
        assert torch.equal(vit(x), ref)


def test_merge_sizes_and_class_token():
    x = torch.randn(1, 9, 4)
    size = torch.ones(1, 9, 1)
    merged, new = bipartite_merge(x, size, x, 3)
    assert merged.shape == (1, 6, 4) and float(new.sum()) == 9.0
    assert torch.equal(merged[:, 0], x[:, 0])  # class token untouched and first
    total = (merged * new).sum(1)
    torch.testing.assert_close(total, x.sum(1))  # size-weighted mass conserved


def test_bad_input():
    with pytest.raises(ValueError, match="no ViT / BERT-style token blocks"):
        merge_tokens(nn.Sequential(nn.Linear(2, 2)), 4)
    vit = _vit()
    with pytest.raises(ValueError, match="r:"):
        merge_tokens(vit, [1, 2])
    with pytest.raises(ValueError, match="r:"):
        merge_tokens(vit, -1)
    with pytest.raises(ValueError, match="r:"):
        merge_tokens(vit, 1.5)
    assert not any("forward" in m.__dict__ for m in vit.modules())


def test_fractional_r_merges_a_share_of_the_tokens():
    vit = _vit()
    with torch.no_grad():
        merge_tokens(vit, 0.25)
        vit(torch.randn(1, 3, 32, 32))
    assert tokens_kept(vit) == [13, 10, 8]  # 17 - 4, 13 - 3, 10 - 2


def _bert():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3,
                                  num_attention_heads=4, intermediate_size=64)
    torch.manual_seed(0)
    return transformers.BertModel(cfg).eval()


def _batch():
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0  # the second sentence has 8 real tokens and 4 of padding
    return ids, mask


def test_bert_r_zero_equals_unmodified_model():
    bert = _bert()
    ids, mask = _batch()
    with torch.no_grad():
        ref = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        merge_tokens(bert, 0)
        assert torch.equal(bert(input_ids=ids, attention_mask=mask).last_hidden_state, ref)
    assert tokens_kept(bert) == [12, 12, 12]
    assert token_sizes(bert) is None


def test_bert_sizes_carry_padding_and_pooling():
    bert = _bert()
    ids, mask = _batch()
    with torch.no_grad():
        ref = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        dense = mean_pool(bert, ref, mask)
        merge_tokens(bert, 2)
        out = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.shape == (2, 6, 32) and tokens_kept(bert) == [10, 8, 6]
    sizes = token_sizes(bert)
    assert sizes.shape == (2, 6, 1)
    torch.testing.assert_close(sizes.sum(1).squeeze(-1), mask.sum(1).float())  # padding: size 0
    merged = mean_pool(bert, out, mask)
    assert torch.nn.functional.cosine_similarity(merged, dense).min() > 0.95


def test_bert_merged_sentence_ignores_its_padding():
    """With merging, padding changes nothing when it is the only difference: one sentence alone
    and the same sentence padded (merging only where the padded copy has real tokens)."""
    bert = _bert()
    ids, mask = _batch()
    with torch.no_grad():
        merge_tokens(bert, [0, 0, 2])
        alone = mean_pool(bert, bert(input_ids=ids[1:, :8]).last_hidden_state)
        padded = bert(input_ids=ids[1:], attention_mask=mask[1:]).last_hidden_state
        padded = mean_pool(bert, padded, mask[1:])
    assert torch.nn.functional.cosine_similarity(alone, padded).item() > 0.98


def test_timm_vit_r_zero_and_merging():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                            num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = vit(x)
        merge_tokens(vit, 0)
        assert torch.equal(vit(x), ref)
        merge_tokens(vit, [1] + [0] * 11)
        out = vit(x)
    assert out.shape == ref.shape and tokens_kept(vit)[:2] == [4, 4]


def test_deepcopy_of_a_merged_model_runs_alone():
    import copy

    vit = _vit()
    merge_tokens(vit, 2)
    twin = copy.deepcopy(vit)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = vit(x), twin(x)
        assert torch.equal(twin(x), b)  # sizes reset between forwards of the copy
    torch.testing.assert_close(a, b)
    assert tokens_kept(twin) == [15, 13, 11]
