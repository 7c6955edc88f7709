"""Planned parameters and MACs equal the counted ones when attention heads are pruned (GQA)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.config import TargetSpec
from prunekit.macs import count_macs
from prunekit.structural.plan import plan_structured

transformers = pytest.importorskip("transformers")


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def llama():
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=8,
                                   num_key_value_heads=2)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval(), torch.randint(0, 64, (2, 6))


def test_gqa_head_pruning_plans_the_counted_params_and_macs(llama):
    model, x = llama
    plan = plan_structured(model, x, ratio=0.5)
    pruned = plan.apply(copy=True).eval()
    attn = pruned.model.layers[0].self_attn
    assert attn.k_proj.out_features < model.model.layers[0].self_attn.k_proj.out_features
    assert plan.params == (_params(model), _params(pruned))
    assert plan.macs == (count_macs(model, x), count_macs(pruned, x))


def test_gqa_params_target_lands_on_the_fraction(llama):
    model, x = llama
    plan = plan_structured(model, x, target=TargetSpec(params=0.7))
    pruned = plan.apply(copy=True)
    assert plan.params[1] == _params(pruned)
    assert abs(_params(pruned) / _params(model) - 0.7) < 0.01


def test_transposed_conv_macs_follow_the_input_size():
    """Padding and output padding make the output size no multiple of the input size."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1,
                                                                 output_padding=1), nn.Conv2d(6, 4, 1))
    x = torch.randn(2, 3, 9, 7)
    plan = plan_structured(model, x, ratio=0.5)
    assert plan.macs[0] == count_macs(model, x)
    assert plan.macs[1] == count_macs(plan.apply(copy=True), x)
