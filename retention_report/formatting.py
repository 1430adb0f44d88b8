"""How numbers are shown to people: text formatting of KPIs (declared in :mod:`retention_report.kpis`).

Shared by the report notebooks, the findings and the email, so a KPI reads the same everywhere.
Values are the raw metrics.json values (rates as fractions); ``None``/NaN is shown as ``n/a``.

Everything follows the current report language (:mod:`retention_report.i18n`): the words through
gettext, numbers, money, percentages and dates through Babel's locale data (``ru``:
``3 026 360,00 ₽``, ``12,3 %``; ``de``: ``3.026.360,00 €``). Numbers are rounded by Python first
(as ``f"{x:.1f}"`` rounds) and only rendered by Babel, so every language shows the same digits.
English keeps its own explicit layout (``€1,234,568``, ``12.3%``, ``1 Mar 2024``), identical to the
report's before it had languages. Negative numbers take the typographic minus (U+2212) in every
language.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from .i18n import N_, _, get_language, ngettext
from .i18n import locale as _babel_locale
from .kpis import AOV_SPECS, HEADLINE_KPIS, KPI_SPECS, KpiSpec, is_real_change

__all__ = [
    "KpiSpec",
    "KPI_SPECS",
    "AOV_SPECS",
    "HEADLINE_KPIS",
    "kpi_spec",
    "coverage",
    "shorten",
    "shorten_all",
    "Change",
    "change",
    "doc_change",
    "KpiRow",
    "kpi_rows",
    "movement_phrase",
    "fmt_value",
    "fmt_money",
    "fmt_count",
    "fmt_pct",
    "fmt_number",
    "fmt_compact",
    "fmt_date",
    "fmt_month",
    "fmt_datetime",
    "period_title",
    "period_dates",
    "period_subtitle",
    "segment_label",
    "aov_label",
    "report_title",
    "source_label",
    "SAMPLE_SOURCE",
    "SAMPLE_SOURCE_SHORT",
    "is_missing",
    "unobservable_reason",
    "unobservable_keys",
]

_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "RUB": "₽", "INR": "₹"}


# [report] title's default (config.ReportSettings): shown translated; a title of one's own as it is
DEFAULT_TITLE = N_("Sales & customer retention")


# the embedded sample's source name (metrics.json's "source", the marker's record): shown translated
SAMPLE_SOURCE = N_("embedded sample data (synthetic shop, 2021–2024)")
SAMPLE_SOURCE_SHORT = N_("embedded sample data")


def source_label(name: str) -> str:
    """A data source's name for the reader: the embedded sample's in the current language, any
    other (a file, a table, a configured name) as it is."""
    from .secrets import redact

    return _(name) if name in (SAMPLE_SOURCE, SAMPLE_SOURCE_SHORT) else redact(name)


def report_title(title: str) -> str:
    """The report's title for the reader: the default one in the current language, one's own as
    configured."""
    return _(title) if title == DEFAULT_TITLE else title


def _shown_spec(spec: KpiSpec) -> KpiSpec:
    """``spec`` with its label and help in the current language (the constants hold the English
    msgids: the language is set at run time)."""
    return replace(spec, label=_(spec.label), help=_(spec.help))


def kpi_spec(key: str, doc: Any = None) -> KpiSpec:
    """The spec of KPI ``key`` as shown for metrics document ``doc`` (AOV per order or per purchase,
    by ``doc["aov_basis"]``), its label and help in the current language."""
    basis = doc.get("aov_basis") if isinstance(doc, dict) else None
    if basis in AOV_SPECS and key == "aov":
        return _shown_spec(AOV_SPECS[basis])
    if key == "ltv":  # AF counts purchases: the LTV's AOV is per purchase whatever the headline's
        return replace(_shown_spec(KPI_SPECS[key]), help=f"{aov_label('purchase')} × AF × AL")
    return _shown_spec(KPI_SPECS[key])


def aov_label(basis: str | None) -> str:
    """"AOV per order" / "AOV per purchase" (``basis`` ``order``/``purchase``), else "AOV", in the
    current language."""
    spec = AOV_SPECS[basis] if basis in AOV_SPECS else KPI_SPECS["aov"]
    return _(spec.label)


def segment_label(segment: Any) -> str:
    """The name of a frequency segment (``frequent`` → "Frequent (X)") in the current language;
    any other value (from the data) as it is."""
    from .metrics.segments import SEGMENT_LABELS

    key = str(segment)
    return _(SEGMENT_LABELS[key]) if key in SEGMENT_LABELS else key


def coverage(doc: Any, which: str) -> str:
    """How much of reference period ``which`` (``previous_period``/``year_ago_period``) the data
    cover: ``full``, ``partial`` or ``none`` (``full`` for documents that do not say)."""
    info = (doc or {}).get(which) or {}
    value = info.get("coverage") if isinstance(info, dict) else None
    return value if value in ("full", "partial", "none") else "full"


def shorten(text: Any, width: int = 40) -> str:
    """``text`` cut to at most ``width`` characters, ending in "…" when cut (segment values from
    data can be thousands of characters long)."""
    shown = str(text)
    return shown if len(shown) <= width else shown[: width - 1].rstrip() + "…"


def shorten_all(values: Any, width: int = 40) -> list[str]:
    """:func:`shorten` for several values, kept distinct: long values that would collide after the
    cut keep their ends ("start…end"), and get a number when even that collides."""
    values = [str(v) for v in values]
    out = [shorten(v, width) for v in values]

    def clashes(i: int) -> bool:
        return len(values[i]) > width and sum(o == out[i] for o in out) > 1

    for i in [i for i in range(len(out)) if clashes(i)]:
        tail = (width - 1) // 2
        out[i] = values[i][: width - 1 - tail] + "…" + values[i][-tail:]
    numbered: dict[str, int] = {}
    for i in [i for i in range(len(out)) if clashes(i)]:
        numbered[out[i]] = n = numbered.get(out[i], 0) + 1
        suffix = f" #{n}"
        out[i] = values[i][: width - 1 - len(suffix)] + "…" + suffix
    return out


def unobservable_keys(doc: Any, block: str = "kpis") -> list[str]:
    """The KPIs of ``block`` (``kpis``/``previous``/``year_ago``) metrics.json marks unobservable
    (SPEC §4.3: structural, not behavioural, because of the data's span)."""
    found = ((doc or {}).get("unobservable") or {}).get(block) or {}
    return list(found) if isinstance(found, dict) else []


def unobservable_reason(doc: Any, block: str = "kpis", key: str | None = None) -> str | None:
    """"n/a — the data begin 1 Jan 1997, less than the 365-day activity window before the period
    end" in the reader's language, when ``key`` (any key when None) of ``block`` is unobservable;
    else None."""
    keys = unobservable_keys(doc, block)
    if not keys or (key is not None and key not in keys):
        return None
    first = str(((doc or {}).get("data_quality") or {}).get("first_payment") or "")[:10]
    window = ((doc or {}).get("settings") or {}).get("activity_window_days") or 365
    try:
        day = fmt_date(date.fromisoformat(first))
    except ValueError:
        day = first or "?"
    # TRANSLATORS: shown for churn, CRR, lifetime and LTV when the data are too short to see anybody
    # lapse; %(day)s is a date ("1 Jan 1997"), %(days)s the activity window in days (365)
    return _("n/a — the data begin %(day)s, less than the %(days)s-day activity window before the period end") % {
        "day": day, "days": window}


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _symbol(currency: str) -> str:
    return _CURRENCY_SYMBOLS.get(currency.upper(), currency)


def _na() -> str:
    # TRANSLATORS: a value that is missing or cannot be computed (a table cell, a KPI)
    return _("n/a")


@cache
def _pattern(language: str, kind: str, decimals: int) -> Any:
    """The locale's standard ``decimal``/``percent``/``currency`` pattern with exactly ``decimals``
    fraction digits and no scaling (values arrive rounded, percentages already × 100)."""
    loc = _babel_locale(language)
    base = {"decimal": loc.decimal_formats[None], "percent": loc.percent_formats[None],
            "currency": loc.currency_formats["standard"]}[kind]
    p = copy.copy(base)
    p.frac_prec = (decimals, decimals)
    p.scale = 0
    return p


def _render(x: float, decimals: int, kind: str = "decimal", *, group: bool = True, symbol: str = "") -> str:
    """``x`` rounded as Python rounds (``f"{x:.{decimals}f}"``), written with the current locale's
    ``kind`` pattern (``¤`` → ``symbol``); minus signs as U+2212."""
    if not math.isfinite(float(x)):  # an infinite lifetime (no churn): no digits to round
        return ("−" if float(x) < 0 else "") + "∞"
    x = round(float(x), decimals) if decimals else float(round(float(x)))
    text: str = _pattern(get_language(), kind, decimals).apply(
        Decimal(repr(x)), _babel_locale(), group_separator=group)
    return text.replace("¤", symbol).replace("-", "−")


def _money_symbol(currency: str) -> str:
    """The currency's symbol in the current language: Babel's (``₽`` for RUB in Russian), or this
    module's table where Babel knows only the code (``₽`` for RUB in German and English)."""
    if get_language() == "en":
        return _symbol(currency)
    from babel.numbers import get_currency_symbol

    sym = get_currency_symbol(currency.upper(), _babel_locale()) if currency.isalpha() else currency
    return _symbol(currency) if sym.upper() == currency.upper() else sym


def fmt_money(v: Any, currency: str = "EUR", decimals: int | None = None) -> str:
    """``1234567.8`` → ``€1,234,568``; small values keep cents (``€45.60``). In Russian
    ``1 234 568 €``, in German ``1.234.568 €`` (the locale's currency pattern)."""
    if is_missing(v):
        return _na()
    v = float(v)
    if decimals is None:
        decimals = 0 if abs(v) >= 1000 else 2
    sym = _money_symbol(currency)
    if get_language() != "en":
        return _render(v, decimals, "currency", symbol=sym)
    sign = "−" if v < 0 else ""
    text = _render(abs(v), decimals)
    return f"{sign}{sym}{text}" if len(sym) == 1 else f"{sign}{text} {sym}"


def fmt_compact(v: float, currency: str | None = None) -> str:
    """A short number for chart axes and bar labels: ``3.1M``, ``310k``, ``€3.1M`` with a
    ``currency``; in other languages Babel's short compact form (``3,1 млн``, ``3,1 Mio. €``), and
    the plain grouped number where the language has no short form for that size (German
    thousands: ``500.000 €``)."""
    v = float(v)
    if get_language() != "en":
        from babel.numbers import format_compact_decimal

        text = format_compact_decimal(v, format_type="short", fraction_digits=1, locale=_babel_locale())
        if abs(v) < 1000 or not any(c.isalpha() for c in text):
            return fmt_money(v, currency, 0) if currency else fmt_count(v)
        text = text.replace("-", "−")
        return fmt_money(0, currency, 0).replace("0", text, 1) if currency else text
    a = abs(v)
    if a >= 1e9:
        s = f"{v / 1e9:.1f}B"
    elif a >= 1e6:
        s = f"{v / 1e6:.1f}M"
    elif a >= 1e3:
        s = f"{v / 1e3:.0f}k"
    else:
        s = f"{v:.0f}"
    s = s.replace(".0B", "B").replace(".0M", "M").replace("-", "−")
    if not currency:
        return s
    sym = _money_symbol(currency)
    return f"{sym}{s}" if len(sym) == 1 else f"{s} {sym}"


def fmt_count(v: Any) -> str:
    """``12345`` → ``12,345`` (``12 345`` in Russian, ``12.345`` in German)."""
    if is_missing(v):
        return _na()
    return _render(int(round(float(v))), 0)


def fmt_pct(v: Any, decimals: int = 1, group: bool = True) -> str:
    """A fraction as a percent: ``0.1234`` → ``12.3%`` (``12,3 %`` in Russian and German);
    ``group=False``: no thousands separators (``1234.5%``)."""
    if is_missing(v):
        return _na()
    return _render(100 * float(v), decimals, "percent", group=group)


def fmt_number(v: Any, decimals: int = 2) -> str:
    if is_missing(v):
        return _na()
    return _render(float(v), decimals)


def _signed(x: float, decimals: int, kind: str = "decimal") -> str:
    """``+12.3`` / ``−4.0`` (``+0.0`` for zero, ``−0.0`` for a negative that rounds to it) with the
    locale's digits and no thousands separators."""
    r = round(x, decimals)
    sign = "−" if math.copysign(1.0, r) < 0 else "+"
    return sign + _render(abs(r), decimals, kind, group=False)


def fmt_value(key: str, v: Any, currency: str = "EUR") -> str:
    """Format a KPI value by its unit."""
    unit = KPI_SPECS[key].unit if key in KPI_SPECS else "number"
    if unit == "money":
        return fmt_money(v, currency)
    if unit == "count":
        return fmt_count(v)
    if unit == "rate":
        return fmt_pct(v)
    if unit == "days":
        if is_missing(v):
            return _na()
        n = round(float(v))
        return ngettext("%(count)s day", "%(count)s days", n) % {"count": _render(n, 0)}
    if unit == "years":
        # TRANSLATORS: always one decimal (1.0, 2.5): the form used with a fraction
        return _na() if is_missing(v) else _("%(value)s years") % {"value": _render(float(v), 1)}
    return fmt_number(v)


# ---------------------------------------------------------------------------------------- dates

def _as_date(d: Any) -> date:
    if isinstance(d, datetime):
        return d.date()
    if isinstance(d, date):
        return d
    if hasattr(d, "to_pydatetime"):  # pandas Timestamp
        day: date = d.to_pydatetime().date()
        return day
    return date.fromisoformat(str(d)[:10])


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# English keeps the report's own day-month order ("1 Mar 2024"), which no CLDR English locale has
# byte for byte (en: "Mar 1, 2024"; en_GB: "1 Sept 2024"): an explicit pattern with en's month
# names. Babel renders it either way, never strftime, whose month names follow the C library's
# LC_TIME (a process that called locale.setlocale would print "1 März 2024" in English).
_DAY_PATTERN = {"en": "d MMM y"}


def fmt_date(d: Any) -> str:
    """A day: ``1 Mar 2024`` (``1 мар. 2024 г.``, ``1. März 2024``)."""
    from babel.dates import format_date, format_skeleton

    d = _as_date(d)
    pattern = _DAY_PATTERN.get(get_language())
    if pattern:
        return format_date(d, pattern, locale=_babel_locale())
    return format_skeleton("yMMMd", d, locale=_babel_locale())


def fmt_month(d: Any, full: bool = False) -> str:
    """A month: ``Mar 2024``, or ``March 2024`` with ``full`` (``март 2024 г.``, ``März 2024``)."""
    from babel.dates import format_skeleton

    return format_skeleton("yMMMM" if full else "yMMM", _as_date(d), locale=_babel_locale())


def fmt_datetime(t: datetime) -> str:
    """When a report was made: ``01 Mar 2024 14:05 CET`` (the time zone's abbreviation when known)."""
    from babel.dates import format_date, format_skeleton, format_time

    zone = t.strftime("%Z")
    loc = _babel_locale()
    if get_language() == "en":
        return f"{format_date(t, 'dd MMM y', locale=loc)} {t:%H:%M} {zone}".strip()
    return f"{format_skeleton('yMMMd', t, locale=loc)} {format_time(t, 'short', locale=loc)} {zone}".strip()


def _range(start: date, end: date) -> str:
    if get_language() == "en":
        return f"{fmt_date(start)} – {fmt_date(end)}"
    from babel.dates import format_interval

    return format_interval(start, end, "yMMMd", locale=_babel_locale())


def period_title(p: Any) -> str:
    """A :class:`~retention_report.periods.Period`'s name for people in the current language:
    ``Q1 2024``, ``H1 2024``, ``March 2024``, ``Week 5 2024``, ``15 Jan 2024 – 14 Feb 2024``
    (English as :attr:`Period.title <retention_report.periods.Period.title>`)."""
    kind, start, end = getattr(p, "kind", ""), p.start, p.end
    if get_language() == "en" or kind not in ("year", "half", "quarter", "month", "week", "range"):
        return str(p.title)
    if kind == "year":
        return str(start.year)
    if kind == "half":
        # TRANSLATORS: a half-year as a period name, e.g. "H1 2024"
        return _("H%(half)s %(year)s") % {"half": 1 if start.month == 1 else 2, "year": start.year}
    if kind == "quarter":
        from babel.dates import format_skeleton

        return format_skeleton("yQQQ", start, locale=_babel_locale())
    if kind == "month":
        return _cap(fmt_month(start, full=True))
    if kind == "week":
        y, w, _d = start.isocalendar()
        # TRANSLATORS: an ISO week as a period name, e.g. "Week 5 2024"
        return _("Week %(week)s %(year)s") % {"week": w, "year": y}
    return _range(start, end)


def period_dates(p: Any) -> str:
    """The first and last day of period ``p``: ``1 Jan 2024 – 31 Mar 2024`` (in Russian
    ``1 янв. – 31 мар. 2024 г.``)."""
    return _range(p.start, p.end)


def period_subtitle(p: Any) -> str:
    """The dates shown next to a period's title (:func:`period_dates`), or '' when the title
    already is those dates (a custom range: "21 Nov 1997 – 22 Nov 1997" once, not twice)."""
    if getattr(p, "kind", "") == "range":
        return ""
    dates = period_dates(p)
    return "" if dates == period_title(p) else dates


@dataclass(frozen=True)
class Change:
    """The change of a KPI from a reference period to the current one.

    ``absolute`` is current − reference (for rates: in percentage points when shown);
    ``relative`` is absolute / |reference| (None when the reference is 0 or missing);
    ``direction`` is ``up``/``down``/``flat``/``n/a``; ``tone`` is ``good``/``bad``/``neutral``;
    ``real``: significant at 95% and larger than ``report.min_change`` (SPEC §4.6) — only such a
    change has an arrow and a tone other than ``neutral``; the others read "≈ …" (within noise).
    """

    absolute: float | None
    relative: float | None
    direction: str
    tone: str
    text: str
    real: bool = True


def change(key: str, current: Any, reference: Any, currency: str = "EUR", *,
           significant: bool | None = None, min_change: Mapping[str, float] | None = None,
           judged: bool = True) -> Change:
    """Compare ``current`` with ``reference`` for KPI ``key`` and format the change for people.

    ``significant``: whether the change's 95% interval excludes zero (metrics.json ``changes``;
    None when not known). A change that is not significant, or not larger than ``min_change``
    (:func:`retention_report.kpis.is_real_change`), is shown without arrow or colour: "≈ −0.1 pp"
    ("≈ 0.0 pp" when it rounds to nothing, never "−0.0"). ``judged=False`` (a KPI without an interval
    method: refunds, the refund rate, the median days to a second purchase): neither arrow nor "≈",
    the bare signed change — no claim either way."""
    if is_missing(current) or is_missing(reference):
        return Change(None, None, "n/a", "neutral", _na(), False)
    cur, ref = float(current), float(reference)
    absolute = cur - ref
    relative = absolute / abs(ref) if ref != 0 else None
    eps = 1e-12
    direction = "up" if absolute > eps else "down" if absolute < -eps else "flat"
    real = judged and direction != "flat" and is_real_change(key, absolute, ref, significant, min_change)
    good = KPI_SPECS[key].good if key in KPI_SPECS else "neutral"
    if not real or good == "neutral":
        tone = "neutral"
    else:
        tone = "good" if direction == good else "bad"
    unit = KPI_SPECS[key].unit if key in KPI_SPECS else "number"
    arrow = {"up": "▲", "down": "▼", "flat": "≈"}[direction] if real else "≈" if judged else ""

    def signed(x: float, kind: str = "decimal") -> str:
        return _render(0.0, 1, kind, group=False) if not real and round(x, 1) == 0 else _signed(x, 1, kind)

    if unit == "rate":
        # TRANSLATORS: a change of a rate in percentage points, e.g. "+1.2 pp"
        text = f"{arrow} " + _("%(value)s pp") % {"value": signed(100 * absolute)}
    elif relative is not None:
        text = f"{arrow} {signed(100 * relative, 'percent')}"
    else:
        text = f"{arrow} {fmt_value(key, absolute, currency)}"
    return Change(absolute, relative, direction, tone, text.strip().replace("-", "−"), real)


def doc_change(doc: Mapping[str, Any], key: str, block: str, currency: str = "EUR") -> Change:
    """The change of KPI ``key`` from reference ``block`` (``previous``/``year_ago``) of metrics
    document ``doc``, judged by the document's ``changes`` (significance) and
    ``settings.min_change``. In a document with ``changes``, a change without an interval (too few
    customers, or a KPI without an interval method such as the refund rate) is not judged real — and a
    KPI without an interval method is shown without a verdict at all (no arrow, no "≈"); a document
    from before ``changes`` is judged by the size of the change alone."""
    def part(d: Any, name: str) -> Mapping[str, Any]:
        v = d.get(name) if isinstance(d, Mapping) else None
        return v if isinstance(v, Mapping) else {}

    entry = part(part(doc, "changes"), block).get(key)
    significant = entry.get("significant") if isinstance(entry, Mapping) else None
    significant = significant if isinstance(significant, bool) else None
    if significant is None and isinstance(doc.get("changes"), Mapping):
        significant = False  # no interval (too few customers, or none for this KPI): never shown as real
    min_change = {name: float(v) for name, v in part(part(doc, "settings"), "min_change").items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0}
    k, ref = part(doc, "kpis"), part(doc, block)
    judged = not (isinstance(doc.get("changes"), Mapping) and key in KPI_SPECS
                  and KPI_SPECS[key].uncertainty == "none")
    return change(key, k.get(key), ref.get(key), currency, significant=significant, min_change=min_change,
                  judged=judged)


def movement_phrase(value: Any, reference: Any, period_name: str, decimals: int = 1) -> str | None:
    """``up 12.3% on Q4 2023``, ``down 4% on Q1 2023`` (``decimals=0``) or ``flat on Q4 2023``: the
    relative change from ``reference`` to ``value``, for a sentence about an amount (revenue).

    None when there is nothing to compare with: either value missing, or ``reference`` 0. The
    percentage is |value − reference| / |reference|, without thousands separators.
    """
    if is_missing(value) or is_missing(reference) or float(reference) == 0:
        return None
    absolute = float(value) - float(reference)
    if not absolute:
        # TRANSLATORS: part of a sentence about revenue: "Net revenue was €280.00, flat on Q4 2023"
        return _("flat on %(period)s") % {"period": period_name}
    pct = _render(abs(100 * absolute / abs(float(reference))), decimals, "percent", group=False)
    if absolute > 0:
        # TRANSLATORS: part of a sentence about revenue: "…, up 12.3% on Q4 2023"
        return _("up %(percent)s on %(period)s") % {"percent": pct, "period": period_name}
    # TRANSLATORS: part of a sentence about revenue: "…, down 12.3% on Q4 2023"
    return _("down %(percent)s on %(period)s") % {"percent": pct, "period": period_name}


@dataclass(frozen=True)
class KpiRow:
    """One KPI of a headline table: its spec (label, help), the formatted values of the period, the
    previous period and a year ago, and the changes against those two."""

    key: str
    spec: KpiSpec
    value: str
    previous: str
    year_ago: str
    vs_previous: Change
    vs_year_ago: Change

    @property
    def label(self) -> str:
        return self.spec.label


def kpi_rows(doc: Mapping[str, Any], currency: str = "EUR", keys: Sequence[str] = HEADLINE_KPIS) -> list[KpiRow]:
    """The KPI rows of metrics document ``doc`` (its ``kpis``, ``previous`` and ``year_ago``
    blocks), in the order of ``keys``: what the report's KPI table and the email's show.

    Labels follow the document (:func:`kpi_spec`: "AOV per order" / "AOV per purchase"). The rows
    do not look at the reference periods' ``coverage``; the report's table does.
    """
    k = doc["kpis"]
    prev, ago = doc.get("previous") or {}, doc.get("year_ago") or {}
    return [
        KpiRow(
            key=key,
            spec=kpi_spec(key, doc),
            value=fmt_value(key, k.get(key), currency),
            previous=fmt_value(key, prev.get(key), currency),
            year_ago=fmt_value(key, ago.get(key), currency),
            vs_previous=doc_change(doc, key, "previous", currency),
            vs_year_ago=doc_change(doc, key, "year_ago", currency),
        )
        for key in keys
    ]
