"""The archive page ``reports/index.html``: every rendered period at a glance (issue 14).

Input: the report folders directly inside a reports folder (``reports/<PERIOD>/``), each read from
its ``metrics.json`` and its marker (:data:`retention_report.outputs.MARKER`) only — never the
payment data. Output: one self-contained HTML page (the report's stylesheet inlined, charts as
inline SVG, no scripts, no external requests, relative links) with, per grain (months, quarters,
years, then halves, weeks and custom ranges when present):

* a trend chart of revenue, customers, CRR and churn over the rendered periods (small multiples;
  none for a grain with a single period);
* a table of its periods, newest first: the headline KPIs and their change on the previous period
  (formatted and judged as the report does: :mod:`retention_report.formatting`), links to
  ``report.html``, ``report.pdf`` and ``metrics.json``, when it was rendered and from which source.

A period rendered from another source or other content settings than the current ones (the
fingerprint the email command checks, :func:`retention_report.outputs.content_record`) is marked as
such, with what differs; one whose marker records nothing (older versions) as of unknown origin.
A folder that is not a report of this tool, or whose ``metrics.json`` cannot be read, is listed under
"Not shown" with the reason; missing KPIs (older versions) are shown as ``n/a``.

The page holds no time of its own, so building it twice from the same folders gives the same bytes.
``run`` and ``metrics`` rebuild it after writing into the configured reports folder
(:func:`update_for`); a failure to build it warns on stderr and never fails the report.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .formatting import (
    DEFAULT_TITLE,
    coverage,
    doc_change,
    fmt_compact,
    fmt_date,
    fmt_datetime,
    fmt_month,
    fmt_pct,
    fmt_value,
    is_missing,
    kpi_spec,
    period_subtitle,
    period_title,
    report_title,
    source_label,
)
from .fsio import write_atomic
from .i18n import N_, _, get_language, install_gettext, using
from .kpis import ARCHIVE_KPIS, TREND_KPIS
from .outputs import MARKER, content_differences, content_record, is_report_folder, read_marker
from .periods import Period, PeriodError, month_index, parse_period

__all__ = [
    "ARCHIVE_KPIS",
    "GRAINS",
    "INDEX_NAME",
    "TREND_KPIS",
    "ArchiveError",
    "Entry",
    "Skipped",
    "refresh_index",
    "render_index",
    "scan_reports",
    "trend_svg",
    "update_for",
    "write_index",
]

INDEX_NAME = "index.html"
# the grains in page order: the usual ones first, then the rarer
GRAINS: tuple[tuple[str, str], ...] = (
    ("month", N_("Months")),
    ("quarter", N_("Quarters")),
    ("year", N_("Years")),
    ("half", N_("Half years")),
    ("week", N_("Weeks")),
    ("range", N_("Custom ranges")),
)
# what marks the page as written by this tool (an index.html without it is never replaced)
GENERATOR = "retention-report archive"
# the report's colours (retention_report.plots.PALETTE; not imported: plots pulls in the engine)
LINE, HOLLOW_FACE, TEXT = "#0072B2", "#ffffff", "#1F2933"

Say = Callable[[str], None]

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

    from .config import Settings


class ArchiveError(RuntimeError):
    """The archive page cannot be written (no reports folder, or an index.html this tool did not write)."""


@dataclass(frozen=True)
class Skipped:
    """A folder of the reports folder that is not shown, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Entry:
    """One rendered period: its folder (name inside the reports folder), period, metrics document
    (``{}`` when missing), what it holds and where it came from.

    ``origin`` is ``current`` (made from the current source and content settings), ``other``
    (``differences`` says what differs), ``unknown`` (its marker records nothing) or ``''`` (no
    current settings to compare with)."""

    name: str
    period: Period
    doc: Mapping[str, Any]
    rendered_at: datetime | None
    source: str
    origin: str
    differences: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())  # which of report.html, report.pdf, metrics.json exist
    note: str = ""


# ------------------------------------------------------------------------------------------ reading

