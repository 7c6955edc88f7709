"""Generate the results page (docs/benchmarks.md) from benchmarks/results/*.json.

Only files in the results schema (``"schema": 1``, see benchmarks/results_schema.py) are read;
each becomes one section: its tables, then the command, machine, date, load and caveats.
Sections are grouped by the area prefix of their name (``speed_*``, ``llm_*``, ...).

    python benchmarks/make_results_page.py            # writes docs/benchmarks.md
    python benchmarks/make_results_page.py --check    # exit 1 if the page is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"

AREAS = [  # (name prefix, heading), in the order of the pipeline
    ("demo", "Demo"), ("weights", "Weight pruning"), ("structural", "Structural engine"),
    ("fuzz", "Structural engine"), ("speed", "Speed analysis"), ("recovery", "Recovery"),
    ("llm", "LLM one-shot pruning"), ("dynamic", "Dynamic pruning"),
    ("compression", "Deep Compression and int8"), ("recsys", "Recommender embeddings"),
    ("classic", "Classical models"), ("keras", "Keras 3"), ("onnx", "ONNX graphs"),
]

INTRO = """# Results

Every table below is generated from `benchmarks/results/*.json` by
`python benchmarks/make_results_page.py`; each names the command that produced it, the machine,
the date, the load on the machine while it ran, and the spread of its figures. Speed figures
hold for the machine, runtime, dtype, batch and thread count stated with them. A figure
labelled "speedup" is measured; a MACs ratio is the prediction it is compared with.

GPU figures: none yet. `benchmarks/gpu_speed.py`, `benchmarks/llm_scale.py --device cuda` and
`pytest -m gpu` are the commands for a CUDA machine; every table below is from a CPU.
"""


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(t: dict) -> list[str]:
    out = [f"**{t['title']}**", ""] if t.get("title") else []
    out.append("| " + " | ".join(_cell(c) for c in t["columns"]) + " |")
    out.append("|" + "---|" * len(t["columns"]))
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in t["rows"]]
    if t.get("notes"):
        out += ["", t["notes"]]
    return out + [""]


def _section(doc: dict) -> list[str]:
    out = [f"### {doc['title']}", ""]
    for t in doc["tables"]:
        out += _table(t)
    out.append(f"- Command: `{doc['command']}`")
    out.append(f"- Machine: {doc['machine']}; {doc['date']}; {doc.get('load', 'load not recorded')}")
    out += [f"- {c}" for c in doc.get("caveats", [])]
    return out + [""]


def _area(name: str) -> int:
    for i, (prefix, _) in enumerate(AREAS):
        if name.startswith(prefix):
            return i
    return len(AREAS)


def load_results() -> list[dict]:
    docs = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}: not valid JSON ({e})") from None
        if isinstance(doc, dict) and doc.get("schema") == 1:
            docs.append(doc)
    return sorted(docs, key=lambda d: (_area(d["name"]), d["name"]))


def render(docs: list[dict]) -> str:
    lines = [INTRO]
    heading = None
    for doc in docs:
        i = _area(doc["name"])
        h = AREAS[i][1] if i < len(AREAS) else "Other"
        if h != heading:
            lines += [f"## {h}", ""]
            heading = h
        lines += _section(doc)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if docs/benchmarks.md is stale")
    args = ap.parse_args()
    text = render(load_results())
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print("docs/benchmarks.md is out of date: run python benchmarks/make_results_page.py")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(load_results())} result files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
