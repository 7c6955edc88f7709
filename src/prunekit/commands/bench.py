"""Speed commands: ``bench`` (dense vs pruned, side by side) and ``analyze`` (methods × ratios)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shlex
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from prunekit.commands.core import MODEL_HELP, load_cli_model, make_input, parse_shape, saved_spec
from prunekit.bench.config import BenchConfig
from prunekit.bench.runtimes import get_runtime, resolve_device
from prunekit.report.summary import summarize
from prunekit.report.tables import latency_table, models_table, speedup_table, \
    stages_table
from prunekit.commands._bench_int8 import add_columns, check_quantize, int8_variants, \
    load_bench_model, sizes
from prunekit.compression.columns import analyze_extras
from prunekit.bench.harness import compare
from prunekit.bench.analyze import analyze
from prunekit.bench.methods import parse_method
from prunekit.bench.latency_target import prune_for_latency
from prunekit.config import parse_latency_target
from prunekit.report import write_report
from prunekit.io import atomic_write_bytes
from prunekit.bench.deploy import DeployConfig, deploy
from prunekit.serialize import load as pk_load
from prunekit.serialize import save as pk_save


def parse_list(text: str, option: str, kind: type = str) -> tuple:
    """``"1,32"`` -> (1, 32); BadParameter naming ``option`` otherwise."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise typer.BadParameter(f"{option} needs at least one value", param_hint=option)
    try:
        return tuple(kind(v) for v in items)
    except ValueError:
        raise typer.BadParameter(f"{option} must be comma-separated {kind.__name__} values, "
                                 f"got {text!r}", param_hint=option) from None


