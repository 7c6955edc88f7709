"""Core commands: stats, prune, demo (filled in by the foundation)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print prunekit's version."""
        import prunekit

        typer.echo(prunekit.__version__)
