"""The ``prunekit`` command line. Strings are parsed here and nowhere deeper.

Each area adds its commands in ``prunekit/commands/<area>.py`` exposing ``register(app)``;
list the module in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib

import typer

from prunekit._version import __version__

app = typer.Typer(
    name="prunekit",
    help="Prune PyTorch models and measure what pruning really does to inference speed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print prunekit's version and exit.")) -> None:
    """Prune PyTorch models and measure what pruning really does to inference speed."""


_COMMAND_MODULES = (
    "prunekit.commands.core",
    "prunekit.commands.bench",
    "prunekit.commands.recovery",
    "prunekit.commands.llm",
    "prunekit.commands.onnx",
    "prunekit.commands.classic",
    "prunekit.commands.recsys",
    "prunekit.commands.dynamic",
    "prunekit.commands.compression",
)


def _register() -> None:
    for mod in _COMMAND_MODULES:
        importlib.import_module(mod).register(app)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
