"""Every python block of docs/architecture.md runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_python_blocks_run(monkeypatch):
    from prunekit.handlers import HANDLERS

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    module = types.ModuleType("architecture_doc")  # the factory must be importable by name
    monkeypatch.setitem(sys.modules, "architecture_doc", module)
    before = set(HANDLERS.types())
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), module.__dict__)  # noqa: S102
    finally:
        for cls in set(HANDLERS.types()) - before:
            HANDLERS._table.pop(cls, None)
            HANDLERS._examples.pop(cls, None)
