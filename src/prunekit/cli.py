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
    "prunekit.commands.prune",
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


_USER_ERRORS = (ValueError, OSError)  # bad input, missing/unwritable paths
_USER_ERROR_NAMES = ("PruneError",)  # raised by the engine; named to keep the import lazy


def main() -> None:
    """Run the CLI; a user error is one line on stderr and exit code 2, never a traceback."""
    import sys

    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        raise SystemExit(1) from None
    except typer.TyperException as exc:  # usage errors: bad/missing option, bad value
        ctx = getattr(exc, "ctx", None)
        shown = ctx is not None and not getattr(ctx.command, "hidden", False)
        hint = f" (see '{ctx.command_path} --help')" if shown else ""
        text = _first_line(exc.format_message() if hasattr(exc, "format_message") else str(exc))
        if text:  # an empty message: the help was printed (no arguments given)
            print(f"Error: {text}{hint}", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    except Exception as exc:  # noqa: BLE001 - classified below
        if not isinstance(exc, _USER_ERRORS) and type(exc).__name__ not in _USER_ERROR_NAMES:
            raise
        print(f"Error: {_first_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


if __name__ == "__main__":
    main()
