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
from prunekit.config import TargetSpec
from prunekit.handlers import HANDLERS, HandlerExample, get_handler, register_handler
from prunekit.handlers.linear import LINEAR
from prunekit.importance import CRITERIA
from prunekit.importance.structured import GROUP_CRITERIA, NEEDS
from prunekit.llm.registry import LLM_METHODS
from prunekit.masks.layout import _TYPES, LAYOUTS
from prunekit.recover.phases import METHOD_BUILDERS
from prunekit.recover.recipe import Finetune, Recipe
from prunekit.recover.run import run_recipe, weight_sparsity
from prunekit.recover.tasks import load_task, small_cnn
from prunekit.structural.attrs import ATTRIBUTE_SYNC
from prunekit.structural.plan import plan_structured

SRC = Path(__file__).resolve().parents[2] / "src" / "prunekit"

# every Registry in src and the test that covers it (or why no per-entry contract applies)
COVERED = {
    "CRITERIA": "test_criterion", "GROUP_CRITERIA": "test_group_criterion",
    "RUNTIMES": "test_runtime", "LLM_METHODS": "test_llm_method",
    "SPARSE_BACKENDS": "test_sparse_backend", "LAYOUTS": "test_layout",
    "METHOD_BUILDERS": "test_recipe_method", "ATTRIBUTE_SYNC": "test_attribute_sync",
    "MODEL_SPECS": "test_model_specs", "MODEL_DIRECTORIES": "test_model_specs",
    "ROW_CRITERIA": "tests/recsys/test_rows.py parametrizes over every row criterion",
    "ENTRY_METHODS": "tests/recsys/test_train.py runs every entry method",
    "SHARING_METHODS": "tests/recsys/test_shared.py runs every sharing method",
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


def test_one_projection_handler_for_linear_and_hf_conv1d():
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    lin, c1d = get_handler(nn.Linear(4, 6)), get_handler(Conv1D(6, 4))
    assert type(lin) is type(c1d) and (lin.out_axis, c1d.out_axis) == (0, 1)
    assert (c1d.in_channels(Conv1D(6, 4)), c1d.out_channels(Conv1D(6, 4))) == (4, 6)


# handler-table resolvers (module families recognised by structure) and the tests that run them
RESOLVERS = {
    "resolve_hf_attention": "tests/structural/test_handler_models.py (HF attention families)",
    "resolve_hf_conv1d": "tests/structural/test_handler_models.py (GPT-2 Conv1D)",
    "<lambda>@norm": "tests/structural (HF RMSNorm in LLaMA-style models)",
    "<lambda>@tv_attention": "tests/structural zoo (torchvision MaxViT, slow tier)",
    "<lambda>@tv_swin": "tests/structural zoo (torchvision Swin, slow tier)",
}


def test_every_resolver_is_covered():
    names = {fn.__name__ if fn.__name__ != "<lambda>" else
             f"<lambda>@{fn.__module__.rsplit('.', 1)[-1]}" for fn in HANDLERS._resolvers}
    assert names - set(RESOLVERS) == set(), "add a test for these handler resolvers"


def test_a_handler_must_implement_the_contract():
    from prunekit.handlers import Handler

    class Half(Handler):  # in_channels / out_channels are required
        def in_channels(self, m):
            return None

    with pytest.raises(TypeError, match="out_channels"):
        Half()
    with pytest.raises(ValueError, match="prunekit.Handler subclass"):
        register_handler(MyLinear, object())


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


# what each recipe method needs besides a target (a method added tomorrow fails here until listed)
RECIPE_EXTRAS = {
    "unstructured": {}, "progressive": {}, "structured": {}, "nm": {"pattern": "2:4"},
    "slimming": {"criterion": "bn_scale", "pretrain": Finetune(epochs=1, lr=0.05)},
}


@pytest.mark.parametrize("name", METHOD_BUILDERS.names())
def test_recipe_method(name):
    """Every recipe method prunes a tiny CNN on real digits in one short run."""
    assert name in RECIPE_EXTRAS, f"add the options recipe method {name!r} needs to RECIPE_EXTRAS"
    torch.manual_seed(0)
    model = small_cnn(2, widths=(8, 16, 16))
    dense = sum(p.numel() for p in model.parameters())
    tr, va = load_task("digits", limit=64)
    extras = RECIPE_EXTRAS[name]
    target = None if name == "nm" else TargetSpec(ratio=0.5)
    recipe = Recipe(method=name, target=target, finetune=Finetune(epochs=1, lr=0.05), **extras)
    res = run_recipe(recipe, model, torch.utils.data.DataLoader(tr, batch_size=32),
                     torch.utils.data.DataLoader(va, batch_size=64))
    pruned = res.model
    smaller = sum(p.numel() for p in pruned.parameters()) < dense
    assert smaller or weight_sparsity(pruned) >= 0.3, f"recipe method {name!r} pruned nothing"


def _tiny_vit() -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2,
                             hidden_dim=8, mlp_dim=16, num_classes=3)


# a model holding each synced class (deleting one makes test_attribute_sync fail)
ATTRIBUTE_EXAMPLES = {
    "torchvision.models.vision_transformer.VisionTransformer": (_tiny_vit, (2, 3, 16, 16)),
}


@pytest.mark.parametrize("key", ATTRIBUTE_SYNC.names())
def test_attribute_sync(key):
    """After pruning, a synced attribute equals what its function reads off the pruned layers."""
    examples = {k.lower(): v for k, v in ATTRIBUTE_EXAMPLES.items()}  # registry names: lower case
    assert key.lower() in examples, f"add an example model for the attribute sync {key!r}"
    factory, shape = examples[key.lower()]
    torch.manual_seed(0)
    model, x = factory().eval(), torch.randn(*shape)
    pruned = plan_structured(model, x, ratio=0.5).apply(copy=True).eval()
    holders = [m for m in pruned.modules()
               if f"{type(m).__module__}.{type(m).__qualname__}".lower() == key.lower()]
    assert holders, f"the example for {key!r} does not contain one"
    for m in holders:
        for attr, value in ATTRIBUTE_SYNC.get(key)(m).items():
            assert getattr(m, attr) == value, (key, attr)
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape


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
