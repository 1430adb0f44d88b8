"""Composing the report mail: subject, headers, the HTML and plain-text bodies (KPI table, findings,
one chart) and the attachments.

The message (:func:`build_message`) is a ``multipart/mixed`` of

* ``multipart/alternative``: a plain-text part and a ``multipart/related`` HTML part (inline styles
  only, no scripts, no ``data:`` URIs) whose one chart is a CID-referenced PNG;
* the PDF report (and the HTML report when ``email.attach_html`` is set).

Nothing here connects anywhere: sending is :mod:`retention_report.mail.deliver`.
"""

from __future__ import annotations

import io
import json
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..formatting import (
    HEADLINE_KPIS,
    fmt_money,
    kpi_rows,
    kpi_spec,
    movement_phrase,
    period_subtitle,
    period_title,
    report_title,
    unobservable_keys,
    unobservable_reason,
)
from ..fsio import write_atomic
from ..i18n import _, get_language, install_gettext, using
from ..paths import TEMPLATES_DIR as _TEMPLATES
from ..periods import Period
from .addresses import MailError, Recipients, bare, recipients_from, validate_address

if TYPE_CHECKING:
    import jinja2

__all__ = ["CHART_CID", "EML_NAME", "build_message", "chart_caption", "chart_png", "check_headers", "write_eml"]

TEMPLATES_DIR = _TEMPLATES / "email"
EML_NAME = "email.eml"
CHART_CID = "revenue-chart"

TONE_COLOURS = {"good": "#1a7f37", "bad": "#c0392b", "neutral": "#5b6475"}


def _jinja() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    # the words of the templates in [report] language (i18n.py); new-style: _("%(name)s", name=…)
    installed: jinja2.Environment = install_gettext(env)
    return installed


def _kpi_rows(doc: dict[str, Any], currency: str) -> list[dict[str, Any]]:
    """The headline KPI rows (:func:`retention_report.formatting.kpi_rows`, labelled as in the
    report) as the templates use them, with the colours of the changes' tones."""
    return [{
        "label": r.label,
        "value": r.value, "previous": r.previous, "year_ago": r.year_ago,
        "vs_previous": r.vs_previous.text, "vs_previous_colour": TONE_COLOURS[r.vs_previous.tone],
        "vs_year_ago": r.vs_year_ago.text, "vs_year_ago_colour": TONE_COLOURS[r.vs_year_ago.tone],
    } for r in kpi_rows(doc, currency)]


def _unobservable_note(doc: dict[str, Any]) -> str:
    """Why headline KPIs of the period read "n/a" because of the data's span (SPEC §4.3), as the
    report's KPI table says it; empty when none do."""
    keys = [key for key in HEADLINE_KPIS if key in unobservable_keys(doc, "kpis")]
    reason = unobservable_reason(doc, "kpis")
    if not keys or not reason:
        return ""
    return _("%(kpis)s: %(reason)s.") % {"kpis": ", ".join(kpi_spec(k, doc).label for k in keys), "reason": reason}


