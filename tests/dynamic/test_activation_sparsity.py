"""Activation sparsity: thresholds, kernels equal to the masked-dense reference, bad input."""

import copy

import pytest
import torch
from torch import nn

from prunekit.dynamic import (
    ActivationSparsityConfig, disabled, layer_states, remove_activation_sparsity,
    sparsify_activations,
)
from prunekit.dynamic.kernels import KERNEL_FNS, LayerState

FAST = dict(repeats=2)


def _reference(model_ref: nn.Module, states: dict, x: torch.Tensor) -> torch.Tensor:
    """Masked-dense forward built by hooks on an untouched copy."""
    mods = dict(model_ref.named_modules())
    hs = [mods[n].register_forward_pre_hook(
        lambda _m, a, t=s.threshold: (a[0] * (a[0].abs() > t),)) for n, s in states.items()]
    try:
        with torch.no_grad():
            return model_ref(x)
    finally:
        for h in hs:
            h.remove()


@pytest.mark.parametrize("sparsity", [0.25, 0.5])
def test_heldout_sparsity_within_two_points(tiny, calib, sparsity):
    rep = sparsify_activations(tiny, calib, sparsity, config=ActivationSparsityConfig(**FAST))
    assert {r.name for r in rep.layers} == {"blocks.0.up", "blocks.0.down", "blocks.1.up",
                                           "blocks.1.down", "head"}
    for r in rep.layers:
        assert abs(r.heldout_sparsity - sparsity) <= 0.02, r
    assert abs(rep.mean_heldout - sparsity) <= 0.02
    assert "held-out" in rep.summary() and "blocks.0.up" in rep.summary()


