"""Every python block of docs/keras.md runs as written."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "keras.md"


@pytest.mark.slow
def test_keras_doc_python_blocks_run(pkk, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "__doc__"})
    assert (tmp_path / "digits-sparse.keras").exists() and (tmp_path / "smaller.keras").exists()
