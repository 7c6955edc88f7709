"""Every ```python block of README.md and docs/*.md runs as written.

A page's blocks run in order in one namespace (a later block may use what an earlier one made),
in a fresh working directory. A page whose text holds ``<!-- docs-test: slow -->`` runs in the
full tier only.
"""

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = {"benchmarks.md"}  # written by benchmarks/make_results_page.py; no code blocks
PAGES = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED)


def _blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)


def _params():
    for page in PAGES:
        marks = [pytest.mark.slow] if "<!-- docs-test: slow -->" in page.read_text(encoding="utf-8") else []
        yield pytest.param(page, id=str(page.relative_to(ROOT)), marks=marks)


@pytest.mark.parametrize("page", list(_params()))
def test_page_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = _blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the page runs as an importable module, so `module:__docs__:factory` specs resolve
    page_module = types.ModuleType("__docs__")
    monkeypatch.setitem(sys.modules, "__docs__", page_module)
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page.name}[block {i + 1}]", "exec"), page_module.__dict__)


def test_every_page_is_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if p.name not in nav]
    assert not missing, f"pages not in mkdocs.yml nav: {missing}"
