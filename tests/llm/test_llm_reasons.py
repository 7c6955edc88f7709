"""The one-shot LLM report says why every layer got its sparsity (uniform, N:M, OWL ratio)."""

from __future__ import annotations

import pytest

from prunekit.llm.oneshot import prune_llm

from llm_models import samples, tiny_llama

pytest.importorskip("transformers")


def test_uniform_and_nm_reasons():
    rep = prune_llm(tiny_llama(), samples(), method="wanda", sparsity=0.5)
    assert set(rep.layer_reasons) == set(rep.layer_sparsity)
    assert all("wanda: uniform 50.00%" in why for why in rep.layer_reasons.values())
    rep = prune_llm(tiny_llama(), samples(), method="magnitude", pattern="2:4")
    assert all("2:4 pattern" in why for why in rep.layer_reasons.values())


def test_owl_reason_names_the_block_outlier_ratio():
    rep = prune_llm(tiny_llama(), samples(), method="wanda", sparsity=0.6, owl=True,
                    owl_lambda=0.1, owl_m=2.0)
    data = rep.to_dict()
    assert len(data["block_outlier_ratio"]) == 2
    for layer in data["layers"]:
        block = int(layer["name"].split(".")[2])  # model.layers.<i>.<layer>
        assert f"OWL block sparsity {rep.block_sparsity[block]:.2%}" in layer["reason"]
        assert f"outlier ratio {rep.block_outlier_ratio[block]:.4f}" in layer["reason"]
