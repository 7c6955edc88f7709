"""The ``prunekit`` command line. Strings are parsed here and nowhere deeper.

Each area adds its commands in ``prunekit/commands/<area>.py`` exposing ``register(app)``;
list each command with its module and one-line help in ``_COMMANDS`` (loaded when it runs).
"""

from __future__ import annotations

import importlib

import click
import typer
from typer.core import TyperGroup

from prunekit._version import __version__

# sub-command -> (module whose ``register(app)`` adds it, its one-line help). A command's
# module, and with it torch and the rest, is imported only when that command runs, so
# ``prunekit --help`` and ``prunekit version`` start in a fraction of a second. A contract test
# checks this table against what the modules register.
_COMMANDS: dict[str, tuple[str, str]] = {
    "stats": ("prunekit.commands.core", "Parameters (total/nonzero), MACs, size dense vs "
              "compressed, peak memory, per layer;\nfor a .pkc file, its size at every Deep "
              "Compression stage."),
    "demo": ("prunekit.commands.core", "Train a CNN on real digits, prune it several ways, "
             "fine-tune, measure, report."),
    "deploy": ("prunekit.commands.bench", "Measure pruned and dense in every runtime/setting; "
               "write the fastest artifact."),
    "bench": ("prunekit.commands.bench", "Time dense and pruned models side by side (same "
              "runtime, dtype, batch, threads)."),
    "analyze": ("prunekit.commands.bench", "Sweep methods × ratios, evaluate, time side by "
                "side, write report/index.html."),
    "prune-latency": ("prunekit.commands.bench", "Structured pruning until the measured latency "
                      "meets --target-latency (never slower)."),
    "run": ("prunekit.commands.recovery", "Prune and recover with a YAML recipe (works under "
            "torchrun: DDP, gloo/nccl)."),
    "sensitivity": ("prunekit.commands.recovery", "Per-layer accuracy-vs-ratio curves; with "
                    "--target, the per-layer ratios to use."),
    "prune-llm": ("prunekit.commands.llm", "One-shot prune a Hugging Face transformer and save "
                  "it (loads with from_pretrained)."),
    "eval-ppl": ("prunekit.commands.llm", "Perplexity of a causal LM on a text file (strided "
                 "windows)."),
    "eval-embed": ("prunekit.commands.llm", "Embedding fidelity: mean cosine dense vs pruned, "
                   "top-1 nearest-neighbour agreement."),
    "prune-onnx": ("prunekit.commands.onnx", "Prune an ONNX graph (through onnx2torch) and "
                   "verify it with ONNX Runtime."),
    "classic": ("prunekit.commands.classic", "Prune a fitted tree, forest, boosting model or "
                "SVM, choosing the amount on --val."),
    "recsys": ("prunekit.commands.recsys", "Train MF/NCF/DLRM on MovieLens-100k, prune "
               "embedding tables, write model + report."),
    "bench-generate": ("prunekit.commands.dynamic", "Decode tokens/s, dense vs dynamic, "
                       "alternating rounds in one process."),
    "compress": ("prunekit.commands.compression", "Prune, share weights (k-means), fine-tune "
                 "the centroids, Huffman-code: one .pkc file."),
    "prune": ("prunekit.commands.prune", "Prune a model: `weights` (masks), `structured` "
              "(channels removed) or `latency` (to a measured latency target)."),
}
_COMMAND_MODULES = tuple(dict.fromkeys(module for module, _ in _COMMANDS.values()))


def load_command(name: str) -> click.Command:
    """The real click command ``name`` (imports its module and lets it register)."""
    module, _ = _COMMANDS[name]
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    return typer.main.get_group(sub).commands[name]


class _LazyCommand(click.Command):
    """Stands for a sub-command in listings; running it loads and runs the real one."""

    def __init__(self, name: str) -> None:
        super().__init__(name, help=_COMMANDS[name][1])

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001
        return load_command(self.name).make_context(info_name, args, parent=parent, **extra)


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in _COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        return _LazyCommand(cmd_name) if cmd_name in _COMMANDS else None


app = typer.Typer(
    name="prunekit",
    help="Prune PyTorch models and measure what pruning really does to inference speed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_LazyGroup,
)

def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print prunekit's version and exit.")) -> None:
    """Prune PyTorch models and measure what pruning really does to inference speed."""


@app.command("version")
def version() -> None:
    """Print prunekit's version."""
    typer.echo(__version__)


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