def chart_png(doc: dict[str, Any], currency: str, labels: list[str] | None = None) -> bytes:
    """The key chart for the mail: gross revenue from new and returning purchases a year ago, in the
    previous period and now, as a PNG.

    Why redraw it rather than reuse a chart of ``report.html``: the report's images are anonymous
    base64 ``<img>`` tags whose order and content change whenever a notebook does, and its revenue
    trend is sized for an A4 page (its labels become unreadable at mail width). Drawing this one
    small chart from ``metrics.json`` with the project's theme (:func:`plots.set_theme`,
    :func:`plots.revenue_trend`) takes ~0.3 s, needs only the file the mail is built from anyway,
    always matches the KPI table beside it, and is sized for a 600-pixel mail column at 2x
    resolution for high-density screens.

    ``labels``: the three bar labels (year ago, previous, current); default the periods' labels
    (the bars' legend is in the current report language).
    The chart has no title: :func:`chart_caption` is shown as text above it.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    from .. import plots
    plots.set_theme()
    blocks = ("year_ago", "previous", "kpis")
    if labels is None:
        labels = [doc.get("year_ago_period", {}).get("period", _("Year ago")),
                  doc.get("previous_period", {}).get("period", _("Previous")), doc["period"]]
    frame = pd.DataFrame({
        "period": labels,
        "revenue_new": [doc[b].get("revenue_new") or 0.0 for b in blocks],
        "revenue_returning": [doc[b].get("revenue_returning") or 0.0 for b in blocks],
        "revenue_guest": [doc[b].get("revenue_guest") for b in blocks],
    })
    with plt.rc_context({"xtick.labelsize": 9.5, "ytick.labelsize": 8.5, "axes.labelsize": 9,
                         "legend.fontsize": 9}):
        fig, ax = plt.subplots(figsize=(5.4, 2.9))
        plots.revenue_trend(frame, currency=currency, ax=ax)
        for t in ax.texts:  # the totals above the bars
            t.set_fontsize(9.5)
            t.set_fontweight("bold")
        ax.set_title("")  # the title is HTML text above the image: readable, and there with images off
        buf = io.BytesIO()
        # 1184 px wide (tight bounding box aside): shown at 592 CSS pixels, sharp on 2x screens
        fig.savefig(buf, format="png", dpi=220, metadata={"Software": None})
        plt.close(fig)
    return buf.getvalue()


def chart_caption(doc: dict[str, Any], currency: str, labels: list[str]) -> str:
    """``Gross revenue in Q1 2024: €3,130,801, down 16% on Q4 2023 and up 34% on Q1 2023``."""
    gross = [(doc[b].get("revenue_new") or 0.0) + (doc[b].get("revenue_returning") or 0.0)
             + (doc[b].get("revenue_guest") or 0.0) for b in ("year_ago", "previous", "kpis")]
    moves = (movement_phrase(gross[-1], ref, label, decimals=0)
             for ref, label in ((gross[1], labels[1]), (gross[0], labels[0])))
    moves_shown = [m for m in moves if m]
    text = _("Gross revenue in %(period)s: %(amount)s") % {"period": labels[-1], "amount": fmt_money(gross[-1], currency)}
    if len(moves_shown) == 2:
        return text + ", " + _("%(first)s and %(second)s") % {"first": moves_shown[0], "second": moves_shown[1]}
    return text + (", " + moves_shown[0] if moves_shown else "")


def check_headers(settings: Settings) -> tuple[str, str]:
    """The validated From and Reply-To (``""`` when not set); the title (in the Subject) must be one
    line. Raises MailError naming the setting."""
    em = settings.email
    if not em.sender:
        raise MailError("email.sender is not set in the config (the From address)")
    sender = validate_address(em.sender, "sender (email.sender)")
    reply_to = validate_address(em.reply_to, "reply-to (email.reply_to)") if em.reply_to else ""
    if any(c in settings.report.title for c in "\r\n\0"):
        raise MailError(f"report.title {settings.report.title!r} contains a line break; it is the mail's Subject")
    return sender, reply_to


def build_message(report_dir: Path, settings: Settings, period: Period,
                  recipients: Recipients | None = None) -> EmailMessage:
    """The complete message for the report in ``report_dir`` (``report.pdf`` and ``metrics.json``),
    in the report's language (for this message only: i18n.py).

    Raises MailError when a file is missing, an address is invalid or the attachments exceed
    ``email.max_attachment_mb``.
    """
    with using(settings.report.language):
        return _build_message(report_dir, settings, period, recipients)


def _build_message(report_dir: Path, settings: Settings, period: Period,
                   recipients: Recipients | None) -> EmailMessage:
    report_dir = Path(report_dir)
    em = settings.email
    pdf_path = report_dir / "report.pdf"
    metrics_path = report_dir / "metrics.json"
    for p in (pdf_path, metrics_path):
        if not p.is_file():
            raise MailError(f"{p} is missing: render the report first (make report PERIOD={period.label})")
    sender, reply_to = check_headers(settings)
    recipients = recipients or recipients_from(em)

    doc = json.loads(metrics_path.read_text(encoding="utf-8"))
    currency = settings.report.currency
    pdf = pdf_path.read_bytes()
    attachments: list[tuple[bytes, str, str, str]] = [(pdf, "application", "pdf", f"retention-report-{period.label}.pdf")]
    if em.attach_html and (report_dir / "report.html").is_file():
        attachments.append(((report_dir / "report.html").read_bytes(), "text", "html",
                            f"retention-report-{period.label}.html"))
    total_mb = sum(len(a[0]) for a in attachments) / 1e6
    if total_mb > em.max_attachment_mb:
        names = ", ".join(f"{a[3]} ({len(a[0]) / 1e6:.1f} MB)" for a in attachments)
        raise MailError(f"attachments of {total_mb:.1f} MB exceed email.max_attachment_mb = "
                        f"{em.max_attachment_mb:g} MB ({names}); nothing was sent")

    title = report_title(settings.report.title)
    chart_labels = [period_title(period.year_ago()), period_title(period.previous()), period_title(period)]
    # the online report, when there is one; never a path of the machine that rendered it
    where = settings.report.report_url or ""
    context = {
        "title": title,
        "period": period,
        "period_title": chart_labels[2],
        "date_range": period_subtitle(period),
        "lang": get_language(),
        "complete": bool(doc.get("complete")),
        "rows": _kpi_rows(doc, currency),
        "unobservable": _unobservable_note(doc),
        "previous_label": chart_labels[1],
        "year_ago_label": chart_labels[0],
        "findings": doc.get("findings", []),
        "where": where,
        "where_is_url": bool(settings.report.report_url),
        "chart_cid": CHART_CID,
        "chart_caption": chart_caption(doc, currency, chart_labels),
        "pdf_name": attachments[0][3],
        "html_name": attachments[1][3] if len(attachments) > 1 else "",
        "source": doc.get("source") or "",
    }
    env = _jinja()
    text = env.get_template("body.txt.j2").render(**context)
    html = env.get_template("body.html.j2").render(**context)

    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = f"{title} — {chart_labels[2]}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients.to)
    if recipients.cc:
        msg["Cc"] = ", ".join(recipients.cc)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=f"rr-{period.label}", domain=bare(sender).rsplit("@", 1)[1])
    msg["X-Report-Period"] = period.label
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    parts = msg.get_payload()
    assert isinstance(parts, list)  # multipart/alternative: plain text, then HTML
    html_part = parts[1]
    assert isinstance(html_part, MIMEPart)
    chart = chart_png(doc, currency, chart_labels)
    html_part.add_related(chart, maintype="image", subtype="png", cid=f"<{CHART_CID}>",
                          filename="revenue.png", disposition="inline")
    for data, maintype, subtype, name in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def write_eml(msg: EmailMessage, path: Path) -> Path:
    """Write the complete message (RFC 5322, CRLF line ends) atomically; readable by all (0644)."""
    return write_atomic(path, msg.as_bytes(policy=SMTP_POLICY), mode=0o644)
