"""CUDA path of the block-by-block driver (run with ``pytest -m gpu`` on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from llm_models import samples, tiny_llama
from prunekit.llm.oneshot import prune_llm


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_llm_cuda_block_offload_matches_cpu(method):
    cpu, gpu = tiny_llama(), tiny_llama()
    ids = samples()
    prune_llm(cpu, ids, method=method, pattern="2:4", device="cpu")
    prune_llm(gpu, ids, method=method, pattern="2:4", device="cuda")
    for (n, p), (_, q) in zip(cpu.named_parameters(), gpu.named_parameters(), strict=True):
        assert q.device.type == "cpu", n  # every block went back home
        assert (p == 0).eq(q == 0).float().mean() > 0.99, n
        torch.testing.assert_close(p, q, atol=1e-3, rtol=1e-3)