def _read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(document, '') or (None, why it cannot be read)."""
    try:
        if path.is_symlink() or not path.is_file():
            return None, _("no metrics.json")
        if path.stat().st_size > 50_000_000:
            return None, _("metrics.json is too large to be ours")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None, _("metrics.json cannot be read")
    except ValueError:
        return None, _("metrics.json is not valid JSON")
    if not isinstance(doc, dict):
        return None, _("metrics.json is not a metrics document")
    return doc, ""


def _period_of(*candidates: Any) -> Period | None:
    for text in candidates:
        if isinstance(text, (str, int)) and str(text).strip():
            try:
                return parse_period(str(text))
            except PeriodError:
                continue
    return None


def _when(*candidates: Any) -> datetime | None:
    for text in candidates:
        if isinstance(text, str) and text:
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                continue
    return None


def _records(marker: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """What the report and its metrics.json were made from (:func:`outputs.content_record`)."""
    if not marker:
        return []
    return [r for r in (marker.get("report"), marker.get("metrics")) if isinstance(r, dict)]


def _origin(records: list[dict[str, Any]], settings: Settings | None) -> tuple[str, tuple[str, ...]]:
    if settings is None:
        return "", ()
    if not records:
        return "unknown", ()
    try:
        for record in records:
            diffs = content_differences(record, settings)
            if diffs:
                return "other", tuple(diffs)
    except (AttributeError, TypeError, ValueError):  # a record of another shape
        return "unknown", ()
    return "current", ()


def _clean(block: Any) -> dict[str, Any]:
    """A ``kpis``/``previous`` block with only numbers kept (anything else reads as missing)."""
    if not isinstance(block, dict):
        return {}
    return {k: v for k, v in block.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def scan_reports(root: Path | str, settings: Settings | None = None) -> tuple[list[Entry], list[Skipped]]:
    """The rendered periods in ``root`` (newest first within each grain comes later: see
    :func:`_by_grain`) and the folders skipped, with the reason. Hidden entries (temporary folders of
    runs) and files are ignored. ``settings``: the current settings, to mark periods made otherwise."""
    root = Path(root)
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        name = folder.name
        if name.startswith(".") or (not folder.is_dir() and not folder.is_symlink()):
            continue
        if folder.is_symlink():
            skipped.append(Skipped(name, _("a symbolic link, not a report folder")))
            continue
        if name.endswith(".failed"):
            skipped.append(Skipped(name, _("the notebooks of a failed run, kept for debugging")))
            continue
        marker = read_marker(folder)
        if marker is None and not is_report_folder(folder):
            skipped.append(Skipped(name, _("not a report folder of retention-report")))
            continue
        doc, problem = _read_json(folder / "metrics.json")
        has = tuple(f for f in ("report.html", "report.pdf", "metrics.json") if (folder / f).is_file())
        if doc is None and (problem != _("no metrics.json") or "report.html" not in has):
            skipped.append(Skipped(name, problem))
            continue
        doc = doc or {}
        period = _period_of(doc.get("period"), (marker or {}).get("period"), name)
        if period is None:
            skipped.append(Skipped(name, _("its period is not one retention-report knows")))
            continue
        records = _records(marker)
        origin, diffs = _origin(records, settings)
        source = next((str(r["source"]) for r in records if r.get("source")), "") or str(doc.get("source") or "")
        clean = {**doc, "kpis": _clean(doc.get("kpis")), "previous": _clean(doc.get("previous"))}
        entries.append(Entry(
            name=name, period=period, doc=clean,
            rendered_at=_when((marker or {}).get("written_at"), doc.get("generated_at")),
            source=source_label(source) if source else _("source not recorded"), origin=origin, differences=diffs, files=has,
            note=problem if not doc else "",
        ))
    return entries, skipped


def _by_grain(entries: Sequence[Entry]) -> list[tuple[str, str, list[Entry]]]:
    """(grain, heading, entries newest first) for each grain present, in :data:`GRAINS` order."""
    out = []
    for kind, heading in GRAINS:
        these = [e for e in entries if e.period.kind == kind]
        if these:
            these.sort(key=lambda e: e.name)
            these.sort(key=lambda e: (e.period.start, e.period.end), reverse=True)
            out.append((kind, _(heading), these))
    return out


# ------------------------------------------------------------------------------------------- charts

def _short(p: Period) -> str:
    """A period's name on a chart axis, on two lines: ``Mar⏎2024``, ``Q1⏎2024``, ``2024``,
    ``Week⏎5 2024``; a custom range by its first day (in the current language)."""
    text = fmt_month(p.start) if p.kind == "month" else fmt_date(p.start) if p.kind == "range" else period_title(p)
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if not spaces:
        return text
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))  # the space nearest the middle
    return text[:cut] + "\n" + text[cut + 1:]


def _position(p: Period) -> float:
    """Where a period sits on a trend's x axis: consecutive periods of a grain one step apart."""
    if p.kind == "month":
        return month_index(p.start)
    if p.kind == "quarter":
        return month_index(p.start) // 3
    if p.kind == "half":
        return month_index(p.start) // 6
    if p.kind == "year":
        return p.start.year
    if p.kind == "week":
        return p.start.toordinal() // 7
    return p.start.toordinal()


