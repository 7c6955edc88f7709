"""Fit the constants of prunekit's analytic layer-time model on measured layer times.

The default global selection of ``plan_structured`` weighs each channel group by an estimated
time saved per removed unit (:mod:`prunekit.structural.time_proxy`). The estimate is a
roofline-style sum per layer::

    time = a * (MACs * g + b * weight elements + c * activation elements (in + out) + d)

with ``g`` = 1 for dense convolutions and Linear layers and the fitted ``g`` for depthwise and
grouped ones (their MACs do not run on the GEMM path)

plus ``e`` per element of an element-wise pass (ReLU, residual add) after each layer. This
script times every distinct Conv2d / Linear shape of ResNet-50 and MobileNetV2 (dense 1x1,
3x3, 7x7, strided, depthwise, the classifier) at 100%, 50% and 25% of their channels, at batch 1
and 16, plus ReLU and add on the activation sizes, with one thread and the process CPU-time
clock (robust on a shared machine), and fits ``a..e`` by non-negative least squares on the
relative error. The selection only uses ratios of the constants (``b / a``, ``c / a``,
``e / a``), so the fitted values are written relative to ``a``.

    python benchmarks/time_proxy_fit.py    # results/time_proxy_fit.json + _samples.jsonl
    python benchmarks/time_proxy_fit.py --from-samples benchmarks/results/time_proxy_fit_samples.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_schema import load_average, write_result  # noqa: E402

from prunekit.bench.harness import fixed_threads  # noqa: E402
from prunekit.bench.sparse import capture_inputs  # noqa: E402
from prunekit.bench.timer import ProcessCpuClock, compare_latency  # noqa: E402
from prunekit.io import atomic_path  # noqa: E402

FRACTIONS = (1.0, 0.5, 0.25)


def _scaled(n: int, f: float, fixed: bool) -> int:
    return n if fixed else max(1, int(round(n * f / 8)) * 8)


def layer_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, tuple[int, ...]]]:
    """Distinct (layer, input shape) pairs of ``model`` on ``x``."""
    layers = {n: m for n, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)}
    xs = capture_inputs(model.eval(), x, layers)
    seen, out = set(), []
    for n, m in layers.items():
        key = f"{m!r}|{tuple(xs[n].shape)}"
        if key not in seen:
            seen.add(key)
            out.append((m, tuple(xs[n].shape)))
    return out


def variant(m: nn.Module, shape: tuple[int, ...], f: float, batch: int
            ) -> tuple[nn.Module, torch.Tensor, dict[str, float]]:
    """The layer with in/out channels scaled by ``f`` (depthwise: together; a 3-channel
    image input kept), its input, and its features."""
    if isinstance(m, nn.Linear):
        cin, cout = _scaled(m.in_features, f, False), _scaled(m.out_features, f, False)
        layer = nn.Linear(cin, cout)
        xin = torch.randn(batch, *shape[1:-1], cin)
        pos = xin.numel() // cin
        macs, wel, ain, aout = pos * cin * cout, cin * cout, pos * cin, pos * cout
        return layer, xin, dict(macs=macs, weights=wel, acts=ain + aout, out=aout)
    dw = m.groups == m.in_channels == m.out_channels and m.groups > 1
    cin = _scaled(m.in_channels, f, m.in_channels <= 4)
    cout = cin if dw else _scaled(m.out_channels, f, False)
    layer = nn.Conv2d(cin, cout, m.kernel_size, m.stride, m.padding, m.dilation,
                      cin if dw else 1, True)
    xin = torch.randn(batch, cin, *shape[2:])
    with torch.no_grad():
        y = layer(xin)
    k = m.kernel_size[0] * m.kernel_size[1]
    per_out = k * (1 if dw else cin)
    macs = y.numel() * per_out
    return layer, xin, dict(macs=macs, weights=cout * per_out, acts=xin.numel() + y.numel(),
                            out=y.numel())


COLD_BYTES = 48 << 20  # more than the last-level cache a core sees: weights come from DRAM


def cold(layer: nn.Module, xin: torch.Tensor) -> Any:
    """A call cycling through copies of ``layer`` and ``xin`` that together exceed the cache,
    as in a whole network's forward (each layer's weights are not cache-resident)."""
    size = 4 * (sum(p.numel() for p in layer.parameters()) + xin.numel())
    n = max(1, min(64, -(-COLD_BYTES // size)))
    pairs = [(copy.deepcopy(layer).eval(), xin.clone()) for _ in range(n)]
    state = {"i": 0}

    def call(_x: Any) -> Any:
        state["i"] = (state["i"] + 1) % n
        m, x = pairs[state["i"]]
        return m(x)
    return call


def time_all(calls: dict[str, Any], repeats: int) -> dict[str, float]:
    stats = compare_latency(calls, lambda i: torch.zeros(1), warmup=2, repeats=repeats,
                            rotate=1, number=None, clock=ProcessCpuClock())
    return {k: v.median for k, v in stats.items()}


def samples(batch: int, repeats: int) -> list[dict[str, Any]]:
    import torchvision

    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    x = torch.randn(1, 3, 224, 224)
    for mname, model in (("resnet50", torchvision.models.resnet50(weights=None)),
                         ("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None))):
        for m, shape in layer_shapes(model, x):
            calls, feats = {}, {}
            for f in FRACTIONS:
                layer, xin, ft = variant(m, shape, f, batch)
                key = f"{f}"
                calls[key] = cold(layer, xin)
                feats[key] = ft
            with torch.no_grad():
                got = time_all(calls, repeats)
            for key, ms in got.items():
                kind = ("depthwise" if isinstance(m, nn.Conv2d) and m.groups > 1 else
                        type(m).__name__ + (f" {m.kernel_size[0]}x{m.kernel_size[1]}"
                                            if isinstance(m, nn.Conv2d) else ""))
                rows.append(dict(model=mname, layer=repr(m)[:60], kind=kind, batch=batch,
                                 fraction=float(key), ms=ms, **feats[key]))
    return rows


def elementwise(batch: int, repeats: int) -> list[dict[str, Any]]:
    """ReLU and residual add on the activation sizes of the two models."""
    rows = []
    for c, hw in ((64, 112), (256, 56), (512, 28), (1024, 14), (2048, 7), (96, 112), (144, 56)):
        t = torch.randn(batch, c, hw, hw)
        u = torch.randn_like(t)
        got = time_all({"relu": cold(nn.ReLU(), t), "add": lambda _x, t=t, u=u: t + u}, repeats)
        for op, ms in got.items():
            rows.append(dict(op=op, batch=batch, elements=t.numel(), ms=ms))
    return rows


def fit(rows: list[dict[str, Any]], ew: list[dict[str, Any]]) -> dict[str, float]:
    """Non-negative least squares on relative error: ms ~ a*MACs + b*W + c*acts + d (layers)
    and ms ~ e*elements (element-wise passes)."""
    from scipy.optimize import nnls

    feats = np.array([[r["macs"] * (r["kind"] != "depthwise"), r["macs"] * (r["kind"] == "depthwise"),
                       r["weights"], r["acts"], 1.0] for r in rows], dtype=float)
    ms = np.array([r["ms"] for r in rows], dtype=float)
    scale = feats.max(axis=0)
    coef, _ = nnls(feats / scale / ms[:, None], np.ones_like(ms))
    coef = coef / scale
    el = np.array([r["elements"] for r in ew], dtype=float)
    ems = np.array([r["ms"] for r in ew], dtype=float)
    e = float(np.sum(el / ems) / np.sum((el / ems) ** 2))  # least squares on relative error
    a = coef[0]
    return dict(a_ms_per_mac=float(a), grouped_mac=float(coef[1] / a),
                weight_per_mac=float(coef[2] / a), act_per_mac=float(coef[3] / a),
                fixed_macs=float(coef[4] / a),
                elementwise_per_mac=float(e / a))


def predict(c: dict[str, float], r: dict[str, Any]) -> float:
    mac = c["grouped_mac"] if r["kind"] == "depthwise" else 1.0
    return c["a_ms_per_mac"] * (mac * r["macs"] + c["weight_per_mac"] * r["weights"]
                                + c["act_per_mac"] * r["acts"] + c["fixed_macs"])


SAMPLES = Path(__file__).resolve().parent / "results" / "time_proxy_fit_samples.jsonl"


def write_samples(rows: list[dict[str, Any]], ew: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows + ew))


def read_samples(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    got = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in got if "op" not in r], [r for r in got if "op" in r]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--name", default="time_proxy_fit")
    ap.add_argument("--from-samples", type=Path, default=None,
                    help="refit from a samples file instead of measuring")
    a = ap.parse_args(argv)
    if a.from_samples is not None:
        rows, ew = read_samples(a.from_samples)
    else:
        rows, ew = [], []
        with fixed_threads(1):
            for b in (int(v) for v in a.batches.split(",")):
                rows += samples(b, a.repeats)
                ew += elementwise(b, a.repeats)
                print(f"batch {b}: {len(rows)} layer samples", flush=True)
        write_samples(rows, ew, SAMPLES.with_name(f"{a.name}_samples.jsonl"))
    c = fit(rows, ew)
    errs: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        errs.setdefault((r["kind"], r["batch"]), []).append(predict(c, r) / r["ms"] - 1)
    table = {"title": "Fitted constants (relative to the time of one MAC)",
             "columns": ["constant", "value"],
             "rows": [[k, f"{v:.4g}"] for k, v in c.items()]}
    err_table = {"title": "Model error by layer kind (predicted / measured - 1)",
                 "columns": ["kind", "batch", "layers x widths", "median error", "worst"],
                 "rows": [[k, b, len(v), f"{np.median(v):+.0%}", f"{max(v, key=abs):+.0%}"]
                          for (k, b), v in sorted(errs.items())]}
    path = write_result(a.name, "Analytic layer-time model: fitted constants", [
        table, err_table], caveats=[
        "process CPU time, 1 thread, median of interleaved rounds per layer; each layer's "
        "weights and input cycled through copies larger than the cache; " + (
            f"constants refit from {a.from_samples.name}" if a.from_samples is not None
            else f"{load_average()} while measuring"),
        f"{len(rows)} layer samples and {len(ew)} element-wise samples in "
        f"benchmarks/results/{a.name}_samples.jsonl",
        "the selection uses only the ratios to the time of one MAC, so a faster or slower "
        "CPU with the same balance gives the same plans"])
    for k, v in c.items():
        print(f"{k} = {v:.4g}")
    for row in err_table["rows"]:
        print(row)
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