def load_callable(spec: str, option: str = "--eval") -> Callable[..., Any]:
    """``file.py:func`` or ``package.module:func`` -> the function (runs the user's code)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise typer.BadParameter(f"{option} must look like my_eval.py:evaluate, got {spec!r}",
                                 param_hint=option)
    try:
        if path.endswith(".py"):
            file = Path(path)
            if not file.is_file():
                raise FileNotFoundError(f"no file {path!r}")
            mod_spec = importlib.util.spec_from_file_location(f"_prunekit_user_{file.stem}", file)
            mod = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(path)
        fn = getattr(mod, name)
    except (ImportError, FileNotFoundError, AttributeError, SyntaxError) as e:
        raise typer.BadParameter(f"cannot load {spec!r}: {type(e).__name__}: {e}",
                                 param_hint=option) from None
    if not callable(fn):
        raise typer.BadParameter(f"{spec!r} is not callable", param_hint=option)
    return fn


def _config(device, dtype, batch, runtime, threads, repeats, warmup, fold_bn, adapt=None):
    runtimes = parse_list(runtime, "--runtime")
    for rt in runtimes:
        try:
            get_runtime(rt)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--runtime") from None
    try:
        resolve_device(device)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--device") from None
    kw = {"threads": threads} if threads else {}
    if adapt:
        max_repeats, tolerance, budget = adapt
        kw.update(max_repeats=max(max_repeats, repeats), tolerance=tolerance, budget_s=budget)
    try:
        return BenchConfig(device=device, dtype=dtype, batches=parse_list(batch, "--batch", int),
                           runtimes=runtimes, repeats=repeats, warmup=warmup, fold_bn=fold_bn, **kw)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def command_line(ctx: typer.Context) -> str:
    """The command as it can be re-run (positional arguments, then every option's value)."""
    parts = [ctx.command_path]
    for p in ctx.command.params:
        v = ctx.params.get(p.name)
        if v is None or p.name in ("as_json",):
            continue
        if p.param_type_name == "argument":
            parts += [shlex.quote(str(x)) for x in (v if isinstance(v, (list, tuple)) else [v])]
        elif isinstance(v, bool):
            if v or p.secondary_opts:  # a lone flag left off is its default
                parts.append(p.opts[0] if v else p.secondary_opts[0])
        else:
            parts += [p.opts[0], shlex.quote(str(v))]
    return " ".join(parts)


def _print_speedups(data: dict[str, Any]) -> None:
    for title, header, rows in (speedup_table(data), latency_table(data), models_table(data),
                                stages_table(data)):
        if not rows:
            continue
        typer.echo(f"\n{title}\n" + " | ".join(header))
        for r in rows:
            typer.echo(" | ".join(r))
    typer.echo("\nWhat this means:")
    for s in summarize(data):
        typer.echo(f"- {s}")


# adaptive-timing options shared by `bench` and `analyze`
_MAX_REPEATS = typer.Option(200, help="adaptive: at most this many rounds while any speedup "
                            "interval is wider than --tolerance")
_TOLERANCE = typer.Option(0.05, help="relative half-width of the 95% speedup interval a figure "
                          "needs to be reliable")
_BUDGET = typer.Option(20.0, help="seconds per runtime and batch after which adaptive "
                       "repetition stops")


def bench_cmd(
    ctx: typer.Context,
    models: list[str] = typer.Argument(..., help="baseline first, then pruned models. "
                                       + MODEL_HELP),
    input_shape: str = typer.Option("1,3,224,224", "--input-shape", help="one example batch"),
    input_dtype: str = typer.Option("float32", help="float32 or long (token ids)"),
    device: str = typer.Option("cpu", help="cpu or cuda[:i]"),
    dtype: str = typer.Option("fp32", help="fp32, fp16 or bf16"),
    batch: str = typer.Option("1", help="batch sizes, e.g. 1,32,128"),
    runtime: str = typer.Option("eager", help="eager,compile,cudagraph,onnxruntime"),
    threads: Optional[int] = typer.Option(None, help="intra-op threads (default: torch's)"),
    repeats: int = typer.Option(30, help="timed samples per model"),
    warmup: int = typer.Option(5, help="untimed calls per model"),
    max_repeats: int = _MAX_REPEATS,
    tolerance: float = _TOLERANCE,
    budget: float = _BUDGET,
    fold_bn: bool = typer.Option(True, help="fold BatchNorm into convs in every model"),
    quantize: Optional[str] = typer.Option(None, help="int8: also time each model's ONNX "
                                           "Runtime int8 version (<name>+int8)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="report directory"),
    trust: bool = typer.Option(False, help="allow unpickling .pt model files you trust"),
    as_json: bool = typer.Option(False, "--json", help="print the JSON result"),
) -> None:
    """Time dense and pruned models side by side (same runtime, dtype, batch, threads)."""

    cfg = _config(device, dtype, batch, runtime, threads, repeats, warmup, fold_bn,
                  (max_repeats, tolerance, budget))
    check_quantize(quantize, cfg)
    named: dict[str, Any] = {}
    specs: dict[str, str] = {}
    for i, spec in enumerate(models):
        key = Path(spec.rstrip("/")).name or spec
        key = key if key not in named else f"{key}#{i}"
        named[key], specs[key] = load_bench_model(spec, trust), spec
    x = make_input(parse_shape(input_shape), input_dtype)
    size_info = sizes(named, specs)
    int8_models, int8_info = int8_variants(named, x, cfg) if quantize else ({}, {})
    res = compare({**named, **int8_models}, x, cfg)
    data = res.to_dict()
    add_columns(data, size_info, int8_info)
    data["command"] = command_line(ctx)
    if output is not None:
        paths = write_report(data, output)
        typer.echo(f"report: {paths.get('html')}")
    if as_json:
        typer.echo(json.dumps(data, indent=1, default=str))
    else:
        _print_speedups(data)


def analyze_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help=MODEL_HELP),
    methods: str = typer.Option("l1,magnitude-unstructured,2:4",
                                help="structured criteria (l1, l2, taylor …), "
                                     "<criterion>-unstructured, or N:M"),
    ratios: str = typer.Option("0.2,0.4", help="pruning ratios, e.g. 0.2,0.4,0.6"),
    eval_fn: Optional[str] = typer.Option(None, "--eval", help="my_eval.py:evaluate — "
                                          "evaluate(model) -> accuracy"),
    input_shape: str = typer.Option("1,3,224,224", "--input-shape"),
    input_dtype: str = typer.Option("float32"),
    device: str = typer.Option("cpu"),
    dtype: str = typer.Option("fp32"),
    batch: str = typer.Option("1"),
    runtime: str = typer.Option("eager"),
    threads: Optional[int] = typer.Option(None),
    repeats: int = typer.Option(20),
    warmup: int = typer.Option(3),
    max_repeats: int = _MAX_REPEATS,
    tolerance: float = _TOLERANCE,
    budget: float = _BUDGET,
    fold_bn: bool = typer.Option(True),
    sparse_backends: bool = typer.Option(True, help="also time weight-sparse cells with "
                                         "sparse kernels where they measure faster"),
    quantize: Optional[str] = typer.Option(None, help="int8: also time each model's ONNX "
                                           "Runtime int8 version (<name>+int8)"),
    deep_compression: bool = typer.Option(False, "--deep-compression", help="also report each "
                                          "model's size at every Deep Compression stage"),
    output: Path = typer.Option(Path("report"), "-o", "--output", help="report directory"),
    trust: bool = typer.Option(False, help="allow unpickling .pt model files you trust"),
) -> None:
    """Sweep methods × ratios, evaluate, time side by side, write report/index.html."""

    cfg = _config(device, dtype, batch, runtime, threads, repeats, warmup, fold_bn,
                  (max_repeats, tolerance, budget))
    check_quantize(quantize, cfg)
    method_list = parse_list(methods, "--methods")
    for m in method_list:
        try:
            parse_method(m)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--methods") from None
    ratio_list = parse_list(ratios, "--ratios", float)
    fn = load_callable(eval_fn) if eval_fn else None
    net = load_cli_model(model, None, trust)
    x = make_input(parse_shape(input_shape), input_dtype)
    extras = analyze_extras(x, int8=quantize is not None, stages=deep_compression,
                            threads=cfg.threads, fold_bn=cfg.fold_bn)
    try:
        res = analyze(net, x, methods=method_list, ratios=ratio_list, eval_fn=fn, config=cfg,
                      out_dir=str(output), command=command_line(ctx),
                      sparse_backends=sparse_backends, extras=extras)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    data = res.to_dict()
    _print_speedups(data)
    failed = [e for e in data["sweep"] if e["status"] != "ok"]
    for e in failed:
        typer.echo(f"FAILED {e['method']}@{e['ratio']:g}: {e['error']}")
    typer.echo(f"report: {output / 'index.html'}")


