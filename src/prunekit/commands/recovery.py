"""Recovery commands: ``prunekit run recipe.yaml`` and ``prunekit sensitivity``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        recipe: Path = typer.Argument(..., help="YAML recipe (model, data, method, schedule...)"),
        resume: Optional[Path] = typer.Option(None, help="continue the run in this directory"),
        out: Optional[Path] = typer.Option(None, help="run directory (default runs/<recipe>)"),
        weights: Optional[Path] = typer.Option(None, help="trained dense weights (safetensors)"),
    ) -> None:
        """Prune and recover with a YAML recipe (works under torchrun: DDP, gloo/nccl)."""
        from prunekit.recover import ddp
        from prunekit.recover.checkpoint import atomic_write_bytes
        from prunekit.recover.cli_build import build_loaders, build_recipe_model
        from prunekit.recover.run import run
        from prunekit.recover.yaml_recipe import load_recipe

        try:
            r = load_recipe(recipe)
            ddp.init_from_env()
            model = build_recipe_model(r, weights).to(ddp.device_for_rank())
            train, val = build_loaders(r)
            run_dir = resume or out or Path("runs") / recipe.stem
            result = run(r, model, train, val, checkpoint_dir=run_dir, resume=resume is not None)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
        if ddp.rank() == 0:
            from safetensors.torch import save

            state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
            atomic_write_bytes(Path(run_dir) / "model.safetensors", save(state))
            typer.echo(json.dumps({"dense_metric": result.dense_metric,
                                   "final_metric": result.final_metric,
                                   "sparsity": result.sparsity, "run_dir": str(run_dir)}))
        ddp.barrier()
