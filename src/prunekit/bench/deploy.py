"""``deploy``: measure the pruned model (and dense, like-for-like) in every runtime and setting,
write the fastest as a deployable artifact, and report every candidate.

Candidates are the product of runtimes (eager, ``torch.compile``, ONNX Runtime with and
without intra-op spinning, OpenVINO), thread counts, memory format (``channels_last`` for 4-D
convolution models, in the runtimes where the layout is PyTorch's) and BatchNorm folding. For
each setting the pruned and the dense model are timed together in one interleaved, adaptive run
(:func:`prunekit.bench.harness.compare`), so every candidate has a like-for-like speedup with
its 95% interval. The winner is the candidate with the lowest pruned latency. The report gives:

- **like-for-like**: the winner's own setting, dense timed in the same setting (paired interval);
- **best vs best**: dense in *its* fastest setting vs the winner, re-timed together in a fresh
  interleaved run (paired interval), labelled as such;
- **per runtime**: dense's fastest setting in each runtime vs the pruned model's (ratio of
  medians of separate runs, so no interval).

A candidate whose runtime is missing or fails (export error, no compiler) is skipped and named.
The artifact is an ONNX file (ONNX Runtime), OpenVINO IR (``model.xml``) or a ``torch.export``
program (``model.pt2``); load any with :func:`load_artifact` (under ``torch.compile``, compile it
after loading). Before it is kept, it is reloaded and its outputs are compared with the model's.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.bench.adaptive import AdaptivePlan, adaptive_samples
from prunekit.bench.bn_fold import fold_batchnorm
from prunekit.bench.config import DTYPES, BenchConfig
from prunekit.bench.contention import ContentionProbe
from prunekit.bench.deploy_artifacts import load_artifact, write_artifact  # noqa: F401
from prunekit.bench.env import environment
from prunekit.bench.harness import compare, fixed_threads
from prunekit.bench.inputs import cast_inputs, input_pool, resize_batch
from prunekit.bench.reliability import paired_speedup
from prunekit.bench.runtimes import get_runtime, prepare_runtime, resolve_device
from prunekit.bench.timer import calibrate_number, clock_for
from prunekit.io import atomic_path
from prunekit.masks import finalize, masked_modules


@dataclass(frozen=True)
class DeployConfig:
    """What ``deploy`` tries.

    Attributes:
        device, dtype, batch: the setting to deploy for (every candidate uses it).
        runtimes: registered runtime names to try (missing ones are skipped and named).
        threads: thread counts to try (empty: PyTorch's current count only).
        channels_last: memory formats to try (``True`` only applies to 4-D conv models).
        fold_bn: BatchNorm folding settings to try.
        repeats, max_repeats, tolerance, budget_s: adaptive timing per setting
            (see :class:`~prunekit.bench.config.BenchConfig`).
        atol, rtol: how close the artifact's outputs must be to the model's.
        verify_best: re-time dense's fastest setting against the winner in a fresh
            interleaved run, for a best-vs-best figure with an interval.
        clock: a custom clock (tests).
    """

    device: str = "cpu"
    dtype: str = "fp32"
    batch: int = 1
    runtimes: tuple[str, ...] = ("eager", "compile", "onnxruntime", "onnxruntime-nospin",
                                 "openvino")
    threads: tuple[int, ...] = ()
    channels_last: tuple[bool, ...] = (False, True)
    fold_bn: tuple[bool, ...] = (True,)
    repeats: int = 10
    max_repeats: int = 60
    tolerance: float = 0.05
    budget_s: float = 10.0
    atol: float = 1e-3
    rtol: float = 1e-3
    verify_best: bool = True
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

    def bench(self, threads: int, fold_bn: bool,
              runtimes: tuple[str, ...] | None = None) -> BenchConfig:
        return BenchConfig(device=self.device, dtype=self.dtype, batches=(self.batch,),
                           runtimes=runtimes or self.runtimes, threads=threads, repeats=self.repeats,
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
class Comparison:
    """One headline speedup: dense in one setting vs the pruned model in another.

    ``paired`` is ``True`` when both were timed together, interleaved (then ``ci_low`` and
    ``ci_high`` are the 95% bootstrap interval); otherwise the figure is a ratio of medians
    of separate runs and has no interval.
    """

    kind: str  # "like-for-like", "best vs best" or "runtime <name>"
    dense: str
    pruned: str
    speedup: float
    paired: bool
    ci_low: float | None = None
    ci_high: float | None = None
    reliable: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def skipped(self) -> list[Candidate]:
        return [c for c in self.candidates if c.error]

    def comparison(self, kind: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        w = self.winner
        return {"kind": "deploy", "environment": self.environment, "notes": list(self.notes),
                "artifact": str(self.artifact) if self.artifact else None,
                "winner": w.to_dict() if w else None,
                "like_for_like_speedup": w.speedup if w else None,
                "best_vs_best_speedup": self.best_vs_best,
                "comparisons": [c.to_dict() for c in self.comparisons],
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


def _layout_runtimes(cfg: DeployConfig, cl: bool) -> tuple[str, ...]:
    """The runtimes a memory format is tried in (``channels_last`` only where it matters)."""
    return tuple(r for r in cfg.runtimes if not cl or get_runtime(r).memory_format)


def _measure(model: nn.Module, dense: nn.Module | None, x: Any, cfg: DeployConfig,
             threads: int, fold: bool, cl: bool) -> list[Candidate]:
    runtimes = _layout_runtimes(cfg, cl)
    if not runtimes:
        return []
    models = {"pruned": _inference_copy(model, False, cl, cfg)}
    if dense is not None:
        models = {"dense": _inference_copy(dense, False, cl, cfg), **models}
    res = compare(models, x, cfg.bench(threads, fold, runtimes), baseline=next(iter(models)))
    rows = {r["runtime"]: r for r in res.speedups()}
    out = []
    for rt in runtimes:
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


def _write_winner(model: nn.Module, x: Any, out: Path, cfg: DeployConfig,
                  cands: list[Candidate], notes: list[str]
                  ) -> tuple[Candidate | None, Path | None]:
    """Write the fastest candidate that exports, reloads and matches; name the others."""
    for c in sorted((c for c in cands if c.error is None), key=lambda c: c.pruned_ms):
        try:
            with fixed_threads(c.threads):
                m = _inference_copy(model, c.fold_bn, c.channels_last, cfg)
                return c, write_artifact(m, c.runtime, c.threads, x, out, cfg.atol, cfg.rtol)
        except Exception as e:  # noqa: BLE001 - this candidate cannot be written; try the next
            notes.append(f"{c.name}: artifact not written ({type(e).__name__}: {e})")
    return None, None


def _setting_fn(model: nn.Module, c: Candidate, x: Any, cfg: DeployConfig,
                device: torch.device):
    """The callable of ``model`` in candidate ``c``'s setting, pinned to its thread count."""
    with fixed_threads(c.threads):
        fn = prepare_runtime(c.runtime, _inference_copy(model, c.fold_bn, c.channels_last, cfg),
                             x, device, c.threads)

    def run(inputs: Any) -> Any:
        if torch.get_num_threads() != c.threads:
            torch.set_num_threads(c.threads)
        return fn(inputs)
    return run


def _rerun(model: nn.Module, dense: nn.Module, x: Any, cfg: DeployConfig, dc: Candidate,
           pc: Candidate, device: torch.device) -> Comparison:
    """Dense in ``dc``'s setting vs the pruned model in ``pc``'s, timed together, fresh."""
    fns = {"dense": _setting_fn(dense, dc, x, cfg, device),
           "pruned": _setting_fn(model, pc, x, cfg, device)}
    bcfg = cfg.bench(max(dc.threads, pc.threads), pc.fold_bn)
    timed = get_runtime(dc.runtime).device_timed and get_runtime(pc.runtime).device_timed
    clock = cfg.clock or clock_for(device, timed)
    pool = input_pool(x, cache_bytes=bcfg.cache_bytes, seed=cfg.batch)
    probe = (ContentionProbe(bcfg.threads) if cfg.clock is None and device.type == "cpu"
             else None)
    with fixed_threads(torch.get_num_threads()):  # the calls switch threads; restore after
        numbers = {n: bcfg.number or calibrate_number(clock, lambda f=f: f(pool[0]),
                                                      bcfg.min_sample_ms)
                   for n, f in fns.items()}
        stats = adaptive_samples(fns, pool, baseline="dense", plan=AdaptivePlan(
            cfg.repeats, cfg.max_repeats, cfg.tolerance, cfg.budget_s), warmup=bcfg.warmup,
            numbers=numbers, clock=clock, probe=probe)
    est = paired_speedup(stats["dense"].samples, stats["pruned"].samples,
                         tolerance=cfg.tolerance)
    if probe is not None and probe.verdict().busy:
        est = est.with_reasons([f"busy: {probe.verdict().reason}"])
    return Comparison("best vs best", dc.name, pc.name, est.speedup, True, est.ci_low,
                      est.ci_high, est.reliable, list(est.reasons))


def _fastest(cands: list[Candidate], attr: str) -> Candidate | None:
    ok = [c for c in cands if getattr(c, attr) is not None]
    return min(ok, key=lambda c: getattr(c, attr)) if ok else None


def _comparisons(cands: list[Candidate], winner: Candidate) -> list[Comparison]:
    """Like-for-like at the winner's setting (paired) and per runtime (ratio of medians)."""
    out = []
    if winner.speedup is not None:
        out.append(Comparison("like-for-like", winner.name, winner.name, winner.speedup, True,
                              winner.ci_low, winner.ci_high, winner.reliable,
                              list(winner.reasons)))
    for rt in dict.fromkeys(c.runtime for c in cands):
        mine = [c for c in cands if c.runtime == rt]
        d, p = _fastest(mine, "dense_ms"), _fastest(mine, "pruned_ms")
        if d is None or p is None:
            continue
        if d is p:
            out.append(Comparison(f"runtime {rt}", d.name, p.name, p.speedup, True, p.ci_low,
                                  p.ci_high, p.reliable, list(p.reasons)))
        else:
            out.append(Comparison(f"runtime {rt}", d.name, p.name, d.dense_ms / p.pruned_ms,
                                  False, reasons=["ratio of medians of separate runs: "
                                                  "no paired interval"]))
    return out


def _best_vs_best(model: nn.Module, dense: nn.Module | None, x: Any, cfg: DeployConfig,
                  cands: list[Candidate], winner: Candidate, device: torch.device,
                  notes: list[str]) -> Comparison | None:
    d = _fastest(cands, "dense_ms")
    if dense is None or d is None:
        return None
    if d is winner:
        return Comparison("best vs best", d.name, winner.name, winner.speedup, True,
                          winner.ci_low, winner.ci_high, winner.reliable, list(winner.reasons))
    if not cfg.verify_best:
        return Comparison("best vs best", d.name, winner.name, d.dense_ms / winner.pruned_ms,
                          False, reasons=["ratio of medians of separate runs"])
    try:
        return _rerun(model, dense, x, cfg, d, winner, device)
    except Exception as e:  # noqa: BLE001 - the figure from the search still stands
        notes.append(f"best-vs-best re-run failed ({type(e).__name__}: {e}); ratio of medians "
                     "of the search reported")
        return Comparison("best vs best", d.name, winner.name, d.dense_ms / winner.pruned_ms,
                          False, reasons=["ratio of medians of separate runs"])


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
    elif True in formats and (flat := [r for r in cfg.runtimes if r not in
                                       _layout_runtimes(cfg, True)]):
        notes.append(f"channels_last not tried in {', '.join(flat)}: the exported graph, not "
                     "PyTorch's memory format, sets the layout there")
    cands: list[Candidate] = []
    for t, fold, cl in itertools.product(cfg.threads or (torch.get_num_threads(),),
                                         cfg.fold_bn, formats):
        cands += _measure(model, dense, x, cfg, t, fold, cl)
    winner, artifact = _write_winner(model, x, out, cfg, cands, notes)
    comps: list[Comparison] = []
    if winner is not None:
        comps = _comparisons(cands, winner)
        bvb = _best_vs_best(model, dense, x, cfg, cands, winner, device, notes)
        comps += [bvb] if bvb is not None else []
    bvb = next((c.speedup for c in comps if c.kind == "best vs best"), None)
    env = environment(device, torch.get_num_threads())
    res = DeployResult(cands, winner, artifact, out / "deploy_report.json", bvb, env, notes,
                       comps)
    with atomic_path(res.report) as tmp:
        tmp.write_text(json.dumps(res.to_dict(), indent=1, default=str))
    return res
