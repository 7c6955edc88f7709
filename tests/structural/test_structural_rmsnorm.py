"""RMSNorm (torch.nn.RMSNorm and HF ``*RMSNorm``): the residual stream through it is prunable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit as pk


class RMSBlock(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.inp = nn.Linear(8, d)
        self.norm = nn.RMSNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.out_norm = nn.RMSNorm(d, elementwise_affine=False)
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.fc2(torch.relu(self.fc1(self.norm(h))))
        return self.head(self.out_norm(h))


def test_torch_rmsnorm_stream_is_pruned_and_verified():
    torch.manual_seed(0)
    m = RMSBlock().eval()
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 8)
    plan = pk.plan_structured(m, x, ratio=0.5)
    assert not any(name.startswith("inp.out") for name, _, _ in plan.fixed), plan.fixed
    pruned = plan.apply(copy=True)
    assert pruned.norm.weight.numel() == 8 and pruned.norm.normalized_shape == (8,)
    assert pruned.out_norm.normalized_shape == (8,) and pruned.head.out_features == 3
    assert pk.verify(m, plan, x, pruned=pruned).ok


def test_hf_llama_hidden_size_pruned_and_round_trips(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, use_cache=False)
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(cfg).eval()
    x = torch.randint(0, 64, (1, 8))
    plan = pk.plan_structured(m, x, ratio=0.5)
    pruned = plan.apply(copy=True)
    assert pruned.model.norm.weight.numel() == 16 and pruned.config.hidden_size == 16
    assert pruned.lm_head.out_features == 64  # the vocabulary is kept
    assert pk.verify(m, plan, x, pruned=pruned).ok
    pruned.save_pretrained(tmp_path / "hf")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        assert torch.allclose(back(x).logits, pruned(x).logits, atol=1e-5)
