"""LLM commands: ``prune-llm`` (one-shot / structured / layer drop) and ``eval-ppl``.

Strings are parsed here; every check that can fail runs before the output is written, and the
output directory appears only once complete (temp dir + rename).
"""

from __future__ import annotations

import json

from pathlib import Path
from typing import Optional

import typer

from prunekit.llm.calib import calibration_samples
from prunekit.llm import structured
from prunekit.llm.hfio import check_output_dir, load_hf, needs_prunekit_loader, save_hf_atomic
from prunekit.llm.oneshot import OneShotConfig, prune_llm
from prunekit.llm.calib import encode, read_text
from prunekit.llm.eval import perplexity
from prunekit.llm.eval import embedding_fidelity, sentence_embeddings
from prunekit.dynamic import sparsify_activations
from prunekit.commands.errors import fail


def _calibration(tok, calib: Optional[Path], nsamples: int, seqlen: int, seed: int):
    if calib is None:
        raise ValueError("--calib TEXT_FILE is required by this method")
    if tok is None:
        raise ValueError("the model directory has no tokenizer; cannot tokenize --calib")
    return calibration_samples(calib, tok, nsamples=nsamples, seqlen=seqlen, seed=seed)


def _structured_or_drop(model, tok, opts: dict) -> str:
    """Layer removal / heads+MLP structured pruning (see :mod:`prunekit.llm.structured`)."""

    samples = _calibration(tok, opts["calib"], opts["nsamples"], opts["seqlen"], opts["seed"])
    if opts["drop_layers"]:
        crit = opts["criterion"] or "block_influence"
        dropped = structured.drop_blocks(model, samples, opts["drop_layers"], crit)
        return f"dropped blocks {dropped} by {crit}"
    rep = structured.prune_heads_mlp(model, samples, heads=opts["heads"], mlp=opts["mlp"],
                                     criterion=opts["criterion"] or "l2")
    return str(rep)


def _dynamic(net, tok, sparsity: float, calib, nsamples: int, seqlen: int, seed: int) -> str:
    """Activation sparsity (TEAL) calibrated on the same windows; thresholds saved beside."""
    samples = _calibration(tok, calib, nsamples, seqlen, seed)
    rep = sparsify_activations(net, samples, sparsity)
    return rep.summary()


def prune_llm_cmd(
    model: str = typer.Argument(..., help="hf:./dir (a Hugging Face model directory)"),
    output: Path = typer.Option(..., "-o", "--output", help="output directory"),
    method: str = typer.Option("wanda", help="magnitude | wanda | sparsegpt | none"),
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
    criterion: Optional[str] = typer.Option(
        None, help="--drop-layers: block_influence (default); --structured: l2 (default), l1, "
        "taylor, activation (--mlp only: heads have no activation statistics)"),
    device: Optional[str] = typer.Option(None, help="cpu | cuda (default: cuda if available)"),
    dtype: Optional[str] = typer.Option(None, help="load dtype: float32 | float16 | bfloat16"),
    force: bool = typer.Option(False, help="replace an existing output directory"),
    dynamic: Optional[float] = typer.Option(
        None, "--dynamic", help="activation sparsity in [0, 1) calibrated on --calib, after "
        "any weight pruning (--method none: activation sparsity alone)"),
) -> None:
    """One-shot prune a Hugging Face transformer and save it (loads with from_pretrained)."""

    try:
        check_output_dir(output, force)
        structural = bool(drop_layers) or structured_
        if method == "none" and dynamic is None:
            raise ValueError("--method none needs --dynamic")
        if dynamic is not None and not 0.0 <= dynamic < 1.0:
            raise ValueError(f"--dynamic must be in [0, 1), got {dynamic}")
        weights = method != "none"
        cfg = None if structural or not weights else OneShotConfig(
            method=method, sparsity=sparsity, pattern=pattern, blocksize=blocksize,
            percdamp=percdamp, owl=owl, device=device)
        if structured_ and not (heads or mlp):
            raise ValueError("--structured needs --heads and/or --mlp fractions")
        net, tok = load_hf(model, dtype)
        rep = None
        if structural:
            opts = dict(calib=calib, nsamples=nsamples, seqlen=seqlen, seed=seed,
                        drop_layers=drop_layers, heads=heads, mlp=mlp, criterion=criterion)
            summary = _structured_or_drop(net, tok, opts)
        elif not weights:
            summary = "no weight pruning"
        else:
            needs = method != "magnitude" or owl
            samples = _calibration(tok, calib, nsamples, seqlen, seed) if needs else None
            rep = prune_llm(net, samples, cfg)
            summary = f"{method}: mean layer sparsity {rep.overall_sparsity:.4f}, " \
                      f"{sum(rep.block_seconds):.1f}s over {len(rep.block_seconds)} blocks " \
                      "(per-layer reasons: prune_report.json)"
        if dynamic is not None:
            summary += "\n" + _dynamic(net, tok, dynamic, calib, nsamples, seqlen, seed)
        save_hf_atomic(net, tok, output, overwrite=force,
                       structured=structural or dynamic is not None,
                       extra={"prune_report.json": json.dumps(rep.to_dict(), indent=1)}
                       if rep is not None else None)
        if structural and needs_prunekit_loader(output):
            summary += "\n(per-layer sizes not expressible in the HF config: load with prunekit.load)"
    except ValueError as e:
        fail(str(e))
    typer.echo(f"{summary}\nsaved {output}")


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
        fail(str(e))
    typer.echo(f"perplexity {ppl:.4f} ({ids.numel()} tokens, seqlen {seqlen})")


def eval_embed_cmd(
    dense: str = typer.Argument(..., help="hf:./dir of the dense encoder"),
    pruned: str = typer.Argument(..., help="hf:./dir of the pruned encoder"),
    text: Path = typer.Option(..., help="text file; paragraphs (blank-line separated) are the sentences"),
    max_sentences: int = typer.Option(500, help="use at most this many paragraphs"),
    max_length: int = typer.Option(128, help="tokens per sentence"),
) -> None:
    """Embedding fidelity: mean cosine dense vs pruned, top-1 nearest-neighbour agreement."""

    try:
        if not text.is_file():
            raise ValueError(f"--text {text} is not a file")
        paras = [p.strip() for p in text.read_text(errors="replace").split("\n\n") if p.strip()]
        paras = paras[:max_sentences]
        if len(paras) < 2:
            raise ValueError("--text needs at least 2 paragraphs (separated by blank lines)")
        embs = []
        for spec in (dense, pruned):
            net, tok = load_hf(spec)
            if tok is None:
                raise ValueError(f"{spec} has no tokenizer")
            embs.append(sentence_embeddings(net, tok, paras, max_length=max_length))
        fid = embedding_fidelity(*embs)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"sentences {len(paras)}  mean cosine {fid.mean_cosine:.4f}  "
               f"top-1 agreement {fid.top1_agreement:.3f}")


def register(app: typer.Typer) -> None:
    app.command("prune-llm")(prune_llm_cmd)
    app.command("eval-ppl")(eval_ppl_cmd)
    app.command("eval-embed")(eval_embed_cmd)