def prune_latency(
    ctx: typer.Context,
    model: str = typer.Argument(..., help=MODEL_HELP),
    target: str = typer.Option("0.5x", "--target-latency", help="fraction of dense latency, "
                               "e.g. 0.5x or 50%"),
    output: Path = typer.Option(..., "-o", "--output", help="output directory"),
    input_shape: str = typer.Option("1,3,224,224", "--input-shape",
                                    help="one batch at the batch size to optimise for"),
    input_dtype: str = typer.Option("float32"),
    criterion: str = typer.Option("l1", help="structural group criterion"),
    device: str = typer.Option("cpu"),
    dtype: str = typer.Option("fp32"),
    runtime: str = typer.Option("eager"),
    threads: Optional[int] = typer.Option(None),
    repeats: int = typer.Option(10, help="timed samples per candidate"),
    budget: float = typer.Option(10.0, help="seconds of adaptive timing per candidate "
                                 "(and for the fresh verification run)"),
    round_to: Optional[int] = typer.Option(None, help="fixed rounding (default: measured)"),
    lut: Optional[Path] = typer.Option(None, help="latency-table cache (JSON)"),
    device_aware: bool = typer.Option(False, "--device-aware", help="weigh the global ranking by "
                                      "measured time per unit on this machine (width tables)"),
    arch: Optional[str] = typer.Option(None, help="architecture spec when MODEL is a weights file"),
    trust: bool = typer.Option(False, help="allow unpickling .pt model files you trust"),
) -> None:
    """Structured pruning until the measured latency meets --target-latency (never slower)."""
    run_prune_latency(model, output, command=command_line(ctx), target=target,
                      input_shape=input_shape, input_dtype=input_dtype, criterion=criterion,
                      device=device, dtype=dtype, runtime=runtime, threads=threads,
                      repeats=repeats, budget=budget, round_to=round_to, lut=lut,
                      device_aware=device_aware, arch=arch, trust=trust)


def run_prune_latency(model: str, output: Path, *, command: str, target: str, input_shape: str,
                      input_dtype: str = "float32", criterion: str = "l1", device: str = "cpu",
                      dtype: str = "fp32", runtime: str = "eager", threads: Optional[int] = None,
                      repeats: int = 10, budget: float = 10.0, round_to: Optional[int] = None,
                      lut: Optional[Path] = None, device_aware: bool = False,
                      arch: Optional[str] = None, trust: bool = False) -> None:
    """The one implementation of latency-targeted pruning behind ``prune-latency``."""
    try:
        frac = parse_latency_target(target)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--target-latency") from None
    x = make_input(parse_shape(input_shape), input_dtype)
    cfg = _config(device, dtype, str(x.shape[0]), runtime, threads, repeats, 2, True,
                  (200, 0.05, budget))
    net = load_cli_model(model, arch, trust)
    try:
        res = prune_for_latency(net, x, frac, config=cfg, criterion=criterion, round_to=round_to,
                                lut_path=str(lut) if lut else None, device_aware=device_aware)
    except (RuntimeError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    pk_save(res.model, output, spec=saved_spec(model, arch))
    info = dict(res.to_dict(), command=command)
    atomic_write_bytes(output / "latency_search.json", json.dumps(info, indent=1).encode())
    _print_latency(res, frac, output)


def _print_latency(res: Any, frac: float, output: Path) -> None:
    typer.echo(f"measured on {res.setting}")
    for r, rel in res.trace:
        typer.echo(f"search: ratio {r:.3f}: measured {rel:.3f}x dense latency")
    ci = res.relative_interval
    ci_text = f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}x)" if ci else ""
    typer.echo(f"{'met' if res.met else 'NOT met'}: fresh re-measurement {res.relative_latency:.3f}x "
               f"dense{ci_text} at ratio {res.ratio:.3f} (target {frac:g}x) -> {output}")
    for n in res.notes:
        typer.echo(f"note: {n}")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_cmd)
    app.command("bench")(bench_cmd)
    app.command("analyze")(analyze_cmd)
    app.command("prune-latency")(prune_latency)


