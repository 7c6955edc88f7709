"""``analyze``: sweep pruning methods × ratios, evaluate, time everything side by side, report.

Each (method, ratio) cell prunes a fresh copy of the model, runs the user's eval function
and is then timed together with the dense baseline in one interleaved benchmark (same runtime,
dtype, batch, threads). A cell whose pruning or evaluation raises is marked failed with the
message and the sweep goes on; a runtime that fails for one model (e.g. ONNX export) marks that
latency cell failed only.

>>> import torch
>>> from torch import nn
>>> from prunekit.bench import BenchConfig, analyze
>>> net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
>>> res = analyze(net, torch.randn(1, 16), methods=["l1", "magnitude-unstructured"],
...               ratios=[0.5], eval_fn=lambda m: 0.9, sparse_backends=False,
...               config=BenchConfig(repeats=5, max_repeats=5, memory=False))
>>> [(e.name, e.status) for e in res.entries]
[('l1@0.5', 'ok'), ('magnitude-unstructured@0.5', 'ok')]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit.bench.config import BenchConfig
from prunekit.bench.harness import BenchResult, compare
from prunekit.bench.methods import MethodSpec, apply_method, layer_profile, parse_method
from prunekit.config import check_ratio
from prunekit.bench.harness import fixed_threads
from prunekit.bench.inputs import cast_inputs, resize_batch
from prunekit.bench.sparse import choose_sparse_backends
from prunekit.masks import finalize
from prunekit.report import write_report

EvalFn = Callable[[nn.Module], Any]
# extras(models) -> (more models to time with them, a function that adds columns to the data)
ExtrasFn = Callable[[dict[str, nn.Module]],
                    tuple[dict[str, nn.Module], Callable[[dict[str, Any]], None]]]


UNITS = ("fraction", "percent")


def _declared_unit(value: Any, eval_fn: Any, given: str | None) -> str | None:
    """The accuracy unit: the argument, the eval function's ``unit`` attribute, or the
    ``"unit"`` key of the dict it returned (None: the report infers and prints it)."""
    unit = given or getattr(eval_fn, "unit", None)
    if unit is None and isinstance(value, Mapping):
        unit = value.get("unit")
    if unit is not None and unit not in UNITS:
        raise ValueError(f"accuracy unit must be one of {UNITS}, got {unit!r}")
    return unit


def _score(value: Any) -> float:
    """The eval function's result as one number (higher is better)."""
    if isinstance(value, Mapping):
        value = {k: v for k, v in value.items() if k != "unit"}
        if "accuracy" in value:
            value = value["accuracy"]
        elif len(value) == 1:
            value = next(iter(value.values()))
        else:
            raise ValueError("eval function returned a dict without an 'accuracy' key: "
                             f"{sorted(value)}")
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"eval function must return a number (or {{'accuracy': x}}), got "
                         f"{type(value).__name__}")
    return float(value)


@dataclass
class SweepEntry:
    """One (method, ratio) cell of the sweep."""

    method: str
    ratio: float
    kind: str
    status: str = "ok"
    error: str | None = None
    accuracy: float | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "weights"
    sparsity: float | None = None

    @property
    def name(self) -> str:
        return f"{self.method}@{self.ratio:g}"

    def fail(self, stage: str, e: BaseException) -> None:
        self.status, self.error = "failed", f"{stage}: {type(e).__name__}: {e}"


