"""``prunekit stats model.pkc``: the size of a Deep Compression file at every stage."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from prunekit.compression import CompressedFileError, read_manifest
from prunekit.commands.errors import fail


def stage_rows(manifest: dict[str, Any]) -> list[tuple[str, float, float]]:
    """``(stage, bytes, ratio vs dense fp32)`` of a .pkc manifest, then the file itself."""
    names = {"dense": "dense fp32", "pruned": "pruned (relative indices + fp32 values)",
             "shared": "+ weight sharing (codebook indices)", "huffman": "+ Huffman"}
    rows = [(names[s], manifest["bytes"][s], manifest["ratio"][s]) for s in names]
    rows.append((".pkc file", manifest["file_bytes"], manifest["file_ratio"]))
    return rows


def print_pkc_stats(path: str, as_json: bool) -> None:
    """Print every stage's size of a ``.pkc`` file (whole model and per layer)."""
    try:
        m = read_manifest(path)
    except (CompressedFileError, FileNotFoundError) as exc:
        fail(str(exc))
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
