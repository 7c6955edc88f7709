"""Every registry entry gets every contract, parametrized over the registries themselves.

A handler, criterion, runtime, LLM method, sparse backend or weight layout registered tomorrow is
tested here without anyone writing a test; a registry added tomorrow fails
``test_every_registry_is_covered`` until it is listed below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import prunekit.testing as pkt
from prunekit.bench.runtime_base import RuntimeUnavailable
from prunekit.bench.runtimes import RUNTIMES
from prunekit.bench.sparse import SPARSE_BACKENDS
from prunekit.handlers import HANDLERS, HandlerExample, register_handler
from prunekit.handlers.linear import LINEAR
from prunekit.importance import CRITERIA
from prunekit.importance.structured import GROUP_CRITERIA, NEEDS
from prunekit.llm.registry import LLM_METHODS
from prunekit.masks.layout import _TYPES, LAYOUTS
from prunekit.structural.plan import plan_structured

SRC = Path(__file__).resolve().parents[2] / "src" / "prunekit"

# every Registry in src and the test that covers it (or why no per-entry contract applies)
COVERED = {
    "CRITERIA": "test_criterion", "GROUP_CRITERIA": "test_group_criterion",
    "RUNTIMES": "test_runtime", "LLM_METHODS": "test_llm_method",
    "SPARSE_BACKENDS": "test_sparse_backend", "LAYOUTS": "test_layout",
    "METHOD_BUILDERS": "recipe methods: tests/recovery (each needs a training run)",
    "ATTRIBUTE_SYNC": "attribute syncs run inside every handler example's apply",
    "MODEL_SPECS": "test_model_specs", "MODEL_DIRECTORIES": "test_model_specs",
    "ROW_CRITERIA": "tests/recsys/test_rows.py parametrizes over every row criterion",
    "ENTRY_METHODS": "tests/recsys/test_train.py runs every entry method",
    "EXTRA_METHODS": "tests/dynamic/test_analyze_dynamic.py runs every dynamic analyze method",
}


# Disagreements these contracts found in the engine; strict, so a fix turns them into failures
# that ask for the mark to be removed.
KNOWN = {
}


def _handler_types(check: str) -> list:
    return [pytest.param(c, id=c.__qualname__, marks=pytest.mark.xfail(
                reason=KNOWN[(check, c.__qualname__)], strict=True))
            if (check, c.__qualname__) in KNOWN else pytest.param(c, id=c.__qualname__)
            for c in HANDLERS.types()]


@pytest.mark.parametrize("cls", _handler_types("handler"))
def test_handler(cls):
    figures = pkt.check_handler(cls)
    assert figures["removed"] > 0


@pytest.mark.parametrize("cls", _handler_types("macs"))
def test_handler_cost_matches_flop_counter(cls):
    """Handler ``cost()`` is the fast predictor; FlopCounterMode is the one MAC counter."""
    ex = HANDLERS.example(cls)
    torch.manual_seed(0)
    model, x = ex.model().eval(), ex.inputs()
    plan = plan_structured(model, x, ratio=0.5)
    counted = pkt.count_macs(model, x)
    if isinstance(model, nn.Sequential):  # all compute is in handled layers: exact
        assert plan.macs[0] == counted, (plan.macs, counted)
    else:  # attention scores and recurrent cells: each counter has its own convention
        assert plan.macs[0] > 0 and counted > 0, (plan.macs, counted)
    assert plan.macs[1] < plan.macs[0]


def test_every_handler_has_an_example_and_deleting_it_fails():
    assert [c.__qualname__ for c in HANDLERS.types() if HANDLERS.example(c) is None] == []
    saved = HANDLERS._examples.pop(nn.Linear)
    try:
        with pytest.raises(AssertionError, match="no example model"):
            pkt.check_handler(nn.Linear)
    finally:
        HANDLERS._examples[nn.Linear] = saved


class MyLinear(nn.Linear):
    """A user's layer: overrides forward, so it needs its own registration."""

    def forward(self, x):
        return super().forward(x)


def my_net() -> nn.Module:
    return nn.Sequential(MyLinear(6, 16), nn.ReLU(), MyLinear(16, 3))


