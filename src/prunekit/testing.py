"""Contract checks for plugin points, usable on your own registrations (timm-style).

A handler registered with an example model (``register_handler(cls, handler, example=...)``)
gets the same guarantees as the built-ins::

    from prunekit.testing import check_handler
    check_handler(MyConv)          # raises AssertionError naming the broken contract

The checks, each on the handler's example model:

1. masked == pruned: zeroing the planned channels and physically removing them give the same
   outputs (:func:`prunekit.structural.verify`);
2. predicted == counted: the plan's parameter count (the handlers' ``cost()``) equals the pruned
   model's actual parameter count, for the dense model and after pruning; MACs predicted for the
   dense model match :class:`torch.utils.flop_counter.FlopCounterMode` where the example's
   compute is all in handled layers;
3. save -> load: :func:`prunekit.serialize.save` then :func:`~prunekit.serialize.load` gives
   identical outputs.

Criteria, runtimes, LLM methods and sparse backends have checks here too; the contract tests in
``tests/contracts`` run every check over every registry entry.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.bench.runtimes import prepare_runtime
from prunekit.bench.sparse import SPARSE_BACKENDS
from prunekit.call import call_model
from prunekit.config import LayerTarget
from prunekit.handlers.base import HANDLERS, HandlerExample
from prunekit.importance.base import CRITERIA, LayerStats
from prunekit.macs import count_macs
from prunekit.llm.collect import InputStats
from prunekit.llm.registry import LLM_METHODS
from prunekit.masks.select import is_nm_valid
from prunekit.serialize import load, save
from prunekit.structural.plan import plan_structured
from prunekit.structural.verify import verify


def _example(cls: type) -> HandlerExample:
    ex = HANDLERS.example(cls)
    if ex is None:
        raise AssertionError(f"handler for {cls.__qualname__} has no example model; register one "
                             "with register_handler(cls, handler, example=(model_fn, inputs_fn))")
    return ex


def _spec(factory: Any) -> str:
    name = getattr(factory, "__qualname__", "")
    if "<" in name or "." in name:
        raise AssertionError(f"example model factory {factory!r} must be a top-level function "
                             "(save/load rebuilds it by 'module:pkg.mod:name')")
    return f"module:{factory.__module__}:{name}"


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _uses(model: nn.Module, cls: type) -> bool:
    return any(isinstance(m, cls) for m in model.modules())


def check_handler(cls: type, ratio: float = 0.5) -> dict[str, Any]:
    """Run the handler contract on the example registered for ``cls``; returns the figures."""
    ex = _example(cls)
    torch.manual_seed(0)
    model = ex.model().eval()
    x = ex.inputs()
    assert _uses(model, cls), f"the example for {cls.__qualname__} does not contain one"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = plan_structured(model, x, ratio=ratio)
    removed = sum(g.removed for g in plan.groups)
    assert removed > 0, f"{cls.__qualname__}: nothing prunable in its example\n{plan.summary()}"
    res = verify(model, plan)
    assert res.ok, f"{cls.__qualname__}: masked != pruned ({res})"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), \
        f"{cls.__qualname__}: planning or verifying changed the user's model"
    assert plan.params[0] == _params(model), \
        f"{cls.__qualname__}: predicted dense params {plan.params[0]} != counted {_params(model)}"
    pruned = plan.apply(copy=True).eval()
    assert plan.params[1] == _params(pruned), \
        f"{cls.__qualname__}: predicted params {plan.params[1]} != counted {_params(pruned)}"
    with tempfile.TemporaryDirectory() as d:
        save(pruned, Path(d) / "m", spec=_spec(ex.model))
        loaded = load(Path(d) / "m")
    with torch.no_grad():
        a, b = _first(call_model(pruned, x)), _first(call_model(loaded, x))
    assert torch.equal(a, b), f"{cls.__qualname__}: save -> load changed the outputs"
    return {"removed": removed, "params": plan.params, "macs": plan.macs,
            "flop_counter_macs": count_macs(model, x)}


def _first(out: Any) -> Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def check_criterion(name: str, seed: int = 0) -> Tensor:
    """A registered weight criterion gives finite scores of the weight's shape, the same twice
    under one seed."""
    crit = CRITERIA.get(name)
    w = torch.randn(6, 8)
    stats = LayerStats(grad_abs=torch.rand_like(w), taylor=torch.rand_like(w), act_sq=torch.rand(8),
                       samples=4, batches=1, extra={"name": "fc", "in_dim": 1})

    def once() -> Tensor:
        torch.manual_seed(seed)
        return crit(w, stats)

    a, b = once(), once()
    assert a.shape == w.shape, f"criterion {name!r}: scores {tuple(a.shape)} != weight {tuple(w.shape)}"
    assert torch.isfinite(a).all(), f"criterion {name!r}: non-finite scores"
    assert torch.equal(a, b), f"criterion {name!r}: not deterministic under a seed"
    return a


def check_runtime(name: str, atol: float = 1e-4) -> None:
    """A runtime's outputs equal eager outputs (CPU, one thread); raises
    :class:`~prunekit.bench.runtime_base.RuntimeUnavailable` where it cannot run here."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        ref = call_model(model, x)
    run = prepare_runtime(name, copy.deepcopy(model), x, "cpu", 1)
    with torch.no_grad():
        got = torch.as_tensor(_first(run(x)))
    torch.testing.assert_close(got.float().cpu(), ref, atol=atol, rtol=1e-4,
                               msg=lambda m: f"runtime {name!r}: outputs differ from eager: {m}")


def check_llm_method(name: str, sparsity: float = 0.5, nm: tuple[int, int] = (2, 4)) -> None:
    """A one-shot LLM method hits the exact sparsity per row and produces a valid N:M mask."""
    method = LLM_METHODS.get(name)
    torch.manual_seed(0)
    w, x = torch.randn(16, 32), torch.randn(64, 32)  # (out, in), (tokens, in)
    stats = InputStats(tokens=x.shape[0], act_norm_sq=x.pow(2).sum(0), hessian=2 * x.t() @ x / x.shape[0])
    out = method.prune(w.clone(), stats, LayerTarget(sparsity=sparsity, blocksize=16))
    zeros = int((out == 0).sum())
    assert zeros == int(sparsity * w.numel()), f"LLM method {name!r}: {zeros} zeros, expected " \
        f"{int(sparsity * w.numel())}"
    out = method.prune(w.clone(), stats, LayerTarget(nm=nm, blocksize=16))
    assert is_nm_valid(out != 0, *nm), f"LLM method {name!r}: not a valid {nm[0]}:{nm[1]} pattern"


def check_sparse_backend(name: str, atol: float = 1e-4) -> bool:
    """A sparse backend's layer gives the dense layer's outputs. Returns ``False`` (checked
    nothing) when the backend says it cannot apply here (for example 2:4 without CUDA)."""
    backend = SPARSE_BACKENDS.get(name)
    torch.manual_seed(0)
    lin = nn.Linear(64, 64)
    with torch.no_grad():
        keep = torch.rand(64, 16, 4).argsort(-1) < 2  # a 2:4 pattern: valid for every backend
        lin.weight.mul_(keep.reshape(64, 64))
    x = torch.randn(8, 64)
    if backend.check(lin, x) is not None:
        return False
    with torch.no_grad():
        torch.testing.assert_close(backend.build(lin, x)(x), lin(x), atol=atol, rtol=1e-4)
    return True
