"""The report's cover and header: its title, the period's title and dates, the source, the
comparison periods' titles, when it was generated and — for a period the data do not cover to its
end — the incomplete-period notice, in the reader's language (:mod:`retention_report.i18n`). The
HTML template (``templates/report.html.j2``, :func:`retention_report.render.render_html`) shows them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .config import Settings
from .periods import Period

__all__ = ["cover_text"]


def cover_text(settings: Settings, period: Period, doc: dict[str, Any], source_name: str,
               last_payment: str | None) -> dict[str, Any]:
    """The template's ``report`` values for the report of ``period``: ``doc`` is its metrics.json
    document, ``source_name`` the data set's name (shown when the document names none) and
    ``last_payment`` the data's last payment (for the incomplete-period notice)."""
    from . import __version__
    from .formatting import fmt_datetime, period_subtitle, period_title, report_title, source_label
    from .i18n import _, get_language

    return {
        "title": report_title(settings.report.title),
        "kicker": _("Sales & retention report"),
        "period_title": period_title(period),
        "date_range": period_subtitle(period),
        "source": source_label(str(doc.get("source") or source_name)),
        "previous_title": period_title(period.previous()),
        "year_ago_title": period_title(period.year_ago()),
        "generated_at": fmt_datetime(datetime.now().astimezone()),
        "complete": bool(doc.get("complete")),
        "incomplete_text": (
            # TRANSLATORS: %(last)s and %(end)s are ISO dates (2024-03-15)
            _("Incomplete period: the data end on %(last)s, before the period ends on %(end)s. Totals and "
              "rates for this period will still change.") % {"last": str(last_payment)[:10], "end": period.end.isoformat()}
            if last_payment else _("Incomplete period: there are no payments in the data.")
        ),
        "lang": get_language(),
        "version": __version__,
    }
