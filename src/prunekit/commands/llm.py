"""LLM commands: ``prune-llm`` (one-shot / structured / layer drop) and ``eval-ppl``.

Strings are parsed here; every check that can fail runs before the output is written, and the
output directory appears only once complete (temp dir + rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


def _calibration(tok, calib: Optional[Path], nsamples: int, seqlen: int, seed: int):
    from prunekit.llm.calib import calibration_samples

    if calib is None:
        raise ValueError("--calib TEXT_FILE is required by this method")
    if tok is None:
        raise ValueError("the model directory has no tokenizer; cannot tokenize --calib")
    return calibration_samples(calib, tok, nsamples=nsamples, seqlen=seqlen, seed=seed)


def _structured_or_drop(model, tok, opts: dict) -> str:
    """Layer removal / heads+MLP structured pruning (see :mod:`prunekit.llm.structured`)."""
    from prunekit.llm import structured

    samples = _calibration(tok, opts["calib"], opts["nsamples"], opts["seqlen"], opts["seed"])
    if opts["drop_layers"]:
        dropped = structured.drop_blocks(model, samples, opts["drop_layers"], opts["criterion"])
        return f"dropped blocks {dropped} by {opts['criterion']}"
    rep = structured.prune_heads_mlp(model, samples, heads=opts["heads"], mlp=opts["mlp"],
                                     criterion=opts["criterion"])
    return str(rep)


def register(app: typer.Typer) -> None:
    @app.command("prune-llm")
    def prune_llm_cmd(
        model: str = typer.Argument(..., help="hf:./dir (a Hugging Face model directory)"),
        output: Path = typer.Option(..., "-o", "--output", help="output directory"),
        method: str = typer.Option("wanda", help="magnitude | wanda | sparsegpt"),
        sparsity: float = typer.Option(0.5, help="unstructured sparsity per layer"),
        pattern: Optional[str] = typer.Option(None, help="N:M pattern, e.g. 2:4 or 4:8"),
        calib: Optional[Path] = typer.Option(None, help="calibration text file"),
        nsamples: int = typer.Option(128, help="calibration windows"),
        seqlen: int = typer.Option(512, help="tokens per calibration window"),
        seed: int = typer.Option(0, help="seed of the calibration windows"),
        blocksize: int = typer.Option(128, help="SparseGPT lazy-update block"),
        percdamp: float = typer.Option(0.01, help="SparseGPT dampening"),
        owl: bool = typer.Option(False, help="outlier-weighted non-uniform sparsity (OWL)"),
        drop_layers: int = typer.Option(0, "--drop-layers", help="remove this many blocks"),
        structured_: bool = typer.Option(False, "--structured", help="remove heads / MLP channels"),
        heads: float = typer.Option(0.0, help="--structured: fraction of attention heads removed"),
        mlp: float = typer.Option(0.0, help="--structured: fraction of MLP channels removed"),
        criterion: str = typer.Option("block_influence", help="ranking for --drop-layers/--structured"),
        device: Optional[str] = typer.Option(None, help="cpu | cuda (default: cuda if available)"),
        dtype: Optional[str] = typer.Option(None, help="load dtype: float32 | float16 | bfloat16"),
        force: bool = typer.Option(False, help="replace an existing output directory"),
    ) -> None:
        """One-shot prune a Hugging Face transformer and save it (loads with from_pretrained)."""
        from prunekit.llm.hfio import check_output_dir, load_hf, save_hf_atomic
        from prunekit.llm.oneshot import OneShotConfig, prune_llm

        try:
            check_output_dir(output, force)
            structural = bool(drop_layers) or structured_
            cfg = None if structural else OneShotConfig(
                method=method, sparsity=sparsity, pattern=pattern, blocksize=blocksize,
                percdamp=percdamp, owl=owl, device=device)
            if structured_ and not (heads or mlp):
                raise ValueError("--structured needs --heads and/or --mlp fractions")
            net, tok = load_hf(model, dtype)
            if structural:
                opts = dict(calib=calib, nsamples=nsamples, seqlen=seqlen, seed=seed,
                            drop_layers=drop_layers, heads=heads, mlp=mlp, criterion=criterion)
                summary = _structured_or_drop(net, tok, opts)
            else:
                needs = method != "magnitude" or owl
                samples = _calibration(tok, calib, nsamples, seqlen, seed) if needs else None
                rep = prune_llm(net, samples, cfg)
                summary = f"{method}: mean layer sparsity {rep.overall_sparsity:.4f}, " \
                          f"{sum(rep.block_seconds):.1f}s over {len(rep.block_seconds)} blocks"
            save_hf_atomic(net, tok, output, overwrite=force)
        except ValueError as e:
            _fail(str(e))
        typer.echo(f"{summary}\nsaved {output}")

    @app.command("eval-ppl")
    def eval_ppl_cmd(
        model: str = typer.Argument(..., help="hf:./dir or ./dir of a causal LM"),
        text: Path = typer.Option(..., help="evaluation text file"),
        seqlen: int = typer.Option(512, help="window length"),
        stride: Optional[int] = typer.Option(None, help="window stride (default: seqlen)"),
        max_tokens: Optional[int] = typer.Option(None, help="evaluate only the first N tokens"),
        device: Optional[str] = typer.Option(None, help="cpu | cuda"),
    ) -> None:
        """Perplexity of a causal LM on a text file (strided windows)."""
        import torch

        from prunekit.llm.calib import encode, read_text
        from prunekit.llm.eval import perplexity
        from prunekit.llm.hfio import load_hf

        try:
            if not text.is_file():
                raise ValueError(f"--text {text} is not a file")
            net, tok = load_hf(model)
            if tok is None:
                raise ValueError("the model directory has no tokenizer")
            dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
            ids = encode(tok, read_text(text))[:max_tokens]
            ppl = perplexity(net.to(dev), ids, seqlen=seqlen, stride=stride)
        except ValueError as e:
            _fail(str(e))
        typer.echo(f"perplexity {ppl:.4f} ({ids.numel()} tokens, seqlen {seqlen})")
