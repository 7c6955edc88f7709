"""Write a benchmark's tables in the one format the results page is generated from.

Every benchmark writes ``benchmarks/results/<name>.json`` through :func:`write_result`;
``python benchmarks/make_results_page.py`` turns all of them into ``docs/benchmarks.md``.

Schema (``"schema": 1``)::

    {
      "schema": 1,
      "name": "dynamic_decode",                       # file stem, unique
      "title": "Activation sparsity: batch-1 decode",  # section heading on the page
      "command": "python benchmarks/dynamic_decode.py --sparsity 0.4,0.5",
      "machine": "AMD EPYC 7B13, 2 cores; torch 2.14.1; Python 3.11.7",
      "date": "2026-12-01",
      "load": "load average 0.4 at start, 0.6 at end",  # contention seen while measuring
      "tables": [
        {"title": "...", "columns": ["model", "speedup", "95% CI"],
         "rows": [["llama-1b", "1.52x", "1.48-1.56"]],
         "notes": "median of 30 interleaved rounds; spread = 95% bootstrap CI"}
      ],
      "caveats": ["random weights: speed only", "..."]
    }

Rows hold already formatted strings or numbers. Notes and caveats state facts about the table
(what was measured, how, its spread and limits), never how or by whom it was produced.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from prunekit._env import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """CPU model, core count, torch and Python versions (GPU name when CUDA is present)."""
    parts = [f"{cpu_name()}, {os.cpu_count()} cores", f"torch {torch.__version__}"]
    if torch.cuda.is_available():
        parts.insert(0, torch.cuda.get_device_name(0))
    parts.append(f"Python {platform.python_version()}")
    return "; ".join(parts)


def load_average() -> str:
    try:
        return "load average %.1f / %.1f / %.1f (1/5/15 min)" % os.getloadavg()
    except OSError:
        return "load average unknown"


def write_result(name: str, title: str, tables: list[dict[str, Any]], *,
                 command: str | None = None, caveats: list[str] | None = None,
                 load: str | None = None) -> Path:
    """Atomically write ``benchmarks/results/<name>.json`` in the schema above; return its path."""
    for t in tables:
        missing = {"title", "columns", "rows"} - set(t)
        if missing:
            raise ValueError(f"table {t.get('title')!r} lacks {sorted(missing)}")
        for r in t["rows"]:
            if len(r) != len(t["columns"]):
                raise ValueError(f"table {t['title']!r}: row {r!r} does not match its columns")
    doc = {
        "schema": 1, "name": name, "title": title,
        "command": command or "python " + " ".join(sys.argv),
        "machine": machine(),
        "date": _dt.date.today().isoformat(),
        "load": load or load_average(),
        "tables": tables, "caveats": caveats or [],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