def _number(v: Any) -> float:
    return math.nan if is_missing(v) else float(v)


def trend_svg(entries: Sequence[Entry], grain: str = "") -> str:
    """One figure of small multiples — revenue, customers, CRR, churn (:data:`TREND_KPIS`) — over
    ``entries`` (one grain, any order), as an inline ``<svg>`` element ('' for fewer than two
    periods). Consecutive periods are joined by a line, gaps are left open; periods of another or
    unknown origin are drawn as hollow points. Element ids are prefixed with ``grain`` so several
    charts can share a page."""
    if len(entries) < 2:
        return ""
    import matplotlib as mpl
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter

    from .plots import installed_families

    ordered = sorted(entries, key=lambda e: (e.period.start, e.period.end))
    xs = [_position(e.period) for e in ordered]
    hollow = [e.origin in ("other", "unknown") for e in ordered]
    currency = str(ordered[-1].doc.get("currency") or "EUR")
    style: dict[RcKeyType, Any] = {
        "svg.fonttype": "none", "svg.hashsalt": f"retention-report-archive-{grain}",
        "font.family": installed_families("DejaVu Sans", "Liberation Sans", "sans-serif"), "font.size": 9,
        "text.color": TEXT, "axes.labelcolor": TEXT, "xtick.color": "#52606D", "ytick.color": "#52606D",
        "axes.edgecolor": "#CBD2D9", "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "axes.grid.axis": "y", "grid.color": "#E4E7EB", "grid.linewidth": 0.8,
        "axes.titlesize": 10.5, "axes.titleweight": "bold", "axes.titlelocation": "left", "axes.titlepad": 8,
        "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "text.parse_math": False,
    }
    with mpl.rc_context(style):
        fig = Figure(figsize=(8.6, 4.5), layout="constrained")
        axes = fig.subplots(2, 2).ravel()
        ticks = _tick_indices(xs)
        for ax, key in zip(axes, TREND_KPIS, strict=True):
            spec = kpi_spec(key, ordered[-1].doc)
            ys = [_number(e.doc.get("kpis", {}).get(key)) for e in ordered]
            # a line only between consecutive periods (a missing period leaves a gap)
            line_x: list[float] = []
            line_y: list[float] = []
            for i, e in enumerate(ordered):
                if i and e.period != ordered[i - 1].period.shift(1):
                    line_x.append(math.nan)
                    line_y.append(math.nan)
                line_x.append(xs[i])
                line_y.append(ys[i])
            ax.plot(line_x, line_y, color=LINE, linewidth=1.8)
            for filled in (True, False):
                pts = [(x, y) for x, y, h in zip(xs, ys, hollow, strict=True) if h != filled]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="none", marker="o",
                            markersize=4.5, color=LINE, markerfacecolor=LINE if filled else HOLLOW_FACE,
                            markeredgewidth=1.3)
            ax.set_title(spec.label)
            finite = [y for y in ys if not math.isnan(y)]
            if spec.unit == "rate":
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_pct(v, 1)))  # 88,0 % in ru/de
                if finite:  # at least 5 points of percent tall: a 0.3-point move looks as small as it is
                    lo, hi = min(finite), max(finite)
                    half = max(hi - lo, 0.05) * 0.6
                    mid = (lo + hi) / 2
                    ax.set_ylim(max(0.0, mid - half), min(1.0, mid + half))
            else:
                cur = currency if spec.unit == "money" else None  # "€2.5M", "2,5 млн ₽", "800k"
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p, c=cur: fmt_compact(v, c)))
                if finite and min(finite) >= 0:
                    ax.set_ylim(bottom=0, top=max(finite) * 1.12 or 1)
            ax.xaxis.set_major_locator(FixedLocator([xs[i] for i in ticks]))
            ax.set_xticklabels([_short(ordered[i].period) for i in ticks])
            pad = max(0.4, (xs[-1] - xs[0]) * 0.04)
            ax.set_xlim(xs[0] - pad, xs[-1] + pad)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _inline(buf.getvalue(), grain or "chart", _("Trends of revenue, customers, CRR and churn"))