def test_a_users_handler_gets_the_same_contract():
    register_handler(MyLinear, LINEAR, example=(my_net, lambda: torch.randn(4, 6)), replace=True)
    try:
        assert pkt.check_handler(MyLinear)["removed"] > 0
    finally:
        HANDLERS._table.pop(MyLinear, None)
        HANDLERS._examples.pop(MyLinear, None)


def test_a_wrong_handler_is_caught():
    class Wrong(type(LINEAR)):  # claims the output units are free, but slices nothing
        def prune_out(self, module, keep):
            return None

    register_handler(MyLinear, Wrong(), example=HandlerExample(my_net, lambda: torch.randn(4, 6)),
                     replace=True)
    try:
        with pytest.raises(Exception):  # noqa: B017 - any refusal is fine, a pass is not
            pkt.check_handler(MyLinear)
    finally:
        HANDLERS._table.pop(MyLinear, None)
        HANDLERS._examples.pop(MyLinear, None)


@pytest.mark.parametrize("name", CRITERIA.names())
def test_criterion(name):
    pkt.check_criterion(name)


@pytest.mark.parametrize("name", GROUP_CRITERIA.names())
def test_group_criterion(name):
    """Every structured criterion plans the same kept channels twice and verifies."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(6, 4)).eval()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 3, 6, 6)
    kw = {}
    if NEEDS.get(name):
        kw = {"calib_data": [(x, torch.tensor([0, 1, 2, 3]))],
              "loss_fn": nn.functional.cross_entropy}
    plans = [plan_structured(model, x, ratio=0.5, criterion=name, seed=0, **kw) for _ in range(2)]
    keeps = [[(e.name, None if e.keep_out is None else e.keep_out.tolist()) for e in p.edits]
             for p in plans]
    assert keeps[0] == keeps[1], f"group criterion {name!r} is not deterministic under a seed"
    assert sum(g.removed for g in plans[0].groups) > 0
    assert pkt.verify(model, plans[0]).ok


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_runtime(name):
    try:
        pkt.check_runtime(name)
    except RuntimeUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", LLM_METHODS.names())
def test_llm_method(name):
    pkt.check_llm_method(name)


@pytest.mark.parametrize("name", SPARSE_BACKENDS.names())
def test_sparse_backend(name):
    if not pkt.check_sparse_backend(name):
        pytest.skip(f"sparse backend {name!r} does not apply on this machine")


@pytest.mark.parametrize("name", LAYOUTS.names())
def test_layout(name):
    """A weight layout's row view round-trips exactly and sees every weight once."""
    module_type = next(t for t, k in _TYPES.items() if k.lower() == name)
    layout = LAYOUTS.get(name)
    w = torch.randn(6, 4, 3, 3) if issubclass(module_type, nn.modules.conv._ConvNd) else \
        torch.randn(6, 4)
    w = w[..., 0, 0] if module_type is nn.Conv1d and w.dim() == 4 else w
    rows = layout.to_rows(w)
    assert rows.numel() == w.numel()
    assert torch.equal(layout.from_rows(rows, w.shape), w)


def test_model_specs(tmp_path):
    from prunekit.io import MODEL_DIRECTORIES, MODEL_SPECS, build_from_spec, load_model_spec

    assert {"torchvision", "timm", "module", "hf", "prunekit"} <= set(MODEL_SPECS.names())
    assert "prunekit.json" in MODEL_DIRECTORIES
    m = build_from_spec("module:prunekit.handlers.examples:linear")
    assert isinstance(m, nn.Module)
    with pytest.raises(ValueError, match="not hf:/module:/prunekit:/timm:/torchvision:"):
        load_model_spec("nope:thing")
    pkt.save(m, tmp_path / "m", spec="module:prunekit.handlers.examples:linear")
    assert isinstance(load_model_spec(tmp_path / "m"), nn.Module)


def test_every_registry_is_covered():
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value = getattr(node, "value", None)
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(value, ast.Call) \
                    and getattr(value.func, "id", None) == "Registry":
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found |= {t.id for t in targets if isinstance(t, ast.Name)}
    assert found - set(COVERED) == set(), "add a contract test for these registries"