@dataclass
class AnalyzeResult:
    """The sweep entries and the side-by-side benchmark of all successful cells."""

    entries: list[SweepEntry]
    bench: BenchResult
    baseline_accuracy: float | None = None
    title: str = "prunekit analyze"
    command: str | None = None
    sparse_decisions: list[dict[str, Any]] = field(default_factory=list)
    accuracy_unit: str | None = None
    annotate: Callable[[dict[str, Any]], None] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.bench.to_dict()
        d["sparse_decisions"] = list(self.sparse_decisions)
        rt, b = self.bench.config.runtimes[0], self.bench.config.batches[0]
        base = self.bench.cell(self.bench.baseline, rt, b)
        d.update(kind="analyze", title=self.title, command=self.command,
                 accuracy_unit=self.accuracy_unit,
                 baseline_accuracy=self.baseline_accuracy,
                 baseline_latency_ms=base.latency.median if base and base.ok else None,
                 latency_setting=f"{rt}, batch {b}")
        sweep = []
        for e in self.entries:
            row: dict[str, Any] = {k: v for k, v in e.__dict__.items()}
            cell = self.bench.cell(e.name, rt, b)
            cost, base_cost = self.bench.costs.get(e.name), self.bench.costs.get(self.bench.baseline)
            if e.status == "ok" and cell is not None and not cell.ok:
                row.update(status="failed", error=f"timing ({rt}): {cell.error}")
            if e.status == "ok" and cell is not None and cell.ok:
                row["latency_ms"] = cell.latency.median
                sp = next((s for s in d["speedups"] if s["model"] == e.name
                           and s["runtime"] == rt and s["batch"] == b), {})
                row.update({k: sp[k] for k in ("speedup", "ci_low", "ci_high", "reliable")
                            if k in sp})
            if cost and base_cost:
                row["macs_ratio"] = base_cost.macs / max(cost.macs, 1)
                row["params_kept"] = cost.params / max(base_cost.params, 1)
            sweep.append(row)
        d["sweep"] = sweep
        if self.annotate is not None:
            self.annotate(d)
            _sweep_columns(d, rt, b)
        return d


def _sweep_columns(d: dict[str, Any], rt: str, b: int) -> None:
    """Copy each cell's size / int8 facts (added by an ``extras`` hook) into its sweep row."""
    for row in d["sweep"]:
        name = f"{row['method']}@{row['ratio']:g}"
        m = d["models"].get(name, {})
        if "compressed_bytes" in m:
            row["compressed_bytes"] = m["compressed_bytes"]
        stages = [s for s in d.get("compression_stages", []) if s["model"] == name]
        if stages:
            row["huffman_bytes"] = stages[-1]["bytes"]
        sp = next((s for s in d["speedups"] if s["model"] == name + "+int8"
                   and s["runtime"] == rt and s["batch"] == b and s["status"] == "ok"), None)
        if sp is not None:
            row["int8_speedup"] = sp["speedup"]
            row["int8_over_fp32"] = sp.get("int8_over_fp32")


def _with_sparse_backends(model: nn.Module, example: Any, cfg: BenchConfig, name: str,
                          out: list[dict[str, Any]], timer: Any = None) -> nn.Module | None:
    m = copy.deepcopy(model).eval().to(device=cfg.device, dtype=cfg.torch_dtype)
    x = cast_inputs(resize_batch(example, cfg.batches[0]), cfg.torch_dtype, cfg.device)
    with fixed_threads(cfg.threads):
        decisions = choose_sparse_backends(m, x, apply=True, timer=timer)
    out += [dict(d.to_dict(), model=name) for d in decisions]
    return m if any(d.backend != "dense" for d in decisions) else None


def _sparse_variants(entries: list[SweepEntry], models: dict[str, nn.Module], example: Any,
                     cfg: BenchConfig, decisions: list[dict[str, Any]], timer: Any
                     ) -> dict[str, nn.Module]:
    """``<name>+sparse`` for every weight-sparse cell where some layer chose a sparse kernel."""
    out = {}
    for e in entries:
        if e.status == "ok" and e.kind != "structured":
            swapped = _with_sparse_backends(models[e.name], example, cfg, e.name, decisions,
                                            timer)
            if swapped is not None:
                out[e.name + "+sparse"] = swapped
    return out


def _sparsity(model: nn.Module) -> float:
    ws = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    total = sum(w.numel() for w in ws)
    return float(sum(int((w == 0).sum()) for w in ws)) / max(total, 1)


def _cells(specs: Sequence[MethodSpec], ratios: Sequence[float]) -> list[tuple[MethodSpec, float]]:
    out = []
    for s in specs:
        out += [(s, s.fixed_ratio)] if s.fixed_ratio is not None else [(s, r) for r in ratios]
    return out


def _run_cell(entry: SweepEntry, spec: MethodSpec, model: nn.Module, example: Any,
              eval_fn: EvalFn | None, device: str, **kw: Any) -> nn.Module | None:
    pruned = copy.deepcopy(model).eval()
    try:
        pruned = apply_method(spec, pruned, example, entry.ratio, **kw).eval()
        finalize(pruned)
    except Exception as e:  # noqa: BLE001 - a failing method marks its cell, the sweep goes on
        entry.fail("pruning", e)
        return None
    entry.layers, entry.unit = layer_profile(model, pruned)
    entry.sparsity = _sparsity(pruned)
    if eval_fn is not None:
        try:
            with torch.no_grad():
                entry.accuracy = _score(eval_fn(copy.deepcopy(pruned).to(device)))
        except Exception as e:  # noqa: BLE001 - the user's eval raised: mark, go on
            entry.fail("eval", e)
            return None
    return pruned


