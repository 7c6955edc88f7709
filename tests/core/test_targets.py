"""The target concept has one home (prunekit.config): the model target, its per-layer view and
the one latency-target parser."""

from __future__ import annotations

import pytest

import prunekit.bench.latency_target as latency_target
import prunekit.commands.bench as cli_bench
import prunekit.llm.registry as llm_registry
from prunekit.config import LayerTarget, TargetSpec, parse_latency_target
from prunekit.llm.oneshot import OneShotConfig


def test_one_latency_parser_everywhere():
    assert latency_target.parse_latency_target is parse_latency_target
    assert cli_bench.parse_latency_target is parse_latency_target
    for text in ("0.5x", "50%", "0.5", 0.5):
        assert TargetSpec(latency=text).latency == parse_latency_target(text) == 0.5
    for bad in ("fast", "1.5x", 0, "0x", 1.0, True):
        with pytest.raises(ValueError, match="target latency"):
            TargetSpec(latency=bad)


def test_layer_target_is_validated_like_the_llm_config():
    assert LayerTarget(0.5, "2:4", 16).nm == (2, 4)
    for kwargs, match in ((dict(sparsity=1.0), "sparsity"), (dict(nm="3:2"), "N:M"),
                          (dict(blocksize=0), "blocksize"), (dict(percdamp=-1), "percdamp"),
                          (dict(nm=(2, 4), blocksize=10), "multiple of M")):
        with pytest.raises(ValueError, match=match):
            LayerTarget(**kwargs)
        cfg_kwargs = {"pattern" if k == "nm" else k: v for k, v in kwargs.items()}
        with pytest.raises(ValueError, match=match):
            OneShotConfig(method="magnitude", **cfg_kwargs)


def test_old_layer_target_name_warns():
    with pytest.warns(DeprecationWarning, match="prunekit.config.LayerTarget"):
        assert llm_registry.LayerTarget is LayerTarget
