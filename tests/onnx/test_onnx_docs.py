"""Every python block of docs/onnx.md runs as written."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"


@pytest.mark.slow
def test_onnx_doc_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("onnx2torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "__doc__"})
    assert (tmp_path / "net-pruned.onnx").exists()