def analyze(
    model: nn.Module,
    example_inputs: Any,
    *,
    methods: Iterable[str] = ("magnitude-unstructured",),
    ratios: Iterable[float] = (0.2, 0.4),
    eval_fn: EvalFn | None = None,
    config: BenchConfig | None = None,
    out_dir: str | None = None,
    calib_data: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    structured_kwargs: dict[str, Any] | None = None,
    command: str | None = None,
    sparse_backends: bool = True,
    accuracy_unit: str | None = None,
    sparse_timer: Any = None,
    extras: ExtrasFn | None = None,
) -> AnalyzeResult:
    """Sweep ``methods`` × ``ratios`` on copies of ``model``; evaluate, benchmark and report.

    Args:
        model: the dense model (not modified).
        example_inputs: one input batch for tracing, MACs and timing (resized per batch size).
        methods: method names (see :mod:`prunekit.bench.methods`).
        ratios: pruning ratios in [0, 1).
        eval_fn: ``eval_fn(model) -> accuracy`` (higher is better; a number or
            ``{"accuracy": x}``) called on a copy of each model on ``config.device``.
        config: what and how to time (defaults to ``BenchConfig()``).
        out_dir: when given, the JSON/Markdown/HTML report is written there.
        calib_data, loss_fn: for data-driven criteria (gradient, Taylor, activation).
        structured_kwargs: extra keyword arguments for ``plan_structured``.
        sparse_backends: for weight-sparse cells, also time a ``<name>+sparse`` variant whose
            Linear layers use a sparse kernel where it measured faster than dense (decided at
            the first batch size and runtime-independent eager timing; listed in the report).
        sparse_timer: the layer timer of :func:`~prunekit.bench.sparse.choose_sparse_backends`
            (default: measured; tests inject a fake to force a choice).
        accuracy_unit: ``"fraction"`` or ``"percent"`` (also read from ``eval_fn.unit`` or a
            ``"unit"`` key of the returned dict); ``None``: inferred from the values and
            printed with every "within N points" statement.
        extras: ``extras(models) -> (more_models, annotate)``: called with the dense model and
            every successful cell; ``more_models`` are timed in the same run and
            ``annotate(data)`` adds columns to the report data (e.g.
            :func:`prunekit.compression.columns.analyze_extras`: int8 variants, compressed
            sizes, Deep Compression stages).

    Returns:
        An :class:`AnalyzeResult` (``to_dict()`` is the report's data).
    """
    specs = [parse_method(m) for m in methods]
    ratios = [check_ratio(r, "ratios entries") for r in ratios]
    if not specs:
        raise ValueError("methods must name at least one method")
    if not ratios and any(s.fixed_ratio is None for s in specs):
        raise ValueError("ratios must hold at least one ratio")
    cfg = config or BenchConfig()
    base_acc, unit = None, _declared_unit(None, eval_fn, accuracy_unit)
    if eval_fn is not None:
        value = eval_fn(copy.deepcopy(model).eval().to(cfg.device))
        base_acc, unit = _score(value), _declared_unit(value, eval_fn, accuracy_unit)
    entries, models = [], {"dense": model}
    for spec, ratio in _cells(specs, ratios):
        entry = SweepEntry(spec.name, ratio, spec.kind)
        pruned = _run_cell(entry, spec, model, example_inputs, eval_fn, cfg.device,
                           calib_data=calib_data, loss_fn=loss_fn,
                           structured_kwargs=structured_kwargs)
        entries.append(entry)
        if pruned is not None:
            models[entry.name] = pruned
    decisions: list[dict[str, Any]] = []
    more, annotate = extras(dict(models)) if extras is not None else ({}, None)
    if sparse_backends:
        models.update(_sparse_variants(entries, models, example_inputs, cfg, decisions,
                                       sparse_timer))
    res = AnalyzeResult(entries, compare({**models, **more}, example_inputs, cfg,
                                         baseline="dense"),
                        base_acc, command=command, sparse_decisions=decisions,
                        accuracy_unit=unit, annotate=annotate)
    if out_dir is not None:
        write_report(res.to_dict(), out_dir)
    return res
