"""``prunekit prune``: one sub-command per mode, each with only its own options.

* ``prune weights MODEL``: weight masks (unstructured or N:M), written as finalized weights.
* ``prune structured MODEL``: channels removed physically (ratio, MACs/params target, hybrid,
  device-aware ranking); a prunekit directory that reloads without code changes.
* ``prune latency MODEL``: the same command as ``prunekit prune-latency``.

The spellings ``prune MODEL [--structured] ...`` still work for one release: they print a
deprecation notice naming the new command and run the same code.
"""

from __future__ import annotations

import inspect
import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from prunekit.commands._structured import run_structured
from prunekit.commands.bench import prune_latency, run_prune_latency
from prunekit.commands.core import MODEL_HELP, load_cli_model, make_input, parse_shape, saved_spec
from prunekit.io import atomic_write_bytes, save_weights
from prunekit.masks import finalize
from prunekit.weights import prune_weights

_LEGACY = "_legacy"  # hidden command behind the deprecated `prune MODEL ...` spelling


class _PruneGroup(TyperGroup):
    """Routes ``prune MODEL ...`` (no sub-command named) to the hidden compatibility command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [_LEGACY, *args]
        return super().parse_args(ctx, args)


prune_app = typer.Typer(cls=_PruneGroup, no_args_is_help=True,
                        help="Prune a model: `weights` (masks), `structured` (channels removed) "
                             "or `latency` (to a measured latency target).")

# options shared by the sub-commands (one definition, one help text)
_MODEL = typer.Argument(..., help=MODEL_HELP)
_ARCH = typer.Option(None, help="architecture spec when MODEL is a weights file")
_TRUST = typer.Option(False, help="allow unpickling a .pt model file you trust")
_INPUT_DTYPE = typer.Option("float32", help="float32 or long (token ids)")
_SCOPE = typer.Option("local", help="local (alias: layer) or global")
_EXCLUDE = typer.Option([], help="module-name glob or type name to keep dense")
_METHOD = typer.Option("magnitude", help="weight criterion: magnitude|l1|l2|random")
_SPARSITY = typer.Option(0.5, help="fraction of weights zeroed")
_PATTERN = typer.Option("unstructured", help="unstructured or N:M, e.g. 2:4")
_SKIP = typer.Option(False, help="with an N:M pattern, skip layers not divisible by M")
_CALIBRATED = ("gradient", "taylor", "activation")


def _check_method(method: str) -> None:
    if method in _CALIBRATED:
        raise typer.BadParameter(f"--method {method} needs calibration data: use the Python API "
                                 "(prune_weights(..., calib_data=...)) or `prunekit run`",
                                 param_hint="--method")


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


def weights(
    model: str = _MODEL,
    output: Path = typer.Option(..., "-o", "--output", help="output .safetensors file or directory"),
    method: str = _METHOD,
    sparsity: float = _SPARSITY,
    pattern: str = _PATTERN,
    scope: str = _SCOPE,
    exclude: list[str] = _EXCLUDE,
    override: list[str] = typer.Option([], help="NAME_GLOB=SPARSITY per-layer override"),
    skip_incompatible: bool = _SKIP,
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="check the model runs"),
    input_dtype: str = _INPUT_DTYPE,
    arch: Optional[str] = _ARCH,
    trust: bool = _TRUST,
    seed: int = typer.Option(0, help="seed of the random criterion"),
) -> None:
    """Zero weights with masks (unstructured or N:M); write ordinary finalized weights."""
    _check_method(method)
    m = load_cli_model(model, arch, trust)
    x = make_input(parse_shape(input_shape), input_dtype) if input_shape else None
    run_weights(m, x, output, sparsity=sparsity, method=method, scope=scope, pattern=pattern,
                overrides=_overrides(override), exclude=exclude,
                skip_incompatible=skip_incompatible, seed=seed)


def run_weights(m: Any, x: Any, output: Path, *, sparsity: float, method: str, scope: str,
                pattern: str, overrides: dict[str, float], exclude: list[str],
                skip_incompatible: bool, seed: int) -> None:
    """Mask, finalize and save; print what was pruned and what was skipped."""
    from rich.console import Console

    try:
        report = prune_weights(m, sparsity, method, scope, pattern, example_inputs=x,
                               overrides=overrides, exclude=exclude,
                               skip_incompatible=skip_incompatible, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finalize(m)
    out = output if output.suffix == ".safetensors" else output / "model.safetensors"
    save_weights(m, out, metadata={"prunekit": json.dumps(report.to_dict())[:60000]})
    why = out.with_name("prune_report.json") if output.suffix != ".safetensors" else \
        out.with_suffix(".report.json")  # every layer's sparsity and the reason for it
    atomic_write_bytes(why, json.dumps(report.to_dict(), indent=1).encode())
    c = Console()
    c.print(f"pruned {report.zeros:,}/{report.numel:,} weights ({report.sparsity:.2%}) "
            f"in {len(report.layers)} layers -> {out} (per-layer reasons: {why.name})")
    for name, why in report.skipped:
        c.print(f"[yellow]skipped {name}: {why}[/yellow]")


def structured(
    model: str = _MODEL,
    output: Path = typer.Option(..., "-o", "--output", help="output directory"),
    input_shape: str = typer.Option(..., "--input-shape",
                                    help="one example batch, e.g. 1,3,224,224 (traced once)"),
    input_dtype: str = _INPUT_DTYPE,
    ratio: float = typer.Option(0.5, help="fraction of channels removed per group"),
    criterion: str = typer.Option("l1", help="group criterion (l1, l2, bn_scale, random, ...)"),
    scope: str = _SCOPE,
    round_to: Optional[int] = typer.Option(
        None, help="keep channel counts multiples of this (default: --scope local exact, "
        "global multiples of 16, of 32 from 256 channels)"),
    exclude: list[str] = _EXCLUDE,
    target_macs: Optional[float] = typer.Option(None, help="keep this fraction of MACs"),
    target_params: Optional[float] = typer.Option(None, help="keep this fraction of params"),
    device_aware: bool = typer.Option(
        False, "--device-aware", help="with --scope global: weigh the ranking by measured time "
        "per unit on this machine (width tables)"),
    macs_only: bool = typer.Option(
        False, "--macs-only", help="with --scope global: rank by MACs alone, without the "
        "default analytic time estimate"),
    hybrid: bool = typer.Option(False, help="then weight masks (--sparsity/--pattern/--method)"),
    sparsity: float = _SPARSITY,
    pattern: str = _PATTERN,
    method: str = _METHOD,
    skip_incompatible: bool = _SKIP,
    arch: Optional[str] = _ARCH,
    trust: bool = _TRUST,
) -> None:
    """Remove channels physically; write a prunekit directory that reloads without code."""
    _check_method(method)
    m = load_cli_model(model, arch, trust)
    x = make_input(parse_shape(input_shape), input_dtype)
    masks = dict(sparsity=sparsity, criterion=method, scope=scope, pattern=pattern,
                 skip_incompatible=skip_incompatible) if hybrid else None
    run_structured(m, x, output, spec=saved_spec(model, arch), ratio=ratio, criterion=criterion,
                   scope=scope, round_to=round_to, exclude=exclude, target_macs=target_macs,
                   target_params=target_params, device_aware=device_aware, weights=masks,
                   macs_only=macs_only)


def _deprecated(new: str) -> None:
    msg = f"`prunekit prune MODEL ...` is deprecated; use `{new}` (same options)"
    warnings.warn(msg, DeprecationWarning, stacklevel=2)
    print(f"Deprecated: {msg}", file=sys.stderr)


def legacy(
    model: str = _MODEL,
    output: Path = typer.Option(..., "-o", "--output"),
    method: str = _METHOD,
    sparsity: float = _SPARSITY,
    pattern: str = _PATTERN,
    scope: str = _SCOPE,
    exclude: list[str] = _EXCLUDE,
    override: list[str] = typer.Option([]),
    skip_incompatible: bool = _SKIP,
    input_shape: Optional[str] = typer.Option(None, "--input-shape"),
    input_dtype: str = _INPUT_DTYPE,
    arch: Optional[str] = _ARCH,
    trust: bool = _TRUST,
    seed: int = typer.Option(0),
    is_structured: bool = typer.Option(False, "--structured"),
    ratio: float = typer.Option(0.5),
    criterion: str = typer.Option("l1"),
    round_to: Optional[int] = typer.Option(None),
    target_macs: Optional[float] = typer.Option(None),
    target_params: Optional[float] = typer.Option(None),
    hybrid: bool = typer.Option(False),
    target_latency: Optional[str] = typer.Option(None),
    device: str = typer.Option("cpu"),
    dtype: str = typer.Option("fp32"),
    runtime: str = typer.Option("eager"),
    device_aware: bool = typer.Option(False, "--device-aware"),
    macs_only: bool = typer.Option(False, "--macs-only"),
) -> None:
    """The old spelling ``prune MODEL [--structured] ...``: deprecated, removed in the next release."""
    given = dict(locals())
    if not is_structured:
        _deprecated("prunekit prune weights MODEL ...")
        return weights(**{k: given[k] for k in _params(weights)})
    if input_shape is None:
        raise typer.BadParameter("--structured needs --input-shape (the model is traced once)")
    if target_latency is None:
        _deprecated("prunekit prune structured MODEL ...")
        return structured(**{k: given[k] for k in _params(structured)})
    _deprecated("prunekit prune-latency MODEL --target-latency ...")
    run_prune_latency(model, output, command=shlex.join(["prunekit", *sys.argv[1:]]),
                      target=target_latency, input_shape=input_shape, input_dtype=input_dtype,
                      criterion=criterion, device=device, dtype=dtype, runtime=runtime,
                      device_aware=device_aware, arch=arch, trust=trust)


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def register(app: typer.Typer) -> None:
    prune_app.command("weights")(weights)
    prune_app.command("structured")(structured)
    prune_app.command("latency")(prune_latency)
    prune_app.command(_LEGACY, hidden=True)(legacy)
    app.add_typer(prune_app, name="prune")
