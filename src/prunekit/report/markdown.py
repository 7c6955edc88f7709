"""Markdown report: summary, tables, and the plots as PNG files next to it."""

from __future__ import annotations

from typing import Any

from prunekit.report.summary import summarize
from prunekit.report.tables import Table, all_tables


def _table(t: Table) -> str:
    title, header, rows = t
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(("**" + v + "**") if v.startswith(("FAILED", "UNRELIABLE"))
                                       else v
                                       for v in r) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(data: dict[str, Any], plot_files: dict[str, tuple[str, str]]) -> str:
    """Markdown text; ``plot_files`` maps plot name to ``(title, relative path)``."""
    env, cfg = data.get("environment", {}), data.get("config", {})
    out = [f"# {data.get('title') or 'prunekit report'}", ""]
    meta = [f"{k}: {env[k]}" for k in ("date", "cpu", "gpu", "threads", "torch") if k in env]
    meta += [f"{k}: {cfg[k]}" for k in ("device", "dtype", "batches", "runtimes") if k in cfg]
    loads = sorted({c["contention"]["load"] for c in data.get("cells", [])
                    if c.get("contention") and c["contention"].get("load")})
    meta += [f"while timing: {t}" for t in loads[:1]]
    if data.get("command"):
        meta.append(f"command: `{data['command']}`")
    out += ["_" + " · ".join(str(m) for m in meta) + "_", "", "## What this means", ""]
    out += [f"- {s}" for s in summarize(data)] + [""]
    for title, path in plot_files.values():
        out += [f"![{title}]({path})", ""]
    out += [_table(t) for t in all_tables(data)]
    if data.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    return "\n".join(out)
