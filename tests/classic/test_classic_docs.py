"""Every python block of docs/classic.md runs as written."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "classic.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_page_has_examples():
    assert len(BLOCKS) >= 2


def test_python_blocks_run():
    pytest.importorskip("skl2onnx")
    namespace: dict = {}
    for block in BLOCKS:  # later blocks may use names of earlier ones, as a reader would
        exec(compile(block, str(DOC), "exec"), namespace)
