"""The reports people read after a run: a self-contained HTML page, a Markdown summary for a
pull-request comment, and a compact terminal table. All take the runner's RunReport dict and
tolerate missing sections (a run may stop after cleaning). ``.sample.sample_report()`` is a
fully populated example of that dict."""

from .html import render_html, write_html_report
from .markdown import render_markdown, write_markdown_report
from .terminal import print_summary

__all__ = ["print_summary", "render_html", "render_markdown", "write_html_report",
           "write_markdown_report"]
