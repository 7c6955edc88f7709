"""Serving cost of a classical model: size (trees, nodes, support vectors, pickle and ONNX
bytes) and predict latency at given batch sizes, in scikit-learn and in ONNX Runtime.

Dense and pruned are timed in the same process, interleaved round by round over the same
rotating batches of real rows (``prunekit.bench.timer.interleaved_samples``), one thread each.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunekit.bench.timer import (Clock, LatencyStats, ProcessCpuClock, WallClock,
                                  calibrate_number, interleaved_samples)

RUNTIMES = ("sklearn", "onnxruntime")


@dataclass(frozen=True)
class ModelSize:
    """Structure and bytes of a fitted model (``None`` where a figure does not apply)."""

    n_trees: int | None
    n_nodes: int | None
    n_leaves: int | None
    n_support_vectors: int | None
    pickle_bytes: int
    onnx_bytes: int | None
    onnx_error: str | None = None


@dataclass(frozen=True)
class LatencyRow:
    """Predict latency of the dense and pruned model on one runtime and batch size (ms/call)."""

    runtime: str
    batch: int
    dense: LatencyStats
    pruned: LatencyStats

    @property
    def speedup(self) -> float:
        """Median dense latency over median pruned latency."""
        return self.dense.median / self.pruned.median

    @property
    def paired_speedup(self) -> float:
        """Median of the per-round ratios (the rounds are interleaved, so paired)."""
        ratios = [d / p for d, p in zip(self.dense.samples, self.pruned.samples, strict=True)]
        return float(np.median(ratios))


def final_step(est: Any) -> Any:
    """The estimator itself, or the last step of a scikit-learn ``Pipeline``."""
    steps = getattr(est, "steps", None)
    return steps[-1][1] if steps else est


def _trees(est: Any) -> list[Any]:
    if hasattr(est, "tree_"):
        return [est]
    ests = getattr(est, "estimators_", None)
    if ests is None:
        return []
    return list(np.asarray(ests, dtype=object).ravel())


def to_onnx(est: Any, X: np.ndarray) -> tuple[bytes | None, str | None]:
    """ONNX bytes through skl2onnx, or ``(None, reason)`` where it does not convert."""
    try:
        from skl2onnx import to_onnx as convert
    except ImportError:
        return None, "skl2onnx is not installed (pip install 'prunekit[classic]')"
    opts = {id(final_step(est)): {"zipmap": False}} if hasattr(est, "classes_") else None
    try:
        with warnings.catch_warnings():  # converters read attributes scikit-learn deprecates
            warnings.simplefilter("ignore", FutureWarning)
            onx = convert(est, X[:1].astype(np.float32), options=opts, target_opset=None)
    except Exception as exc:  # noqa: BLE001 - any converter failure only removes the ONNX row
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return onx.SerializeToString(), None


def describe(est: Any, X: np.ndarray, onnx: bool = True) -> tuple[ModelSize, bytes | None]:
    """Size figures of ``est`` and its ONNX bytes (``None`` when not converted)."""
    core = final_step(est)
    trees = _trees(core)
    booster = getattr(core, "booster_", None) if hasattr(core, "fitted_") else None
    if booster is not None:  # LightGBM: leaves from the model dump
        leaves = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]
        onx, err = (None, "skl2onnx does not convert LightGBM models without onnxmltools")
        return ModelSize(len(leaves), int(sum(2 * v - 1 for v in leaves)), int(sum(leaves)),
                         None, len(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL)),
                         None, err), None
    sv = getattr(core, "support_vectors_", None)
    onx, err = to_onnx(est, X) if onnx else (None, "not requested")
    size = ModelSize(
        n_trees=len(trees) if trees else None,
        n_nodes=int(sum(t.tree_.node_count for t in trees)) if trees else None,
        n_leaves=int(sum(t.tree_.n_leaves for t in trees)) if trees else None,
        n_support_vectors=int(sv.shape[0]) if sv is not None else None,
        pickle_bytes=len(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL)),
        onnx_bytes=len(onx) if onx is not None else None, onnx_error=err)
    return size, onx


def ort_predictor(onx: bytes) -> Callable[[np.ndarray], Any]:
    """A one-thread ONNX Runtime session as ``f(X) -> outputs`` (first output only)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onx, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    first = sess.get_outputs()[0].name
    return lambda x: sess.run([first], {name: x})


def batches(X: np.ndarray, batch: int, count: int = 4, seed: int = 0, dtype=np.float64
            ) -> list[np.ndarray]:
    """``count`` distinct batches of real rows of ``X`` (drawn with replacement)."""
    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(X[rng.integers(0, X.shape[0], batch)], dtype=dtype)
            for _ in range(count)]


def make_clock(name: str) -> Clock:
    """``"wall"`` or ``"process_cpu"`` (process CPU time: one thread only)."""
    if name == "process_cpu":
        return ProcessCpuClock()
    if name == "wall":
        return WallClock()
    raise ValueError(f"clock must be 'wall' or 'process_cpu', got {name!r}")


def compare(dense: Any, pruned: Any, X: np.ndarray, *, batch_sizes: Sequence[int],
            runtimes: Sequence[str] = RUNTIMES, onnx: tuple[bytes | None, bytes | None] = (None, None),
            repeats: int = 15, warmup: int = 2, clock: str = "wall",
            min_sample_ms: float = 2.0) -> list[LatencyRow]:
    """Interleaved predict latency of ``dense`` vs ``pruned`` per runtime and batch size."""
    from threadpoolctl import threadpool_limits

    clk = make_clock(clock)
    rows = []
    with threadpool_limits(1):
        for rt in runtimes:
            if rt == "sklearn":
                fns, dtype = {"dense": dense.predict, "pruned": pruned.predict}, np.float64
            elif rt == "onnxruntime":
                if onnx[0] is None or onnx[1] is None:
                    continue
                fns, dtype = {"dense": ort_predictor(onnx[0]), "pruned": ort_predictor(onnx[1])}, np.float32
            else:
                raise ValueError(f"runtime must be one of {RUNTIMES}, got {rt!r}")
            for b in batch_sizes:
                pool = batches(X, b, dtype=dtype)
                numbers = {k: calibrate_number(clk, lambda f=f, x=pool[0]: f(x), min_sample_ms)
                           for k, f in fns.items()}
                st = interleaved_samples(fns, pool, warmup=warmup, repeats=repeats,
                                         numbers=numbers, clock=clk)
                rows.append(LatencyRow(rt, int(b), st["dense"], st["pruned"]))
    return rows


def onnx_agreement(est: Any, onx: bytes, X: np.ndarray) -> float | None:
    """Share of rows where ONNX Runtime's label equals scikit-learn's (classifiers only)."""
    if not hasattr(est, "classes_"):
        return None
    try:
        labels = ort_predictor(onx)(X.astype(np.float32))[0]
    except Exception:  # noqa: BLE001 - a runtime failure leaves the figure out
        return None
    return float(np.mean(np.asarray(labels).ravel() == est.predict(X)))
