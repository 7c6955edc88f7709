"""The product (code, docs, results page, file names) speaks of what it does, never of how it
was built: no work-item numbers, no work-package names, no "not merged", no who-ran-what."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = [
    r"\bissues? ?#?\d+\b", r"structural2", r"\bs2_", r"\bS[12]\b", r"not merged", r"when merged",
    r"\b(first|second|third|this|earlier|previous) session\b", r"\bwork (item|package)s?\b",
    r"\bhelper'?s? (jobs?|engineer|ran)\b", r"\bthe lead\b", r"\(lead\)",
]
TEXT = re.compile("|".join(PATTERNS), re.I)


def _product_files():
    yield ROOT / "README.md"
    yield ROOT / "CHANGELOG.md"
    for folder, pattern in (("src", "*.py"), ("docs", "*.md"), ("benchmarks", "*.py"),
                            ("benchmarks/results", "*.json"), ("tests", "*.py")):
        yield from (ROOT / folder).rglob(pattern)


def test_no_build_history_in_product_text():
    hits = []
    for path in _product_files():
        if path.name == "test_product_text.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TEXT.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not hits, "build history in product text:\n" + "\n".join(hits[:50])


def test_no_build_history_in_file_names():
    names = set()
    for folder in ("src", "tests", "docs", "benchmarks", "scripts"):
        for p in (ROOT / folder).rglob("*"):
            if "__pycache__" not in p.parts:
                names.add(str(p.relative_to(ROOT)))
    bad = sorted(n for n in names if any(TEXT.search(part.replace("_", " ") + " ")
                                         or part.startswith("s2_") for part in Path(n).parts))
    assert not bad, bad