def _tick_indices(xs: Sequence[float], labels: int = 6) -> list[int]:
    """Which of the periods at positions ``xs`` (ascending) get a label: at most about ``labels``
    per axis, the newest always, each at least a sixth of the axis from the next one to its right —
    by position, not by count, so periods years apart never crowd the labels of neighbouring ones."""
    gap = (xs[-1] - xs[0]) / labels
    ticks = [len(xs) - 1]
    for i in range(len(xs) - 2, -1, -1):
        if xs[ticks[-1]] - xs[i] >= gap:
            ticks.append(i)
    return ticks[::-1]


def _inline(svg: str, prefix: str, label: str) -> str:
    """matplotlib's SVG file as an element of an HTML page: no XML prologue, no namespace
    declarations (HTML knows them), sized by CSS, ids prefixed (unique on the page), labelled."""
    svg = svg[svg.index("<svg"):].strip()
    head, body = svg.split(">", 1)
    head = re.sub(r'\s(?:xmlns(?::\w+)?|width|height|version)="[^"]*"', "", head)
    head += f' class="rr-chart" role="img" aria-label="{_escape(label)}"'
    svg = head + ">" + body
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


# --------------------------------------------------------------------------------------- rendering

def _row(e: Entry) -> dict[str, Any]:
    doc = e.doc
    currency = str(doc.get("currency") or "EUR")
    kpis, prev = doc.get("kpis") or {}, doc.get("previous") or {}
    cov = coverage(doc, "previous_period")
    previous = _period_of((doc.get("previous_period") or {}).get("period") if isinstance(
        doc.get("previous_period"), dict) else None)
    prev_title = period_title(previous or e.period.previous())
    cells = []
    for key in ARCHIVE_KPIS:
        c = doc_change({**doc, "kpis": kpis, "previous": prev}, key, "previous", currency)
        if is_missing(kpis.get(key)):
            shown, tone = "", "neutral"  # n/a once is enough
        elif cov == "none":
            shown, tone = _("no data"), "nodata"
        else:
            shown, tone = c.text, "partial" if cov == "partial" else c.tone
        cells.append({"key": key, "value": fmt_value(key, kpis.get(key), currency),
                      "change": shown, "tone": tone, "label": kpi_spec(key, doc).label})
    base = quote(e.name)
    links = [(label, f"{base}/{file}") for label, file in (
        ("HTML", "report.html"), ("PDF", "report.pdf"), ("JSON", "metrics.json")) if file in e.files]
    marks = []
    if e.origin == "other":
        marks.append(("other", _("other source or settings"),
                      _("Rendered from another source or other settings than the current config and data: ")
                      + "; ".join(e.differences)))
    elif e.origin == "unknown":
        marks.append(("unknown", _("origin not recorded"),
                      _("Made by an older version, which did not record its source and settings.")))
    if doc.get("complete") is False:
        marks.append(("partial", _("incomplete period"), _("The data end before the period does.")))
    return {
        "name": e.name, "label": e.period.label, "title": period_title(e.period), "dates": period_subtitle(e.period),
        "href": f"{base}/report.html" if "report.html" in e.files else "",
        "links": links, "cells": cells, "marks": marks, "origin": e.origin or "none",
        "vs": _("vs %(period)s") % {"period": prev_title},
        "metrics_only": "report.html" not in e.files,
        "rendered": fmt_date(e.rendered_at) if e.rendered_at else _("n/a"),
        "rendered_at": fmt_datetime(e.rendered_at) if e.rendered_at else "",
        "source": e.source, "note": e.note,
    }


def _jinja(templates: Sequence[Path]) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(t) for t in templates]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return install_gettext(env)