@pytest.mark.parametrize("kernel", ["masked_dense", "gather_rows", "gather_bag"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["both", "input_major"])
def test_every_kernel_equals_masked_dense(tiny, calib, kernel, dtype, layout):
    ref_model = copy.deepcopy(tiny).to(dtype)
    model = tiny.to(dtype)
    sparsify_activations(model, calib.to(dtype), 0.5, config=ActivationSparsityConfig(
        kernel=kernel, weight_layout=layout, multi_token="masked", **FAST))
    states = layer_states(model)
    assert all(s.kernel == kernel for s in states.values())
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for shape in [(1, 32), (1, 1, 32), (4, 1, 32), (1, 16, 32), (3, 7, 32)]:
        x = torch.randn(shape, dtype=dtype)
        with torch.no_grad():
            out = model(x)
        torch.testing.assert_close(out, _reference(ref_model, states, x), **tol)


def test_conv1d_gather_matches_reference():
    transformers = pytest.importorskip("transformers")
    conv = transformers.pytorch_utils.Conv1D(24, 16)  # weight (in=16, out=24)
    model = nn.Sequential(conv)
    ref = copy.deepcopy(model)
    sparsify_activations(model, torch.randn(40, 4, 16), 0.5, config=ActivationSparsityConfig(
        kernel="gather_bag", multi_token="masked", **FAST))
    states = layer_states(model)
    for shape in [(1, 1, 16), (2, 5, 16)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(model(x), _reference(ref, states, x))


def test_greedy_meets_parameter_weighted_target(tiny, calib):
    rep = sparsify_activations(tiny, calib, 0.4, config=ActivationSparsityConfig(
        allocation="greedy", **FAST))
    sizes = dict((n, m.weight.numel()) for n, m in tiny.named_modules() if hasattr(m, "weight"))
    tot = sum(sizes[r.name] for r in rep.layers)
    mean_target = sum(r.target * sizes[r.name] for r in rep.layers) / tot
    assert 0.4 - 1e-9 <= mean_target <= 0.46
    for block in ("blocks.0", "blocks.1", "head"):  # every block at the target (TEAL)
        rows = [r for r in rep.layers if r.name.startswith(block)]
        w = sum(sizes[r.name] for r in rows)
        assert sum(r.target * sizes[r.name] for r in rows) / w >= 0.4 - 1e-9, block


class _TwoBranches(nn.Module):
    """Two identical layers; the second barely reaches the block's output."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(32, 32)
        self.b = nn.Linear(32, 32)
        self.b.load_state_dict(self.a.state_dict())

    def forward(self, x):
        return self.a(x) + 1e-3 * self.b(x)


def test_greedy_scores_the_block_output(calib):
    """Same weights and inputs, so each layer's own error is the same; the block's is not."""
    from prunekit.dynamic.greedy import block_name, greedy_block

    assert block_name("model.layers.3.mlp.up_proj") == "model.layers.3"
    assert block_name("lm_head") == "lm_head"
    block = _TwoBranches()
    x = calib[:8]
    rows = {"a": x.reshape(-1, 32), "b": x.reshape(-1, 32)}
    got = greedy_block(block, [((x,), {})], {"a": block.a, "b": block.b}, rows, 0.5, 0.05)
    assert got["b"] > 0.8 and got["a"] < 0.2, got
    assert (got["a"] + got["b"]) / 2 >= 0.5 - 1e-9


def test_disabled_and_remove_restore_dense(tiny, calib):
    x = torch.randn(2, 3, 32)
    with torch.no_grad():
        dense = tiny(x)
    sparsify_activations(tiny, calib, 0.5, config=ActivationSparsityConfig(
        multi_token="masked", **FAST))
    with torch.no_grad():
        assert not torch.equal(tiny(x), dense)
        with disabled(tiny):
            assert torch.equal(tiny(x), dense)
        assert remove_activation_sparsity(tiny) == 5
        assert torch.equal(tiny(x), dense)


class _FakeClock:
    """Fixed cost per kernel, read from the state being timed."""

    def __init__(self, states, costs):
        self.states, self.costs = states, costs

    def time_call(self, fn):
        fn()
        st = next(iter(self.states.values()))
        return self.costs[st.kernel]


def test_kernel_choice_by_measurement_with_fake_clock(tiny, calib, monkeypatch):
    costs = {"masked_dense": 3.0, "gather_rows": 1.0, "gather_bag": 2.0}
    clock = _FakeClock({}, costs)
    real = sparsify_activations.__globals__["choose_kernels"]

    def spy(layers, kernels, repeats, clk):
        clock.states = {n: v[1] for n, v in layers.items()}
        real(layers, kernels, repeats, clk)
    monkeypatch.setitem(sparsify_activations.__globals__, "choose_kernels", spy)
    net = nn.Sequential(nn.Linear(32, 32))
    rep = sparsify_activations(net, calib, 0.5, config=ActivationSparsityConfig(**FAST),
                               clock=clock)
    assert rep.layers[0].kernel == "gather_rows"
    assert rep.layers[0].times_ms["masked_dense"] == 3.0


def test_wrong_kernel_is_dropped_and_reported(tiny, calib, monkeypatch):
    monkeypatch.setitem(KERNEL_FNS, "gather_rows", lambda m, st, x: torch.zeros(
        *x.shape[:-1], m.out_features))
    rep = sparsify_activations(tiny, calib, 0.5, config=ActivationSparsityConfig(
        kernels=("masked_dense", "gather_rows"), **FAST))
    for r in rep.layers:
        assert r.kernel == "masked_dense"
        assert "gather_rows" in r.note and "masked-dense check" in r.note


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, type(model.forward)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sparsity=1.0), "sparsity"),
    (dict(sparsity=-0.1), "sparsity"),
    (dict(config=ActivationSparsityConfig(min_tokens=10_000)), "min_tokens"),
    (dict(config=ActivationSparsityConfig(include=("nothing*",))), "no nn.Linear"),
])
def test_bad_input_names_argument_and_leaves_model(tiny, calib, kwargs, match):
    before, fwd = _snapshot(tiny)
    with pytest.raises(ValueError, match=match):
        sparsify_activations(tiny, calib, **kwargs)
    after, fwd2 = _snapshot(tiny)
    assert fwd2 is fwd and not layer_states(tiny)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_model_without_linear_and_short_calib():
    with pytest.raises(ValueError, match="model: no nn.Linear"):
        sparsify_activations(nn.Sequential(nn.ReLU()), torch.randn(4, 3), 0.4)
    with pytest.raises(ValueError, match="calib"):
        sparsify_activations(nn.Linear(3, 3), torch.randn(1, 3), 0.4)


def test_config_validation():
    for bad in [dict(allocation="x"), dict(kernels=("fast",)), dict(heldout=1.0),
                dict(weight_layout="rows"), dict(repeats=0)]:
        with pytest.raises(ValueError):
            ActivationSparsityConfig(**bad)


def test_empty_input_row_gives_bias_only():
    lin = nn.Linear(8, 4)
    st = LayerState(threshold=1e9, sparsity=0.99, kernel="gather_bag", orig_forward=lin.forward)
    with torch.no_grad():
        for k in ("gather_bag", "gather_rows"):
            torch.testing.assert_close(KERNEL_FNS[k](lin, st, torch.randn(1, 8)),
                                       lin.bias.detach().unsqueeze(0))


def test_recalibration_uses_dense_inputs(tiny, calib):
    cfg = ActivationSparsityConfig(**FAST)
    fresh = copy.deepcopy(tiny)
    sparsify_activations(tiny, calib, 0.3, config=cfg)
    again = sparsify_activations(tiny, calib, 0.5, config=cfg)
    direct = sparsify_activations(fresh, calib, 0.5, config=cfg)
    assert [r.threshold for r in again.layers] == [r.threshold for r in direct.layers]
    assert len(layer_states(tiny)) == 5


def test_multi_token_dense_runs_the_unmodified_layer_beyond_one_token(tiny, calib):
    """The default: prefill and batches > 1 get exactly the dense model's answer."""
    ref_model = copy.deepcopy(tiny)
    sparsify_activations(tiny, calib, 0.5, config=ActivationSparsityConfig(
        kernel="gather_bag", **FAST))
    states = layer_states(tiny)
    assert all(not s.mask_multi for s in states.values())
    with torch.no_grad():
        for shape in [(4, 1, 32), (1, 16, 32)]:  # prefill and batch > 1: the dense answer
            x = torch.randn(shape)
            torch.testing.assert_close(tiny(x), ref_model(x))
        x = torch.randn(1, 1, 32)  # one token: the sparse kernel
        torch.testing.assert_close(tiny(x), _reference(ref_model, states, x))
    with pytest.raises(ValueError, match="multi_token"):
        ActivationSparsityConfig(multi_token="sometimes")


def test_fallback_is_the_plain_linear_call(tiny, calib):
    """Beyond one token a plain nn.Linear runs hardshrink + F.linear on its own weight."""
    sparsify_activations(tiny, calib, 0.5, config=ActivationSparsityConfig(
        multi_token="masked", **FAST))
    st = layer_states(tiny)["blocks.0.up"]
    assert st.plain and st.mask_multi
    x = torch.randn(3, 5, 32)
    with torch.no_grad():
        want = torch.nn.functional.linear(torch.nn.functional.hardshrink(x, st.threshold),
                                          tiny.blocks[0].up.weight, tiny.blocks[0].up.bias)
        assert torch.equal(tiny.blocks[0].up(x), want)
