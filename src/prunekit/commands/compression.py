"""Deep Compression commands: ``compress`` (prune + share + fine-tune + Huffman -> .pkc) and
the ``.pkc`` view used by ``prunekit stats model.pkc``.

Strings are parsed here; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from prunekit.commands.core import MODEL_HELP, load_cli_model

_FAMILIES = {"conv": ("Conv1d", "Conv2d", "Conv3d"), "fc": ("Linear",), "linear": ("Linear",)}


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


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


def stage_rows(manifest: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(stage, bytes, ratio vs dense fp32)`` of a .pkc manifest, then the file itself."""
    names = {"dense": "dense fp32", "pruned": "pruned (relative indices + fp32 values)",
             "shared": "+ weight sharing (codebook indices)", "huffman": "+ Huffman"}
    rows = [(names[s], manifest["bytes"][s], manifest["ratio"][s]) for s in names]
    rows.append((".pkc file", manifest["file_bytes"], manifest["file_ratio"]))
    return rows


def print_pkc_stats(path: str, as_json: bool) -> None:
    """Print every stage's size of a ``.pkc`` file (whole model and per layer)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from prunekit.compression import CompressedFileError, read_manifest

    try:
        m = read_manifest(path)
    except (CompressedFileError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({k: v for k, v in m.items() if k != "tensors"} | {
            "layers": [{"key": e["key"], "kind": e["kind"], "bits": e.get("bits")}
                       for e in m["tensors"]]}, indent=2))
        return
    t = Table(title=f"{path}: size by Deep Compression stage (.pkc version {m['version']})")
    for col in ("stage", "bytes", "ratio vs dense"):
        t.add_column(col)
    for name, size, ratio in stage_rows(m):
        t.add_row(name, f"{size:,.0f}", f"{ratio:.1f}x")
    per = Table(title="per layer (bytes)")
    for col in ("tensor", "kind", "kept", "dense", "pruned", "shared", "huffman"):
        per.add_column(col)
    for e in m["tensors"]:
        if e["kind"] != "raw":
            b = e["bits"]
            per.add_row(e["key"], e["kind"], str(e["n_kept"]),
                        *(f"{b[s] / 8:,.0f}" for s in ("dense", "pruned", "shared", "huffman")))
    Console().print(t)
    Console().print(per)


def _finetune(model, data: str, epochs: int, lr: float) -> float:
    import torch
    from torch.utils.data import DataLoader

    from prunekit.recover.finetune import default_accuracy, finetune
    from prunekit.recover.recipe import Finetune
    from prunekit.recover.tasks import load_task

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
        from prunekit.compression import compress as write_pkc
        from prunekit.compression import share_weights
        from prunekit.weights import prune_weights

        if finetune_epochs and not data:
            _fail("--finetune-epochs needs --data (digits or mnist1d)")
        try:
            bits_rule = parse_bits(bits)
            m = load_cli_model(model, arch, trust)
            if prune:
                prune_weights(m, prune, scope=scope)
            share_weights(m, bits=bits_rule, init=init)
            acc = _finetune(m, data, finetune_epochs, lr) if finetune_epochs else None
            info = write_pkc(m, output)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        for name, size, ratio in stage_rows(info):
            typer.echo(f"{name:45s} {size:>14,.0f} B  {ratio:6.1f}x")
        if acc is not None:
            typer.echo(f"accuracy after fine-tuning on {data}: {acc:.2f}%")
        typer.echo(f"wrote {output}")


__all__ = ["parse_bits", "print_pkc_stats", "register", "stage_rows"]