def _dense_spec(model: str, dense: Optional[str]) -> Optional[str]:
    """``--dense``, else the base a ``prunekit.save`` directory was pruned from (None: none)."""
    if dense:
        return dense
    meta = Path(model) / "prunekit.json"
    if meta.is_file():
        base = json.loads(meta.read_text()).get("base", {})
        if base.get("kind") == "spec" and not base.get("kwargs"):
            return base["spec"]
    return None


def deploy_cmd(
    model: str = typer.Argument(..., help="the pruned model: a prunekit.save directory or "
                                + MODEL_HELP),
    dense: Optional[str] = typer.Option(None, help="the dense model to compare with "
                                        "(default: the base recorded in the directory)"),
    output: Path = typer.Option(Path("deployed"), "-o", "--output"),
    input_shape: str = typer.Option("1,3,224,224", "--input-shape"),
    input_dtype: str = typer.Option("float32"),
    device: str = typer.Option("cpu"),
    dtype: str = typer.Option("fp32"),
    batch: int = typer.Option(1),
    runtime: str = typer.Option("eager,compile,onnxruntime,onnxruntime-nospin,openvino",
                                help="runtimes to try (missing ones are skipped and named)"),
    threads: Optional[str] = typer.Option(None, help="thread counts to try, e.g. 1,2"),
    channels_last: str = typer.Option("both", help="both, on or off"),
    fold_bn: str = typer.Option("on", help="both, on or off"),
    budget: float = typer.Option(10.0, help="seconds of adaptive timing per setting"),
    trust: bool = typer.Option(False, help="allow unpickling .pt model files you trust"),
) -> None:
    """Measure pruned and dense in every runtime/setting; write the fastest artifact."""
    choice = {"both": (False, True), "on": (True,), "off": (False,)}
    for opt, v in (("--channels-last", channels_last), ("--fold-bn", fold_bn)):
        if v not in choice:
            raise typer.BadParameter(f"must be both, on or off, got {v!r}", param_hint=opt)
    try:
        cfg = DeployConfig(device=device, dtype=dtype, batch=batch,
                           runtimes=parse_list(runtime, "--runtime"),
                           threads=parse_list(threads, "--threads", int) if threads else (),
                           channels_last=choice[channels_last], fold_bn=choice[fold_bn],
                           budget_s=budget)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    pruned = _load_pruned(model, trust)
    spec = _dense_spec(model, dense)
    ref = load_cli_model(spec, None, trust) if spec else None
    x = make_input(parse_shape(input_shape), input_dtype)
    res = deploy(pruned, x, output, dense=ref, config=cfg)
    _print_deploy(res)


def _load_pruned(model: str, trust: bool) -> Any:
    if (Path(model) / "prunekit.json").is_file():
        return pk_load(model)
    return load_cli_model(model, None, trust)


def _print_deploy(res: Any) -> None:
    typer.echo("candidate | pruned ms | dense ms | like-for-like speedup (95% CI) | reliable")
    for c in res.candidates:
        if c.error:
            typer.echo(f"{c.name} | SKIPPED: {c.error[:200]}")
            continue
        sp = (f"{c.speedup:.2f}× ({c.ci_low:.2f}–{c.ci_high:.2f})" if c.speedup else "–")
        rel = "yes" if c.reliable else "no: " + "; ".join(c.reasons)
        typer.echo(f"{c.name} | {c.pruned_ms:.3g} | {c.dense_ms or float('nan'):.3g} | {sp} | {rel}")
    for n in res.notes:
        typer.echo(f"note: {n}")
    if res.winner is None:
        typer.echo("no candidate could be written; nothing deployed", err=True)
        raise typer.Exit(2)
    for c in res.comparisons:
        ci = f" (95% CI {c.ci_low:.2f}–{c.ci_high:.2f})" if c.paired else " (no interval)"
        rel = "" if c.reliable else " [unreliable: " + "; ".join(c.reasons) + "]"
        typer.echo(f"{c.kind}: {c.speedup:.2f}×{ci}: dense {c.dense} vs pruned {c.pruned}{rel}")
    lfl = f"like-for-like {res.winner.speedup:.2f}×" if res.winner.speedup else "no dense"
    typer.echo(f"winner: {res.winner.name} ({lfl}) -> {res.artifact}; report {res.report}")
