"""The CLI starts without importing torch: ``--help`` and ``version`` answer from a table of
sub-commands, and a sub-command's module is imported only when it runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from prunekit import cli

SRC = Path(__file__).resolve().parents[2] / "src"


def _registered() -> dict[str, tuple[str, str]]:
    found = {}
    for module in cli._COMMAND_MODULES:
        sub = typer.Typer()
        importlib.import_module(module).register(sub)
        for name, cmd in typer.main.get_group(sub).commands.items():
            if not cmd.hidden:
                found[name] = (module, (cmd.help or "").split("\n\n")[0].strip())
    return found


def test_command_table_matches_what_modules_register():
    assert _registered() == cli._COMMANDS


@pytest.mark.parametrize("argv", [["version"], ["--help"], ["--version"]])
def test_start_imports_no_torch(argv):
    code = ("import sys\nfrom prunekit.cli import main\nsys.argv = ['prunekit', *%r]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n" % (argv,))
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()
