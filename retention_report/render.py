"""Rendering: executed section notebooks → one self-contained HTML report → paged PDF.

nbconvert does the HTML with the template ``report/`` of the templates folder (the package's
``templates/``, or a report project's own: :mod:`retention_report.paths`; code, prompts, the
parameters cells and stderr are removed by configuration); WeasyPrint turns the same HTML into an
A4 PDF with a running header and page numbers.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from html import escape as html_escape
from html import unescape as html_unescape
from pathlib import Path

import nbformat

from .i18n import _, install_gettext
from .paths import TEMPLATES_DIR

__all__ = [
    "TEMPLATES_DIR",
    "combine_notebooks",
    "describe_images",
    "render_html",
    "render_pdf",
    "add_toc",
    "keep_with_next",
    "check_self_contained",
]

REMOVE_TAGS = {"parameters", "injected-parameters", "remove-cell", "remove_cell"}


def combine_notebooks(paths: Iterable[Path]) -> nbformat.NotebookNode:
    """Concatenate executed notebooks into one, dropping parameter cells and stderr outputs.

    Every image gets alt text: the chart's title, which :func:`retention_report.notebook.setup`
    put into the output's metadata; an image without one (a notebook that skipped the setup) is
    described by the heading it stands under (:func:`describe_images`)."""
    combined: nbformat.NotebookNode | None = None
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        if combined is None:
            combined = copy.deepcopy(nb)
            combined.cells = []
        for cell in nb.cells:
            tags = set(cell.get("metadata", {}).get("tags", []))
            if tags & REMOVE_TAGS:
                continue
            if cell.cell_type == "code":
                cell.outputs = [
                    o for o in cell.get("outputs", [])
                    if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                ]
            combined.cells.append(cell)
    if combined is not None:
        describe_images(combined)
    if combined is None:
        combined = nbformat.v4.new_notebook()
    return combined


_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_HTML_HEADING = re.compile(r"<h([1-6])>([^<]*)</h\1>")


def describe_images(nb: nbformat.NotebookNode) -> int:
    """Give every image output without alt text (``metadata[<mimetype>].alt``) the alt text
    "Chart: <the last heading above it>" (a Markdown heading, or one ``rr.heading`` showed); returns
    how many were described."""
    heading, described = "", 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = _MD_HEADING.findall(cell.source)
            heading = found[-1] if found else heading
            continue
        for out in cell.get("outputs", []):
            shown = _HTML_HEADING.fullmatch(str(out.get("data", {}).get("text/html", "")).strip())
            if shown:  # a heading shown by rr.heading (retention_report.notebook.heading)
                heading = html_unescape(shown.group(2))
                continue
            for mime in _IMAGE_TYPES:
                if mime not in out.get("data", {}):
                    continue
                meta = out.setdefault("metadata", {})
                own = meta.get(mime) if isinstance(meta.get(mime), dict) else {}
                if own.get("alt") or meta.get("alt"):
                    continue
                # TRANSLATORS: the alt text of a chart without a title: "Chart: <the heading above it>"
                meta[mime] = {**own, "alt": _("Chart: %(heading)s") % {"heading": heading} if heading else _("Chart")}
                described += 1
    return described


_HEADING = re.compile(r"<h2(\s[^>]*)?>(.*?)</h2>", re.S)
_ID = re.compile(r'\sid="([^"]+)"')


def add_toc(html: str) -> str:
    """Fill the ``<!-- rr:toc -->`` placeholder with links to every ``h2`` section, giving each
    heading a stable ``id`` (``sec-1``, ``sec-2`` …) when it has none."""
    items: list[str] = []

    def visit(m: re.Match[str]) -> str:
        attrs, inner = m.group(1) or "", m.group(2)
        found = _ID.search(attrs)
        anchor = found.group(1) if found else f"sec-{len(items) + 1}"
        if not found:
            attrs = f' id="{anchor}"' + attrs
        text = re.sub(r"<[^>]+>", "", inner).replace("¶", "").strip()
        items.append(f'<li><a href="#{anchor}">{text}</a></li>')
        return f"<h2{attrs}>{inner}</h2>"

    html = _HEADING.sub(visit, html)
    title = html_escape(_("Contents"))
    toc = f'<p class="rr-toc-title">{title}</p><ol>' + "".join(items) + "</ol>" if items else ""
    return html.replace("<!-- rr:toc -->", toc, 1)


# one block of the page: an output of a code cell, or a markdown cell (nbconvert's classic markup)
_BLOCK = re.compile(r'<div class="output_area">|<div\b[^>]*\bclass="cell border-box-sizing text_cell[^"]*"[^>]*>')
_FIGURE = re.compile(r"<(?:img|svg|table)\b|class=[\"']rr-formula", re.I)
_HEADING_TAG = re.compile(r"<h[1-6]\b", re.I)
_TEXT = re.compile(r'class="cell border-box-sizing text_cell|class="output_markdown|class=[\"\']rr-(?:note|banner)\b')
KEEP_CLASS = "rr-keep-with-next"


def keep_with_next(html: str) -> str:
    """Keep each heading with what introduces it: a heading, and the lead paragraphs and notes
    under it, are marked ``rr-keep-with-next`` (report.css: ``break-after: avoid``) up to the first
    chart or table, so a page never ends with a heading or a chart's lead while the chart starts
    the next page. Anything else (a list, a block of definitions) ends the run unmarked."""
    blocks = list(_BLOCK.finditer(html))
    marked: list[re.Match[str]] = []
    run = False
    for i, m in enumerate(blocks):
        end = blocks[i + 1].start() if i + 1 < len(blocks) else len(html)
        chunk = html[m.end():end]
        if _FIGURE.search(chunk):
            run = False
            continue
        if _HEADING_TAG.search(chunk):
            run = True
        elif not (_TEXT.search(m.group(0)) or _TEXT.search(chunk)):
            run = False
        if run:
            marked.append(m)
    out, last = [], 0
    for m in marked:
        tag = m.group(0)
        out += [html[last:m.start()], tag.replace('class="', f'class="{KEEP_CLASS} ', 1)]
        last = m.end()
    return "".join(out) + html[last:]


def render_html(nb: nbformat.NotebookNode, report: Mapping[str, object],
                templates_dir: Path | None = None) -> str:
    """Render a combined notebook with the report template (``<templates_dir>/report``, default
    the package's).

    ``report`` feeds the cover: title, period_title, date_range, source, previous_title,
    year_ago_title, generated_at, complete, incomplete_text, kicker, version.
    """
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    c = Config()
    c.HTMLExporter.exclude_input = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.HTMLExporter.exclude_anchor_links = True
    c.HTMLExporter.embed_images = True
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = set(REMOVE_TAGS)
    c.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    exporter = HTMLExporter(
        config=c,
        template_name="report",
        extra_template_basedirs=[str(templates_dir or TEMPLATES_DIR)],
    )
    # the template's words in [report] language (i18n.py), before the template is first loaded
    install_gettext(exporter.environment)
    body, _resources = exporter.from_notebook_node(nb, resources={"report": dict(report)})
    body = keep_with_next(add_toc(body))
    check_self_contained(body)
    return body


_EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["'](?:https?:)?//|@import\s+url\(\s*["']?(?:https?:)?//|url\(\s*["']?https?://""",
    re.I,
)


def check_self_contained(html: str) -> None:
    """Raise if the page would load anything from the network."""
    m = _EXTERNAL.search(html)
    if m:
        start = max(m.start() - 60, 0)
        raise ValueError(f"report HTML references an external resource: …{html[start:m.end() + 60]}…")
    if re.search(r"<script\b", html, re.I):
        raise ValueError("report HTML contains a <script> element")


def render_pdf(html: str, path: Path, templates_dir: Path | None = None) -> Path:
    """Render the report HTML to an A4 PDF with WeasyPrint (print media rules of report.css;
    relative URLs resolve against the templates folder)."""
    import logging

    from weasyprint import HTML

    # WeasyPrint logs unsupported CSS at WARNING; keep the run's output clean
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=html, base_url=str(templates_dir or TEMPLATES_DIR)).write_pdf(str(path))
    return path
