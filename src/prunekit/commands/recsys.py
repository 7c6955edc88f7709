"""``prunekit recsys``: train a recommender on real data, prune its embedding tables, fine-tune,
and write the pruned model, a serving export and a JSON report.

Strings are parsed here. Every check runs before anything is written; the output directory
appears only once complete (temp dir + rename).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import typer

from prunekit.recsys.data import load_movielens100k
from prunekit.recsys.entries import ENTRY_METHODS
from prunekit.recsys.export import export_tables
from prunekit.recsys.metrics import evaluate_ranking, rmse
from prunekit.recsys.models import DLRM, MF, NCF
from prunekit.recsys.prune import prune_embeddings
from prunekit.recsys.rows import ROW_CRITERIA
from prunekit.recsys.train import TrainConfig, train_explicit, train_implicit
from prunekit.io import atomic_dir
from prunekit.serialize import save
from prunekit.commands.errors import fail

PRUNE_KEYS = ("rows", "dims", "entries", "mixed", "shared")
MODELS = ("mf", "ncf", "dlrm")


def parse_prune(text: str) -> dict[str, float]:
    """``"rows=0.5,dims=0.5"`` -> ``{"rows": 0.5, "dims": 0.5}``; ValueError naming --prune."""
    out: dict[str, float] = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        if not sep or key not in PRUNE_KEYS:
            raise ValueError(f"--prune: expected KEY=RATIO with KEY in {PRUNE_KEYS}, got {item!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"--prune: {key} must be a number, got {value!r}") from None
        if not 0.0 <= out[key] < 1.0:
            raise ValueError(f"--prune: {key} must be a ratio in [0, 1), got {value}")
    if not out:
        raise ValueError("--prune: give at least one KEY=RATIO")
    return out


def _build(name: str, train, dim: int):
    if name == "mf":
        return MF(train.n_users, train.n_items, dim)
    if name == "ncf":
        return NCF(train.n_users, train.n_items, dim)
    model = DLRM([train.n_users, train.n_items], dim=dim)
    model.set_dense_counts(train.users, train.items)
    return model


def _quality(model, test, train, feedback: str) -> dict[str, float]:
    if feedback == "explicit":
        return {"rmse": rmse(model, test)}
    return evaluate_ranking(model, test, k=10, train=train)


def _run(opts: dict, tmp: Path) -> dict:
    feedback = opts["feedback"]
    train, test = load_movielens100k("leave-one-out" if feedback == "implicit" else "random",
                                     seed=opts["seed"], path=opts["data_path"])
    torch.manual_seed(opts["seed"])
    model = _build(opts["model"], train, opts["dim"])
    fit = train_implicit if feedback == "implicit" else train_explicit
    fit(model, train, TrainConfig(epochs=opts["epochs"], lr=opts["lr"], seed=opts["seed"]))
    dense = _quality(model, test, train, feedback)
    teacher = copy.deepcopy(model) if opts["distill"] else None
    rep = prune_embeddings(model, train, by=opts["by"], method=opts["method"],
                           feedback=feedback, seed=opts["seed"], alpha=opts["alpha"],
                           transform=opts["transform"], **opts["prune"])
    oneshot = _quality(model, test, train, feedback)
    if opts["finetune_epochs"]:
        cfg = TrainConfig(epochs=opts["finetune_epochs"], lr=opts["lr"], seed=opts["seed"] + 1,
                          distill=opts["distill"])
        if teacher is not None:
            train_implicit(model, train, cfg, teacher=teacher)
        else:
            fit(model, train, cfg)
    pruned = _quality(model, test, train, feedback)
    save(model, tmp / "model")
    export_tables(model, tmp / "serving")
    return {"model": opts["model"], "data": opts["data"], "feedback": feedback,
            "prune": opts["prune"], "embedding_params_before": rep.params_before,
            "embedding_params_after": rep.params_after, "embedding_bytes_before":
            rep.bytes_before, "embedding_bytes_after": rep.bytes_after, "removed": rep.removed,
            "removed_params": rep.removed_params,
            "dense": dense, "pruned_oneshot": oneshot, "pruned_finetuned": pruned,
            "tables": [t.__dict__ for t in rep.tables]}


def recsys_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="output directory"),
    model: str = typer.Option("ncf", help="mf | ncf | dlrm"),
    data: str = typer.Option("movielens100k", help="movielens100k or a User,Item,Rating,"
                             "Timestamp csv"),
    prune: str = typer.Option("rows=0.5", help="rows=R,dims=R,entries=R,mixed=R,shared=R "
                              "(shared: product-quantised tables, R of the bytes removed)"),
    by: str = typer.Option("frequency", help="row criterion: frequency | norm | gradient"),
    method: str = typer.Option("pep", help="entries method: pep | magnitude"),
    feedback: str = typer.Option("implicit", help="implicit (HR/NDCG) | explicit (RMSE)"),
    dim: int = typer.Option(32, help="embedding width"),
    epochs: int = typer.Option(10, help="dense training epochs"),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", help="after pruning"),
    lr: float = typer.Option(2e-3, help="Adam learning rate"),
    seed: int = typer.Option(0, help="seed"),
    alpha: float = typer.Option(0.5, help="mixed: popularity exponent of the widths"),
    transform: str = typer.Option("", help="shared: 'svd' = transform coding (SVD basis, "
                                  "code bits allocated per column)"),
    distill: float = typer.Option(0.0, help="fine-tuning: weight of distillation from the "
                                  "dense model (implicit feedback)"),
) -> None:
    """Train MF/NCF/DLRM on MovieLens-100k, prune embedding tables, write model + report."""
    try:
        opts = dict(model=model.lower(), data=data, prune=parse_prune(prune), by=by,
                    method=method, feedback=feedback, dim=dim, epochs=epochs,
                    finetune_epochs=finetune_epochs, lr=lr, seed=seed, alpha=alpha,
                    distill=distill, transform=transform or None)
        if transform and (transform != "svd" or "shared" not in opts["prune"]):
            raise ValueError(f"--transform: only 'svd', with --prune shared=R, got {transform!r}")
        if opts["model"] not in MODELS:
            raise ValueError(f"--model must be one of {MODELS}, got {model!r}")
        if by not in ROW_CRITERIA:
            raise ValueError(f"--by must be one of {ROW_CRITERIA.names()}, got {by!r}")
        if method not in ENTRY_METHODS:
            raise ValueError(f"--method must be one of {ENTRY_METHODS.names()}, got {method!r}")
        if feedback not in ("implicit", "explicit"):
            raise ValueError(f"--feedback must be implicit or explicit, got {feedback!r}")
        if not 0.0 <= distill <= 1.0 or (distill and feedback == "explicit"):
            raise ValueError(f"--distill must be in [0, 1] (implicit feedback only), got {distill}")
        if alpha < 0:
            raise ValueError(f"--alpha must be >= 0, got {alpha}")
        if min(epochs, finetune_epochs) < 0 or dim < 1:
            raise ValueError("--epochs/--finetune-epochs must be >= 0 and --dim >= 1")
        opts["data_path"] = None if data == "movielens100k" else Path(data)
        if output.exists() and any(output.iterdir()):
            raise ValueError(f"-o: {output} exists and is not empty")
        with atomic_dir(output) as tmp:
            result = _run(opts, tmp)
            (tmp / "report.json").write_text(json.dumps(result, indent=2))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(json.dumps({k: result[k] for k in ("removed", "dense", "pruned_finetuned")}))


def register(app: typer.Typer) -> None:
    app.command("recsys")(recsys_cmd)
