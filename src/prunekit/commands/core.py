"""Core commands: ``stats``, ``demo``; the helpers every command shares (``version`` lives in
:mod:`prunekit.cli`, which answers it without importing torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from prunekit.io import UnsafeFileError, load_model, load_model_spec
from prunekit.stats import render_stats
from prunekit.stats import stats as compute
from prunekit.demo import run_demo
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


def saved_spec(model: str, arch: Optional[str]) -> str:
    """How the saved directory rebuilds the model: the architecture spec, or the model file by
    its absolute path (a relative one would break when the directory is read elsewhere)."""
    if arch:
        return arch
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


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


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
    app.command("demo")(demo)
