import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "recsys.md"


@pytest.mark.slow
def test_docs_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("importlib.util")
    import importlib.util

    if importlib.util.find_spec("neighbors") is None:
        pytest.skip("neighbors (MovieLens-100k) not installed")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block.replace("/tmp/", f"{tmp_path}/"), str(DOC), "exec"), {})
