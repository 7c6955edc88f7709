"""Zero-then-remove equivalence for LSTM/GRU/RNN hidden units (multi-layer, bidirectional)."""

import copy

import pytest
import torch
from torch import nn

from prunekit.handlers import get_handler
from prunekit.handlers.rnn import gates, strided_rows, unit_size


def _zero_units(m: nn.RNNBase, drop: torch.Tensor) -> nn.RNNBase:
    z = copy.deepcopy(m)
    with torch.no_grad():
        for name, p in z.named_parameters():
            if m.proj_size if isinstance(m, nn.LSTM) else 0:
                if name.startswith("weight_hr"):
                    p[drop] = 0
            elif name.startswith(("weight_ih", "weight_hh", "bias")):
                p[strided_rows(drop, m.hidden_size, gates(m))] = 0
    return z


CASES = [(cls, bi, layers, proj) for cls in (nn.LSTM, nn.GRU, nn.RNN) for bi in (False, True)
         for layers in (1, 2) for proj in ((0, 3) if cls is nn.LSTM else (0,))]


@pytest.mark.parametrize("cls,bi,layers,proj", CASES)
def test_rnn_out_and_in_equivalence(cls, bi, layers, proj):
    torch.manual_seed(0)
    kw = {"proj_size": proj} if proj else {}
    m = cls(5, 8, num_layers=layers, bidirectional=bi, batch_first=True, **kw)
    h = get_handler(m)
    x = torch.randn(2, 4, 5)
    r, d = unit_size(m), 2 if bi else 1
    keep = torch.tensor([0, 2]) if proj else torch.tensor([0, 2, 3, 6])
    drop = torch.tensor([i for i in range(r) if i not in keep.tolist()])
    z = _zero_units(m, drop)
    with torch.no_grad():
        for s in ["", "_reverse"][:d]:
            getattr(z, f"weight_ih_l0{s}")[:, 1] = 0
    ref = z(x)[0].reshape(2, 4, d, r)[..., keep].reshape(2, 4, -1)
    h.prune_out(m, torch.cat([keep + i * r for i in range(d)]))
    in_keep = torch.tensor([0, 2, 3, 4])
    h.prune_in(m, in_keep)
    out, _ = m(x[..., in_keep])
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-5
    assert m.input_size == 4 and unit_size(m) == keep.numel()


def test_lstm_proj_internal_cell_units():
    torch.manual_seed(0)
    m = nn.LSTM(4, 8, num_layers=2, proj_size=3, bidirectional=True)
    (g,) = get_handler(m).internal_groups(m)
    assert g.size == 8 and all(t.shape[a] == 8 for t, a in g.weight_slices)
    keep = torch.tensor([1, 4, 5, 7])
    ref_model = copy.deepcopy(m)
    drop = torch.tensor([0, 2, 3, 6])
    with torch.no_grad():
        for name, p in ref_model.named_parameters():
            if name.startswith(("weight_ih", "weight_hh", "bias")):
                p[strided_rows(drop, 8, 4)] = 0
    x = torch.randn(3, 2, 4)
    ref = ref_model(x)[0]
    g.prune(keep)
    assert m.hidden_size == 4
    assert (m(x)[0] - ref).abs().max() <= 1e-5


def test_bidirectional_needs_symmetric_keep():
    m = nn.GRU(3, 4, bidirectional=True)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="symmetric"):
        get_handler(m).prune_out(m, torch.tensor([0, 1, 4]))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
