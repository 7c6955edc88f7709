"""Weight sharing: k-means codebooks, masks kept, fine-tuning trains centroids only."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from prunekit.compression import codebook_of, kmeans_1d, share_weights, shared_modules, unshare
from prunekit.masks import get_mask
from prunekit.recover.loop import finetune
from prunekit.recover.recipe import Finetune


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_kmeans_every_value_is_its_nearest_centroid(init):
    v = torch.randn(5000)
    cents, assign = kmeans_1d(v, 16, init=init)
    assert cents.numel() <= 16 and torch.all(cents[1:] >= cents[:-1])
    dist = (v[:, None] - cents[None, :]).abs()
    assert torch.equal(dist.gather(1, assign[:, None]).squeeze(1), dist.min(1).values)


def test_kmeans_fewer_values_than_clusters():
    cents, assign = kmeans_1d(torch.tensor([0.5, -1.0, 2.0]), 8)
    assert torch.equal(cents[assign], torch.tensor([0.5, -1.0, 2.0]))


def test_kmeans_empty_layer():
    cents, assign = kmeans_1d(torch.zeros(0), 4)
    assert cents.numel() == 1 and assign.numel() == 0


def test_share_reproduces_kept_weights_to_centroids(pruned_mlp):
    before = {n: (m.weight.detach().clone(), get_mask(m).clone())
              for n, m in pruned_mlp.named_modules() if get_mask(m) is not None}
    report = share_weights(pruned_mlp, bits={"Linear": 5}, init="linear")
    assert [r.name for r in report.layers] == ["0", "2", "4"]
    for name, mod in shared_modules(pruned_mlp).items():
        w0, mask0 = before[name]
        cb, idx, mask, bits = codebook_of(mod)
        assert bits == 5 and cb.numel() <= 32
        assert torch.equal(mask, mask0)                           # mask kept
        assert torch.all(mod.weight[~mask] == 0)                  # pruned stay zero
        kept = w0[mask]
        nearest = (kept[:, None] - cb[None, :]).abs().argmin(1)
        assert torch.equal(mod.weight[mask], cb[nearest])         # each kept weight -> centroid
        assert torch.equal(mod.weight[mask], cb[idx[mask].long()])


def _loader():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 64, generator=g), torch.randint(0, 10, (256,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=g)


def test_finetune_trains_centroids_and_keeps_the_codebook(pruned_mlp):
    share_weights(pruned_mlp, bits=3)
    cb0 = {n: codebook_of(m)[0].clone() for n, m in shared_modules(pruned_mlp).items()}
    finetune(pruned_mlp, _loader(), torch.nn.functional.cross_entropy,
             Finetune(epochs=2, lr=0.05))
    for name, mod in shared_modules(pruned_mlp).items():
        cb, idx, mask, _ = codebook_of(mod)
        assert not torch.equal(cb, cb0[name])                     # centroids were trained
        kept = mod.weight[mask]
        assert kept.unique().numel() <= 2 ** 3                    # still <= 2^bits values
        assert torch.all(mod.weight[~mask] == 0)


def test_centroid_gradient_is_the_sum_over_its_cluster():
    model = torch.nn.Sequential(torch.nn.Linear(64, 10))
    from prunekit.weights import prune_weights
    prune_weights(model, 0.5)
    share_weights(model, bits=3)
    layer = model[0]
    x = torch.randn(8, 64)
    y = layer(x)
    y.square().sum().backward()
    cb, idx, mask, _ = codebook_of(layer)
    g_weight = (2 * y.detach()).T @ x                              # dLoss/dW
    expected = torch.zeros_like(cb).scatter_add_(0, idx[mask].long(), g_weight[mask])
    torch.testing.assert_close(layer.parametrizations.weight.original.grad, expected)


def test_unshare_bakes_values_keeps_mask(pruned_mlp):
    share_weights(pruned_mlp, bits=4)
    w = pruned_mlp[0].weight.detach().clone()
    unshare(pruned_mlp)
    assert not shared_modules(pruned_mlp)
    assert torch.equal(pruned_mlp[0].weight, w) and get_mask(pruned_mlp[0]) is not None


@pytest.mark.parametrize("bits", [0, 17, -1, 2.5, {"Linear": 20}])
def test_bits_out_of_range_rejected_model_untouched(pruned_mlp, bits):
    sd = {k: v.clone() for k, v in pruned_mlp.state_dict().items()}
    with pytest.raises(ValueError, match="bits"):
        share_weights(pruned_mlp, bits=bits)
    assert not shared_modules(pruned_mlp)
    assert all(torch.equal(v, pruned_mlp.state_dict()[k]) for k, v in sd.items())


def test_unknown_init_and_unmatched_entry_rejected(pruned_mlp):
    with pytest.raises(ValueError, match="init"):
        share_weights(pruned_mlp, bits=5, init="kmeans++")
    with pytest.raises(ValueError, match="Conv9d"):
        share_weights(pruned_mlp, bits={"Linear": 5, "Conv9d": 8})
    assert not shared_modules(pruned_mlp)


def test_fewer_kept_weights_than_clusters_warns_and_reports(make_mlp):
    model = make_mlp()
    from prunekit.weights import prune_weights
    prune_weights(model, 0.999, scope="layer")
    with pytest.warns(UserWarning, match="clusters"):
        report = share_weights(model, bits=8)
    small = [r for r in report.layers if r.note]
    assert small and all(r.clusters <= r.kept or r.kept == 0 for r in small)


def test_sharing_twice_is_refused(pruned_mlp):
    share_weights(pruned_mlp, bits=4)
    with pytest.raises(ValueError, match="already shared"):
        share_weights(pruned_mlp, bits=4)
