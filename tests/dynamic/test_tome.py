"""Token merging on a torchvision ViT: r=0 is the model, shapes kept, bad input."""

import pytest
import torch
from torch import nn

from prunekit.dynamic import merge_tokens, tokens_kept, unmerge_tokens
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
    with pytest.raises(ValueError, match="no ViT token blocks"):
        merge_tokens(nn.Sequential(nn.Linear(2, 2)), 4)
    vit = _vit()
    with pytest.raises(ValueError, match="r:"):
        merge_tokens(vit, [1, 2])
    with pytest.raises(ValueError, match="r:"):
        merge_tokens(vit, -1)
    assert not any("forward" in m.__dict__ for m in vit.modules())
