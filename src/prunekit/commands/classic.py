"""``prunekit classic``: prune a fitted scikit-learn model stored with joblib.

A joblib file is a pickle: loading it runs code from the file, so the command refuses to
load one unless ``--trust`` says the file comes from a trusted source. Validation data is a
``.npz`` with arrays ``X`` and ``y`` (read without pickle). The output is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from prunekit.classic import ClassicConfig, prune
from prunekit.io import atomic_path
from prunekit.commands.errors import fail


def _load_val(path: Path, flag: str = "--val") -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            xk = next((k for k in ("X", "X_val", "x") if k in keys), None)
            yk = next((k for k in ("y", "y_val") if k in keys), None)
            if xk is None or yk is None:
                raise ValueError(f"{flag} {path} must hold arrays 'X' and 'y', found {sorted(keys)}")
            return data[xk], data[yk]
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {flag} {path}: {exc}") from None


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(b < 1 for b in sizes):
        raise ValueError(f"--batch-sizes must be comma-separated positive integers, got {text!r}")
    return sizes


def _load_model(path: Path, trust: bool):
    if not trust:
        raise ValueError(f"{path} is a joblib/pickle file, and loading it runs code from the "
                         "file; pass --trust if you trust its source")
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad input file
        raise ValueError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def classic(
        model: Path = typer.Argument(..., help="fitted scikit-learn model saved with joblib"),
        val: Path = typer.Option(..., "--val", help=".npz with validation arrays X and y"),
        max_drop: float = typer.Option(0.005, "--max-drop",
                                       help="allowed drop of validation accuracy (or R^2)"),
        output: Path = typer.Option(..., "-o", "--output", help="where to write the pruned model"),
        trust: bool = typer.Option(False, help="allow unpickling MODEL (joblib is pickle)"),
        train: Optional[Path] = typer.Option(
            None, "--train", help=".npz with the arrays X and y MODEL was fitted on (forests: "
            "out-of-bag scoring; gradient boosting: tree selection with --refine-boosting)"),
        refine_boosting: bool = typer.Option(
            False, "--refine-boosting", help="with --train: keep the boosting trees an L1 fit "
            "on leaf indicators weighs most, per class, and re-fit their leaf values"),
        shrink: Optional[float] = typer.Option(
            None, "--shrink", help="size target instead of a choice by validation: the most "
            "capable model at least this many times smaller (pickle bytes); --max-drop then "
            "only warns"),
        report: Optional[Path] = typer.Option(None, help="also write the report as JSON here"),
        measure: bool = typer.Option(True, help="time predict latency dense vs pruned"),
        batch_sizes: str = typer.Option("1,10000", help="batch sizes to time"),
        repeats: int = typer.Option(15, help="interleaved timing rounds per cell"),
    ) -> None:
        """Prune a fitted tree, forest, boosting model or SVM, choosing the amount on --val."""
        try:
            cfg = ClassicConfig(measure=measure, batch_sizes=_batch_sizes(batch_sizes),
                                repeats=repeats, refine_boosting=refine_boosting)
            X, y = _load_val(val)
            Xt, yt = _load_val(train, "--train") if train is not None else (None, None)
            est = _load_model(model, trust)
            small, rep = prune(est, X, y, max_drop=max_drop, X_train=Xt, y_train=yt, config=cfg,
                               shrink=shrink)
        except (ValueError, ImportError) as exc:
            fail(str(exc))
        import joblib

        with atomic_path(output) as tmp:
            joblib.dump(small, tmp)
        if report is not None:
            with atomic_path(report) as tmp:
                tmp.write_text(json.dumps(rep.to_dict(), indent=1), encoding="utf-8")
        typer.echo(rep.summary())
        typer.echo(f"wrote {output}")
