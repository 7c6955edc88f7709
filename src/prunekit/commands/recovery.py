"""Recovery commands: ``prunekit run recipe.yaml`` and ``prunekit sensitivity``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from prunekit.recover import ddp
from prunekit.io import atomic_write_bytes
from prunekit.recover.cli_build import build_loaders, build_recipe_model
from prunekit.recover.run import run_recipe
from prunekit.recover.yaml_recipe import load_recipe
from prunekit.recover.cli_build import build_datasets
from prunekit.recover.recipe import DataSpec
from prunekit.recover.sensitivity import sensitivity
from prunekit.recover.tasks import build_model
from prunekit.io import load_weights
from prunekit.io import load_model_spec
from prunekit.commands.errors import fail


def run_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe (model, data, method, schedule...)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run in this directory"),
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/<recipe>)"),
    weights: Optional[Path] = typer.Option(None, help="trained dense weights (.safetensors, or .pt/.pth state_dict)"),
) -> None:
    """Prune and recover with a YAML recipe (works under torchrun: DDP, gloo/nccl)."""

    try:
        r = load_recipe(recipe)
        ddp.init_from_env()
        model = build_recipe_model(r, weights).to(ddp.device_for_rank())
        train, val = build_loaders(r)
        run_dir = resume or out or Path("runs") / recipe.stem
        result = run_recipe(r, model, train, val, checkpoint_dir=run_dir, resume=resume is not None)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    if ddp.rank() == 0:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
        atomic_write_bytes(Path(run_dir) / "model.safetensors", save(state))
        typer.echo(json.dumps({"dense_metric": result.dense_metric,
                               "final_metric": result.final_metric,
                               "sparsity": result.sparsity, "run_dir": str(run_dir)}))
    ddp.barrier()


def sensitivity_cmd(
    model: str = typer.Argument(..., help="model spec or weights file (with --arch)"),
    data: str = typer.Option(..., help="digits | mnist1d | module:pkg.mod:factory"),
    arch: Optional[str] = typer.Option(None, help="architecture when MODEL is weights "
                                       "(prunekit:cnn2d, torchvision:NAME, module:...)"),
    ratios: str = typer.Option("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", help="ratios to try"),
    target: Optional[float] = typer.Option(None, help="global fraction of weights to "
                                           "prune: choose per-layer ratios for it"),
    criterion: str = typer.Option("l1", help="weight criterion"),
    limit: Optional[int] = typer.Option(None, help="first N validation samples only"),
    out: Path = typer.Option(Path("sensitivity"), help="output directory (JSON + PNG)"),
    trust: bool = typer.Option(False, help="allow pickled model files"),
) -> None:
    """Per-layer accuracy-vs-ratio curves; with --target, the per-layer ratios to use."""
    from torch.utils.data import DataLoader


    try:
        net = _load(model, arch, trust)
        _, val = build_datasets(DataSpec(data, limit, False))
        rs = [float(v) for v in ratios.split(",") if v.strip()]
        res = sensitivity(net, DataLoader(val, batch_size=256), ratios=rs,
                          criterion=criterion)
        if target is not None and not 0.0 <= target < 1.0:
            raise ValueError(f"--target must be in [0, 1), got {target}")
    except ValueError as e:
        fail(str(e))
    chosen, reached = res.choose_closest(target) if target is not None else (None, True)
    if not reached:  # the scan is written all the same, with the closest choice
        typer.echo(f"note: --target {target} is out of reach with ratios up to "
                   f"{res.ratios[-1]}; chose the most that can be removed "
                   f"({res.reachable():.6f} of the weights)", err=True)
    payload = dict(res.to_dict(), target=target, target_reached=reached, chosen=chosen,
                   removed=None if chosen is None else _removed(res, chosen),
                   predicted_drop=None if chosen is None else res.predicted_drop(chosen))
    atomic_write_bytes(out / "sensitivity.json", json.dumps(payload, indent=2).encode())
    res.plot(out / "sensitivity.png", chosen)
    typer.echo(json.dumps({"dense_metric": res.dense_metric, "chosen": chosen,
                           "target_reached": reached, "out": str(out)}))


def _removed(res, chosen: dict[str, float]) -> float:
    """Fraction of the scanned weights the chosen ratios remove."""
    total = sum(res.numel.values())
    return sum(r * res.numel[n] for n, r in chosen.items()) / total if total else 0.0


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("sensitivity")(sensitivity_cmd)


def _load(model: str, arch: Optional[str], trust: bool):
    if arch is None:
        if model.startswith("prunekit:"):
            return build_model(model)

        return load_model_spec(model, trust=trust)

    net = build_model(arch)
    try:
        net.load_state_dict(load_weights(model))
    except RuntimeError as e:
        raise ValueError(f"weights {model} do not match {arch}: {e}") from None
    return net