def _template_dirs(settings: Settings | None) -> list[Path]:
    """``archive/`` and ``report/`` (its report.css) of the run's templates folder, then the
    package's (a project made before the archive existed has no ``archive/`` of its own)."""
    from . import paths

    bases = [paths.templates_dir(settings)] if settings is not None else []
    bases.append(paths.TEMPLATES_DIR)
    dirs: list[Path] = []
    for base in bases:
        for sub in ("archive", "report"):
            if (base / sub).is_dir() and base / sub not in dirs:
                dirs.append(base / sub)
    return dirs


def render_index(root: Path | str, settings: Settings | None = None) -> str:
    """The archive page of reports folder ``root`` (see the module docstring); ``settings`` are
    the current ones (title, templates, and what a period made otherwise is compared with)."""
    from . import __version__

    root = Path(root)
    entries, skipped = scan_reports(root, settings)
    grains = []
    for kind, heading, these in _by_grain(entries):
        grains.append({
            "kind": kind, "heading": heading, "count": len(these),
            "chart": trend_svg(these, kind),
            "hollow": any(e.origin in ("other", "unknown") for e in these),
            "rows": [_row(e) for e in these],
        })
    marked = any(e.origin == "other" for e in entries)
    span = ""
    if entries:
        first = min(e.period.start for e in entries)
        last = max(e.period.end for e in entries)
        span = f"{fmt_date(first)} – {fmt_date(last)}"
    env = _jinja(_template_dirs(settings))
    title = report_title(settings.report.title if settings is not None else DEFAULT_TITLE)
    page: str = env.get_template("index.html.j2").render(
        lang=get_language(),
        title=title,
        version=__version__,
        generator=GENERATOR,
        count=len(entries),
        span=span,
        current_source=content_record(settings)["source"] if settings is not None else "",
        grains=grains,
        kpis=[kpi_spec(k).label for k in ARCHIVE_KPIS],
        marked=marked,
        skipped=skipped,
    )
    return page


def _is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}' in head


def write_index(root: Path | str, settings: Settings | None = None) -> Path:
    """Write ``root/index.html`` (atomically: :func:`retention_report.fsio.write_atomic`) and
    return its path.

    Raises
    ------
    ArchiveError
        ``root`` is not a folder, or its ``index.html`` was not written by this tool (it is never
        replaced) or is not a plain file.
    """
    from .render import check_self_contained

    root = Path(root)
    if not root.is_dir():
        raise ArchiveError(f"{root} is not a folder of reports: nothing to index "
                           "(render a report first: make report PERIOD=…)")
    path = root / INDEX_NAME
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ArchiveError(f"refusing to replace {path}: it is not a plain file")
    if path.exists() and not _is_ours(path):
        raise ArchiveError(f"refusing to replace {path}: it was not written by retention-report; "
                           "move it away to get the report archive there")
    # the archive speaks the report's language (without settings: the current one), for this page only
    with using(settings.report.language if settings is not None else get_language()):
        page = render_index(root, settings)
    check_self_contained(page)
    return write_atomic(path, page)


def refresh_index(root: Path | str, settings: Settings | None = None, *, say: Say | None = None) -> Path | None:
    """:func:`write_index`, for the end of a run: any failure is one warning on stderr (the
    report written before stands) and returns None."""
    try:
        path = write_index(root, settings)
    except Exception as exc:  # the archive never fails a report
        print(f"warning: the report archive {Path(root) / INDEX_NAME} was not updated: {exc}", file=sys.stderr)
        return None
    if say is not None:
        say(f"[index] {path} updated")
    return path


def update_for(report_dir: Path | str, settings: Settings, *, say: Say | None = None) -> Path | None:
    """Rebuild the archive after ``report_dir`` was written, when ``report_dir`` lies directly in the
    configured reports folder (``report.output_dir``); a report written elsewhere (``--out``) leaves
    every index alone. Never raises for the archive's sake (:func:`refresh_index`)."""
    try:
        root = Path(os.path.realpath(settings.report.output_dir))
        if Path(os.path.realpath(report_dir)).parent != root or not (Path(report_dir) / MARKER).is_file():
            return None
    except Exception:
        return None
    return refresh_index(root, settings, say=say)
