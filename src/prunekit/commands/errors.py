"""The one way a command reports a user error: one line on stderr, then exit code 2."""

from __future__ import annotations

from typing import NoReturn

import typer


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print ``error: msg`` on stderr and exit with ``code`` (2: a user error)."""
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=code)
