"""Every python block of docs/dynamic.md runs as written."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "dynamic.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_page_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_docs_block_runs(i):
    exec(compile(BLOCKS[i], f"{PAGE.name}[{i}]", "exec"), {"__name__": "__docs__"})
