"""Reports: JSON, Markdown and self-contained HTML with plots."""

from prunekit.report.html import render_html
from prunekit.report.markdown import render_markdown
from prunekit.report.summary import summarize
from prunekit.report.writer import write_report

__all__ = ["render_html", "render_markdown", "summarize", "write_report"]
