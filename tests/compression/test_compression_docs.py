"""Every python block of docs/compression.md runs as written."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "compression.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_block_runs(code, tmp_path, monkeypatch):
    if "quantize" in code:
        pytest.importorskip("onnxruntime")
    pytest.importorskip("bitarray")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {"__name__": "__doc__"})


def test_doc_has_blocks():
    assert len(BLOCKS) >= 2
