"""Deep Compression commands: ``compress`` (prune + share + fine-tune + Huffman -> .pkc) and
the ``.pkc`` view used by ``prunekit stats model.pkc``.

Strings are parsed here; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer
from torch.utils.data import DataLoader

from prunekit.commands.core import MODEL_HELP, load_cli_model
from prunekit.commands.pkc_stats import stage_rows
from prunekit.compression import compress as write_pkc
from prunekit.compression import share_weights
from prunekit.recover.loop import finetune
from prunekit.recover.recipe import Finetune
from prunekit.recover.tasks import load_task
from prunekit.recover.training import default_accuracy
from prunekit.weights import prune_weights
from prunekit.commands.errors import fail

_FAMILIES = {"conv": ("Conv1d", "Conv2d", "Conv3d"), "fc": ("Linear",), "linear": ("Linear",)}


def parse_bits(text: str) -> int | dict[str, int]:
    """``"5"`` -> 5; ``"conv=8,fc=5"`` -> {Conv1d/2d/3d: 8, Linear: 5}; other keys are module
    names, globs or type names."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    out: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key or not value.strip().isdigit():
            raise ValueError(f"--bits must be N or KEY=N[,KEY=N] (conv=8,fc=5), got {text!r}")
        for k in _FAMILIES.get(key.lower(), (key,)):
            out[k] = int(value)
    return out


def _finetune(model, data: str, epochs: int, lr: float) -> float:
    train, val = load_task(data)
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=gen)
    finetune(model, loader, torch.nn.functional.cross_entropy, Finetune(epochs=epochs, lr=lr))
    return default_accuracy(model.eval(), DataLoader(val, batch_size=256))


def register(app: typer.Typer) -> None:
    @app.command()
    def compress(
        model: str = typer.Argument(..., help=MODEL_HELP),
        output: Path = typer.Option(..., "-o", "--output", help="output .pkc file"),
        arch: Optional[str] = typer.Option(None, help="architecture spec when MODEL is weights"),
        prune: float = typer.Option(0.0, help="fraction of weights pruned by magnitude first"),
        scope: str = typer.Option("global", help="pruning scope: layer or global"),
        bits: str = typer.Option("conv=8,fc=5", help="codebook bits: N or conv=8,fc=5,NAME=N"),
        init: str = typer.Option("linear", help="centroid init: linear, density or random"),
        finetune_epochs: int = typer.Option(0, help="fine-tune the centroids this many epochs"),
        data: Optional[str] = typer.Option(None, help="fine-tuning task: digits or mnist1d"),
        lr: float = typer.Option(0.005, help="fine-tuning learning rate"),
        trust: bool = typer.Option(False, help="allow unpickling a .pt model file you trust"),
    ) -> None:
        """Prune, share weights (k-means), fine-tune the centroids, Huffman-code: one .pkc file."""
        if finetune_epochs and not data:
            fail("--finetune-epochs needs --data (digits or mnist1d)")
        try:
            bits_rule = parse_bits(bits)
            m = load_cli_model(model, arch, trust)
            if prune:
                prune_weights(m, prune, scope=scope)
            share_weights(m, bits=bits_rule, init=init)
            acc = _finetune(m, data, finetune_epochs, lr) if finetune_epochs else None
            info = write_pkc(m, output)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        for name, size, ratio in stage_rows(info):
            typer.echo(f"{name:45s} {size:>14,.0f} B  {ratio:6.1f}x")
        if acc is not None:
            typer.echo(f"accuracy after fine-tuning on {data}: {acc:.2f}%")
        typer.echo(f"wrote {output}")


__all__ = ["parse_bits", "register"]
