"""Self-contained HTML report: inline CSS, plots as base64 PNG data URIs, no scripts, no
external assets (it opens from a mail attachment or an air-gapped machine)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from prunekit.report.summary import summarize
from prunekit.report.tables import Table, all_tables

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.failed{background:#fde8e8;color:#a00;font-weight:600}
.summary li{margin:.3em 0}.meta{color:#555;font-size:.85em}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444}img{max-width:100%;height:auto}
"""


def _table(t: Table) -> str:
    title, header, rows = t
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        tds = "".join(
            f'<td class="failed">{html.escape(v)}</td>' if v.startswith(("FAILED", "UNRELIABLE")) else
            f"<td>{html.escape(v)}</td>" for v in r)
        body.append(f"<tr>{tds}</tr>")
    return (f"<h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _figure(name: str, title: str, png: bytes) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return (f'<figure id="plot-{html.escape(name)}"><img alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(title)}</figcaption>'
            "</figure>")


def _meta(data: dict[str, Any]) -> str:
    env = data.get("environment", {})
    cfg = data.get("config", {})
    parts = [f"{k}: {env[k]}" for k in ("date", "cpu", "gpu", "threads", "torch", "onnxruntime")
             if k in env]
    parts += [f"{k}: {cfg[k]}" for k in ("device", "dtype", "batches", "runtimes", "repeats")
              if k in cfg]
    if data.get("command"):
        parts.append(f"command: {data['command']}")
    return '<p class="meta">' + " · ".join(html.escape(str(p)) for p in parts) + "</p>"


def render_html(data: dict[str, Any], plots: dict[str, tuple[str, bytes]]) -> str:
    """The whole report as one HTML string."""
    title = data.get("title") or "prunekit report"
    summary = "".join(f"<li>{html.escape(s)}</li>" for s in summarize(data))
    figs = "".join(_figure(n, t, png) for n, (t, png) in plots.items())
    tables = "".join(_table(t) for t in all_tables(data))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data.get("notes", []))
    raw = html.escape(json.dumps(data.get("environment", {}), indent=1))
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{_meta(data)}"
        f"<h2>What this means</h2><ul class=\"summary\">{summary}</ul>"
        f"{figs}{tables}"
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + f"<h2>Environment</h2><pre>{raw}</pre></body></html>"
    )
