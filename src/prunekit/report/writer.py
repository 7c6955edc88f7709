"""Write a report directory: ``report.json``, ``report.md`` (+ ``plots/*.png``), ``index.html``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from prunekit.io import atomic_write_bytes
from prunekit.report.html import render_html
from prunekit.report.markdown import render_markdown
from prunekit.report.plots import render_plots

FORMATS = ("json", "md", "html")



def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no inf/nan
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "to_dict"):
        return _jsonable(x.to_dict())
    return x


def write_report(data: Any, out_dir: str | os.PathLike, formats: tuple[str, ...] = FORMATS
                 ) -> dict[str, Path]:
    """Write the report of ``data`` (a dict or anything with ``to_dict()``) to ``out_dir``.

    Returns:
        format -> path written.

    Raises:
        ValueError: unknown format.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"formats entries must be in {FORMATS}, got {bad}")
    data = _jsonable(data)
    out = Path(out_dir)
    written: dict[str, Path] = {}
    if "json" in formats:
        written["json"] = out / "report.json"
        atomic_write_bytes(written["json"], json.dumps(data, indent=1).encode())
    plots = render_plots(data) if ("md" in formats or "html" in formats) else {}
    if "md" in formats:
        files = {}
        for name, (title, png) in plots.items():
            atomic_write_bytes(out / "plots" / f"{name}.png", png)
            files[name] = (title, f"plots/{name}.png")
        written["md"] = out / "report.md"
        atomic_write_bytes(written["md"], render_markdown(data, files).encode())
    if "html" in formats:
        written["html"] = out / "index.html"
        atomic_write_bytes(written["html"], render_html(data, plots).encode())
    return written
