"""Size limits of ``src/prunekit`` that keep every file and function readable top to bottom:
no file over 400 lines, no function (docstring included) over 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "prunekit"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def _files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in _files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert long == {}, f"split these files by concept (over {MAX_FILE_LINES} lines): {long}"


def test_no_function_over_80_lines():
    long = {}
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SRC)}:{node.lineno} {node.name}"] = n
    assert long == {}, f"split these functions (over {MAX_FUNCTION_LINES} lines): {long}"


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    node = ast.parse(f"def f():\n{body}\n").body[0]
    assert node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
