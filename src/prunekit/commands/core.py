"""Core commands: ``stats``, ``prune`` (weights), ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from prunekit._version import __version__
from prunekit.io import UnsafeFileError, load_model, load_model_spec
from prunekit.stats import render_stats
from prunekit.stats import stats as compute
from prunekit.io import save_weights
from prunekit.masks import finalize
from prunekit.weights import prune_weights
from prunekit.demo import run_demo
from prunekit.commands._structured import run_structured
from prunekit.commands._structured import run_latency_target
from prunekit.commands.pkc_stats import print_pkc_stats

MODEL_HELP = ("model spec: torchvision:NAME, timm:NAME, hf:DIR, module:pkg.mod:factory, a prunekit "
              "directory, or a .pt file (a pickled model needs --trust). With --arch, the weights file.")


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` -> (1, 3, 32, 32); a clear error otherwise."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"--input-shape must be comma-separated integers, got {text!r}") from None
    if not shape or any(v <= 0 for v in shape):
        raise typer.BadParameter(f"--input-shape must be positive integers, got {text!r}")
    return shape


def make_input(shape: tuple[int, ...], dtype: str, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    if dtype in ("long", "int64", "ids"):
        return torch.randint(0, 100, shape, generator=gen)
    if dtype not in ("float32", "fp32", "float"):
        raise typer.BadParameter(f"--input-dtype must be float32 or long, got {dtype!r}")
    return torch.randn(shape, generator=gen)


def load_cli_model(model: str, arch: Optional[str], trust: bool):
    try:
        if arch:
            return load_model(arch, weights=model, trust=trust)
        return load_model_spec(model, trust=trust)
    except (UnsafeFileError, ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="MODEL") from None


def _spec(model: str, arch: Optional[str]) -> str:
    """How the saved directory rebuilds the model: the architecture spec, or the model file by
    its absolute path (a relative one would break when the directory is read elsewhere)."""
    if arch:
        return arch
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


def _overrides(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            name = ""
        if not sep or not name:
            raise typer.BadParameter(f"--override must be NAME_GLOB=SPARSITY, got {item!r}")
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print prunekit's version."""
        typer.echo(__version__)

    @app.command()
    def stats(
        model: str = typer.Argument(..., help=MODEL_HELP),
        input_shape: Optional[str] = typer.Option(
            None, "--input-shape", help="e.g. 1,3,224,224 (not needed for a .pkc file)"),
        input_dtype: str = typer.Option("float32", help="float32 or long (token ids)"),
        arch: Optional[str] = typer.Option(None, help="architecture spec when MODEL is a weights file"),
        trust: bool = typer.Option(False, help="allow unpickling a .pt model file you trust"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    ) -> None:
        """Parameters (total/nonzero), MACs, size dense vs compressed, peak memory, per layer;
        for a .pkc file, its size at every Deep Compression stage."""
        from rich.console import Console


        if model.endswith(".pkc"):  # a Deep Compression file: sizes by stage
            print_pkc_stats(model, as_json)
            return
        if input_shape is None:
            raise typer.BadParameter("--input-shape is required", param_hint="--input-shape")
        m = load_cli_model(model, arch, trust)
        x = make_input(parse_shape(input_shape), input_dtype)
        try:
            st = compute(m, x)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--input-shape") from None
        if as_json:
            typer.echo(json.dumps(st.to_dict(), indent=2))
        else:
            Console().print(render_stats(st, title=f"{model}"))

    @app.command()
    def prune(
        model: str = typer.Argument(..., help=MODEL_HELP),
        output: Path = typer.Option(..., "-o", "--output", help="output .safetensors (weights) or dir"),
        method: str = typer.Option("magnitude", help="criterion: magnitude|l1|l2|random|gradient|taylor|activation"),
        sparsity: float = typer.Option(0.5, help="fraction of weights zeroed (unstructured)"),
        pattern: str = typer.Option("unstructured", help="unstructured or N:M, e.g. 2:4"),
        scope: str = typer.Option("local", help="local (alias: layer) or global"),
        exclude: list[str] = typer.Option([], help="module-name glob or type name to keep dense"),
        override: list[str] = typer.Option([], help="NAME_GLOB=SPARSITY per-layer override"),
        skip_incompatible: bool = typer.Option(False, help="with an N:M pattern, skip layers not divisible by M"),
        input_shape: Optional[str] = typer.Option(None, "--input-shape", help="check the model runs"),
        input_dtype: str = typer.Option("float32"),
        arch: Optional[str] = typer.Option(None, help="architecture spec when MODEL is a weights file"),
        trust: bool = typer.Option(False, help="allow unpickling a .pt model file you trust"),
        seed: int = typer.Option(0),
        structured: bool = typer.Option(False, "--structured", help="physically remove channels/heads"),
        ratio: float = typer.Option(0.5, help="--structured: fraction of channels removed per group"),
        criterion: str = typer.Option("l1", help="--structured: group criterion (l1, l2, bn_scale, random, ...)"),
        round_to: int = typer.Option(1, help="--structured: keep channel counts multiples of this"),
        target_macs: Optional[float] = typer.Option(None, help="--structured: keep this fraction of MACs"),
        target_params: Optional[float] = typer.Option(None, help="--structured: keep this fraction of params"),
        hybrid: bool = typer.Option(False, help="--structured then weight masks (--sparsity/--pattern)"),
        target_latency: Optional[str] = typer.Option(
            None, help="--structured: prune until measured latency <= this x dense, e.g. 0.5x"),
        device: str = typer.Option("cpu", help="--target-latency: device to measure on"),
        dtype: str = typer.Option("fp32", help="--target-latency: fp32, fp16 or bf16"),
        runtime: str = typer.Option("eager", help="--target-latency: eager, compile, cudagraph, onnxruntime"),
    ) -> None:
        """Prune weights (masks, written as ordinary finalized weights) or, with --structured,
        remove channels physically (a prunekit directory that reloads without code changes)."""
        from rich.console import Console


        if method in ("gradient", "taylor", "activation"):
            raise typer.BadParameter(f"--method {method} needs calibration data: use the Python API "
                                     "(prune_weights(..., calib_data=...)) or `prunekit run`",
                                     param_hint="--method")
        m = load_cli_model(model, arch, trust)
        x = make_input(parse_shape(input_shape), input_dtype) if input_shape else None
        if structured:
            if x is None:
                raise typer.BadParameter("--structured needs --input-shape (the model is traced once)")

            if target_latency is not None:
                run_latency_target(m, x, output, spec=_spec(model, arch), target=target_latency,
                                   criterion=criterion, device=device, dtype=dtype, runtime=runtime)
                return
            run_structured(m, x, output, spec=_spec(model, arch), ratio=ratio, criterion=criterion,
                           scope=scope, round_to=round_to, exclude=exclude, target_macs=target_macs,
                           target_params=target_params,
                           weights=dict(sparsity=sparsity, criterion=method, scope=scope, pattern=pattern,
                                        skip_incompatible=skip_incompatible) if hybrid else None)
            return
        try:
            report = prune_weights(m, sparsity, method, scope, pattern, example_inputs=x,
                                   overrides=_overrides(override), exclude=exclude,
                                   skip_incompatible=skip_incompatible, seed=seed)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        finalize(m)
        out = output if output.suffix == ".safetensors" else output / "model.safetensors"
        save_weights(m, out, metadata={"prunekit": json.dumps(report.to_dict())[:60000]})
        c = Console()
        c.print(f"pruned {report.zeros:,}/{report.numel:,} weights ({report.sparsity:.2%}) "
                f"in {len(report.layers)} layers -> {out}")
        for name, why in report.skipped:
            c.print(f"[yellow]skipped {name}: {why}[/yellow]")

    @app.command()
    def demo(
        out_dir: Path = typer.Option(Path("demo-report"), "-o", "--out-dir"),
        epochs: int = typer.Option(30, min=1),
        finetune_epochs: int = typer.Option(5, min=0),
        seed: int = typer.Option(0),
        threads: Optional[int] = typer.Option(None, help="torch threads (default: torch's)"),
        repeats: int = typer.Option(200, min=3, help="timed calls per model at batch 1"),
    ) -> None:
        """Train a CNN on real digits, prune it several ways, fine-tune, measure, report."""

        run_demo(out_dir, epochs=epochs, finetune_epochs=finetune_epochs, seed=seed, threads=threads,
                 repeats=repeats)
