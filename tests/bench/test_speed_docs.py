"""Every python block of docs/speed.md runs as written (in order, sharing one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "speed.md"


def test_speed_page_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 3
    ns: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), ns)  # noqa: S102
    assert "not measurable on this machine now" in ns["summarize"](ns["data"])[0]
