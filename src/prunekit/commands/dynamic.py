"""Dynamic-pruning commands: ``bench-generate`` (decode tokens/s, dense vs dynamic)."""

from __future__ import annotations

from typing import Optional

import contextlib

import torch
import typer

from prunekit.dynamic import disabled, layer_states, persist
from prunekit.dynamic.generate import compare_runs, decode_ms
from prunekit.llm.hfio import load_hf, parse_hf_spec
from prunekit.commands.errors import fail


def load_dynamic(spec: str, dtype: Optional[str]):
    """HF model directory, with the activation thresholds of its ``dynamic.json`` if present."""
    path = parse_hf_spec(spec)
    net, tok = load_hf(spec, dtype)
    if (path / persist.FILE).is_file() and not persist.layer_states(net):
        persist.load_extension(net, path)
    return net, tok


def bench_generate_cmd(
    model: str = typer.Argument(..., help="hf:./dir (dense) or a dynamic model directory"),
    dynamic: Optional[str] = typer.Argument(
        None, help="directory of the dynamic model (default: MODEL itself, timed with its "
        "thresholds on and off)"),
    batch: int = typer.Option(1, help="sequences decoded at once"),
    new_tokens: int = typer.Option(32, "--new-tokens", help="decode steps per sample"),
    prompt_len: int = typer.Option(32, "--prompt-len", help="prompt tokens (random ids)"),
    rounds: int = typer.Option(10, help="alternating dense/dynamic rounds"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    dtype: Optional[str] = typer.Option(None, help="float32 | float16 | bfloat16"),
    threads: Optional[int] = typer.Option(None, help="torch intra-op threads"),
) -> None:
    """Decode tokens/s, dense vs dynamic, alternating rounds in one process."""
    try:
        for name, v in (("--batch", batch), ("--new-tokens", new_tokens),
                        ("--prompt-len", prompt_len)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if threads:
            torch.set_num_threads(threads)
        dense, _ = load_dynamic(model, dtype)
        dyn = load_dynamic(dynamic, dtype)[0] if dynamic else dense
        if not layer_states(dyn):
            raise ValueError(f"{dynamic or model} carries no activation thresholds "
                             "(no dynamic.json; make one with prune-llm --dynamic)")
        dense, dyn = dense.to(device), dyn.to(device)
        vocab = int(dense.config.vocab_size)
        gen = torch.Generator().manual_seed(0)
        prompt = torch.randint(0, vocab, (batch, prompt_len), generator=gen).to(device)
        ctx = disabled if dyn is dense else (lambda m: contextlib.nullcontext())

        def base() -> float:
            with ctx(dense):
                return decode_ms(dense, prompt, new_tokens)

        res = compare_runs(base, lambda: decode_ms(dyn, prompt, new_tokens), rounds)
    except ValueError as e:
        fail(str(e))
    tps = batch * 1e3
    typer.echo(f"batch {batch}, {new_tokens} new tokens, {rounds} rounds on {device}\n"
               f"dense   {tps / res.base_ms:8.1f} tok/s\n"
               f"dynamic {tps / res.cand_ms:8.1f} tok/s\n"
               f"speedup {res.speedup:.2f}x (95% CI {res.low:.2f}-{res.high:.2f})"
               + ("" if res.reliable else "  [unreliable: wide spread]"))


def register(app: typer.Typer) -> None:
    app.command("bench-generate")(bench_generate_cmd)
