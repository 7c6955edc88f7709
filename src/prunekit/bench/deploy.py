"""``deploy``: measure the pruned model (and dense, like-for-like) in every runtime and setting,
write the fastest as a deployable artifact, and report every candidate.

Candidates are the product of runtimes (eager, ``torch.compile``, ONNX Runtime), thread counts,
memory format (``channels_last`` for 4-D convolution models) and BatchNorm folding. For each
setting the pruned and the dense model are timed together in one interleaved, adaptive run
(:func:`prunekit.bench.harness.compare`), so every candidate has a like-for-like speedup with
its 95% interval. The winner is the candidate with the lowest pruned latency; the report also
gives best-vs-best (dense in *its* fastest setting vs the winner), labelled as such. A
candidate whose runtime is missing or fails (export error, no compiler) is skipped and named.

The artifact is an ONNX file when ONNX Runtime won, else a ``torch.export`` program
(``model.pt2``, load with :func:`load_artifact`; under ``torch.compile`` compile it after
loading). Before it is kept, it is reloaded and its outputs are compared with the model's.

>>> import tempfile, torch
>>> from torch import nn
>>> from prunekit.bench.deploy import DeployConfig, deploy
>>> net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
>>> cfg = DeployConfig(runtimes=("eager",), repeats=5, max_repeats=5)
>>> res = deploy(net, torch.randn(1, 16), tempfile.mkdtemp(), config=cfg)
>>> res.artifact.suffix, res.winner.runtime
('.pt2', 'eager')
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.bench.bn_fold import fold_batchnorm
from prunekit.bench.config import DTYPES, BenchConfig
from prunekit.bench.env import environment
from prunekit.bench.harness import compare, fixed_threads
from prunekit.bench.inputs import cast_inputs, resize_batch
from prunekit.bench.onnx_runtime import export_onnx, onnx_session
from prunekit.bench.runtimes import get_runtime, resolve_device
from prunekit.call import call_model
from prunekit.io import atomic_path
from prunekit.masks import finalize, masked_modules


@dataclass(frozen=True)
class DeployConfig:
    """What ``deploy`` tries.

    Attributes:
        device, dtype, batch: the setting to deploy for (every candidate uses it).
        runtimes: registered runtime names to try.
        threads: thread counts to try (empty: PyTorch's current count only).
        channels_last: memory formats to try (``True`` only applies to 4-D conv models).
        fold_bn: BatchNorm folding settings to try.
        repeats, max_repeats, tolerance, budget_s: adaptive timing per setting
            (see :class:`~prunekit.bench.config.BenchConfig`).
        atol, rtol: how close the artifact's outputs must be to the model's.
        clock: a custom clock (tests).
    """

    device: str = "cpu"
    dtype: str = "fp32"
    batch: int = 1
    runtimes: tuple[str, ...] = ("eager", "compile", "onnxruntime")
    threads: tuple[int, ...] = ()
    channels_last: tuple[bool, ...] = (False, True)
    fold_bn: tuple[bool, ...] = (True,)
    repeats: int = 10
    max_repeats: int = 60
    tolerance: float = 0.05
    budget_s: float = 10.0
    atol: float = 1e-3
    rtol: float = 1e-3
    clock: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("runtimes", "threads", "channels_last", "fold_bn"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.runtimes or not self.channels_last or not self.fold_bn:
            raise ValueError("runtimes, channels_last and fold_bn must each hold a value")
        for rt in self.runtimes:
            get_runtime(rt)
        if any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in self.threads):
            raise ValueError(f"threads entries must be ints >= 1, got {self.threads!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        self.bench(1, True)  # validates batch, repeats, tolerance, budget

    def bench(self, threads: int, fold_bn: bool) -> BenchConfig:
        return BenchConfig(device=self.device, dtype=self.dtype, batches=(self.batch,),
                           runtimes=self.runtimes, threads=threads, repeats=self.repeats,
                           max_repeats=self.max_repeats, tolerance=self.tolerance,
                           budget_s=self.budget_s, fold_bn=fold_bn, memory=False,
                           energy=False, clock=self.clock)


@dataclass
class Candidate:
    """One (runtime, threads, memory format, folding) setting, pruned vs dense like-for-like."""

    runtime: str
    threads: int
    channels_last: bool
    fold_bn: bool
    pruned_ms: float | None = None
    dense_ms: float | None = None
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    reliable: bool = False
    reasons: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        fmt = "channels_last" if self.channels_last else "contiguous"
        return (f"{self.runtime}, {self.threads} threads, {fmt}, "
                f"{'BN folded' if self.fold_bn else 'BN kept'}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, name=self.name)


@dataclass
class DeployResult:
    """Every candidate, the winner, the artifact and the speedups."""

    candidates: list[Candidate]
    winner: Candidate | None
    artifact: Path | None
    report: Path
    best_vs_best: float | None
    environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[Candidate]:
        return [c for c in self.candidates if c.error]

    def to_dict(self) -> dict[str, Any]:
        w = self.winner
        return {"kind": "deploy", "environment": self.environment, "notes": list(self.notes),
                "artifact": str(self.artifact) if self.artifact else None,
                "winner": w.to_dict() if w else None,
                "like_for_like_speedup": w.speedup if w else None,
                "best_vs_best_speedup": self.best_vs_best,
                "candidates": [c.to_dict() for c in self.candidates]}


def _is_conv4d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _inference_copy(model: nn.Module, fold: bool, channels_last: bool, cfg: DeployConfig
                    ) -> nn.Module:
    m = copy.deepcopy(model).eval()
    if masked_modules(m):
        finalize(m)
    if fold:
        fold_batchnorm(m)
    m = m.to(device=cfg.device, dtype=DTYPES[cfg.dtype])
    return m.to(memory_format=torch.channels_last) if channels_last else m


def _measure(model: nn.Module, dense: nn.Module | None, x: Any, cfg: DeployConfig,
             threads: int, fold: bool, cl: bool) -> list[Candidate]:
    models = {"pruned": _inference_copy(model, False, cl, cfg)}
    if dense is not None:
        models = {"dense": _inference_copy(dense, False, cl, cfg), **models}
    res = compare(models, x, cfg.bench(threads, fold), baseline=next(iter(models)))
    rows = {r["runtime"]: r for r in res.speedups()}
    out = []
    for rt in cfg.runtimes:
        c = Candidate(rt, threads, cl, fold)
        cell, base = res.cell("pruned", rt, cfg.batch), res.cell("dense", rt, cfg.batch)
        if cell is None or not cell.ok:
            c.error = cell.error if cell is not None else "not measured"
        else:
            c.pruned_ms = cell.latency.median
            c.dense_ms = base.latency.median if base is not None and base.ok else None
            row = rows.get(rt, {})
            if row.get("status") == "ok":
                c.speedup, c.ci_low, c.ci_high = row["speedup"], row["ci_low"], row["ci_high"]
                c.reliable, c.reasons = row["reliable"], list(row["unreliable_reasons"])
            elif dense is not None:
                c.reasons = [f"dense failed in this runtime: {row.get('error')}"]
        out.append(c)
    return out


def _args(x: Any) -> tuple[Any, ...]:
    return x if isinstance(x, tuple) else (x,)


def _flat(y: Any) -> list[torch.Tensor]:
    if isinstance(y, (list, tuple)):
        return [torch.as_tensor(t) for v in y for t in _flat(v)]
    return [torch.as_tensor(y)]


def load_artifact(path: str | Path, threads: int = 1) -> Callable[..., Any]:
    """A callable running a ``deploy`` artifact: ``.onnx`` (ONNX Runtime) or ``.pt2``."""
    path = Path(path)
    if path.suffix == ".onnx":
        sess = onnx_session(str(path), torch.device("cpu"), threads)
        names = [i.name for i in sess.get_inputs()]

        def run(*xs: torch.Tensor) -> list[Any]:
            return sess.run(None, {n: t.detach().cpu().numpy() for n, t in zip(names, xs,
                                                                              strict=True)})
        return run
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    raise ValueError(f"path must name a .onnx or .pt2 deploy artifact, got {str(path)!r}")


def _write_artifact(model: nn.Module, c: Candidate, x: Any, out: Path,
                    cfg: DeployConfig) -> Path:
    """Export, reload and check the candidate's artifact in a scratch folder, then move it
    into ``out`` (a failed export or mismatch leaves ``out`` untouched)."""
    m = _inference_copy(model, c.fold_bn, c.channels_last, cfg)
    name = "model.onnx" if c.runtime == "onnxruntime" else "model.pt2"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".deploy-") as scratch:
        tmp = Path(scratch) / name
        if tmp.suffix == ".onnx":
            export_onnx(m, x, str(tmp))
        else:
            with torch.no_grad():
                torch.export.save(torch.export.export(m, _args(x)), str(tmp))
        got = _flat(load_artifact(tmp, c.threads)(*_args(x)))
        with torch.inference_mode():
            want = _flat(call_model(m, x))
        if len(got) != len(want) or not all(
                torch.allclose(g.float().cpu(), w.float().cpu(), atol=cfg.atol, rtol=cfg.rtol)
                for g, w in zip(got, want, strict=False)):
            raise RuntimeError(f"the reloaded {name} does not match the model's outputs "
                               f"within atol={cfg.atol}, rtol={cfg.rtol}")
        os.replace(tmp, out / name)
    return out / name


def deploy(model: nn.Module, example_inputs: Any, out_dir: str | Path, *,
           dense: nn.Module | None = None, config: DeployConfig | None = None) -> DeployResult:
    """Measure every candidate setting, write the fastest artifact and a report to ``out_dir``.

    Args:
        model: the pruned model (not modified; timed and exported from copies).
        example_inputs: one input batch (resized to ``config.batch``).
        out_dir: receives the artifact and ``deploy_report.json``.
        dense: the unpruned model, timed like-for-like in every setting (recommended).
        config: what to try (:class:`DeployConfig`).

    Returns:
        A :class:`DeployResult`; skipped candidates carry their error.
    """
    cfg = config or DeployConfig()
    out = Path(out_dir)
    device = resolve_device(cfg.device)
    x = cast_inputs(resize_batch(example_inputs, cfg.batch), DTYPES[cfg.dtype], device)
    notes = [] if dense is not None else ["no dense model given: no like-for-like speedups"]
    formats = cfg.channels_last if _is_conv4d(model) else (False,)
    if formats != cfg.channels_last:
        notes.append("channels_last not tried: the model has no 2-D convolution")
    cands: list[Candidate] = []
    for t, fold, cl in itertools.product(cfg.threads or (torch.get_num_threads(),),
                                         cfg.fold_bn, formats):
        cands += _measure(model, dense, x, cfg, t, fold, cl)
    ok = sorted((c for c in cands if c.error is None), key=lambda c: c.pruned_ms)
    winner, artifact = None, None
    for c in ok:
        try:
            with fixed_threads(c.threads):
                artifact = _write_artifact(model, c, x, out, cfg)
            winner = c
            break
        except Exception as e:  # noqa: BLE001 - this candidate cannot be written; try the next
            notes.append(f"{c.name}: artifact not written ({type(e).__name__}: {e})")
    dense_ms = [c.dense_ms for c in cands if c.dense_ms is not None]
    bvb = min(dense_ms) / winner.pruned_ms if winner and dense_ms else None
    env = environment(device, torch.get_num_threads())
    res = DeployResult(cands, winner, artifact, out / "deploy_report.json", bvb, env, notes)
    with atomic_path(res.report) as tmp:
        tmp.write_text(json.dumps(res.to_dict(), indent=1, default=str))
    return res
