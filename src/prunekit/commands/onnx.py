"""``prunekit prune-onnx``: ONNX in, pruned ONNX out, checked with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prunekit.commands.core import parse_shape
from prunekit.onnx import OnnxVerifyError, prune_onnx
from prunekit.commands.errors import fail


def register(app: typer.Typer) -> None:
    @app.command("prune-onnx")
    def prune_onnx_cmd(
        model: Path = typer.Argument(..., help="the .onnx file to prune (not modified)"),
        output: Path = typer.Option(..., "-o", "--output", help="where to write the pruned .onnx"),
        ratio: float = typer.Option(0.5, help="fraction of channels (or weights) removed"),
        structured: bool = typer.Option(
            False, "--structured/--weights",
            help="remove channels physically, or zero weights in the original graph"),
        input_shape: Optional[str] = typer.Option(
            None, "--input-shape", help="e.g. 1,3,224,224 (needed when the input is dynamic)"),
        criterion: str = typer.Option("l1", help="l1, l2, bn_scale (structured) or random"),
        exclude: list[str] = typer.Option([], help="ONNX node or module name glob left dense"),
        atol: float = typer.Option(1e-4, help="tolerance of the ONNX Runtime check"),
    ) -> None:
        """Prune an ONNX graph (through onnx2torch) and verify it with ONNX Runtime."""
        shape = parse_shape(input_shape) if input_shape else None
        try:
            result = prune_onnx(model, ratio=ratio, structured=structured, input_shape=shape,
                                criterion=criterion, exclude=tuple(exclude), atol=atol,
                                output=output, strict=True)
        except (ValueError, ImportError) as exc:
            fail(str(exc).splitlines()[0] if str(exc) else "failed")
        except OnnxVerifyError as exc:
            typer.echo(str(exc), err=True)
            fail("the pruned graph does not match the masked reference; nothing was written", 1)
        typer.echo(result.summary())
        typer.echo(f"wrote {output}")
