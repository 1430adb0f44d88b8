"""Report periods: parsing ``PERIOD`` strings and finding the previous and year-ago periods.

Accepted forms (SPEC §3)::

    2024                      year
    2024-H1                   half year (H1, H2)
    2024-Q1                   quarter (Q1..Q4)
    2024-03                   month
    2024-W05                  ISO week (Monday..Sunday)
    2024-01-15..2024-02-14    custom range, both ends inclusive
    last-month                relative: last-week, last-month, last-quarter, last-half, last-year
    this-month                relative: this-month, this-quarter, this-year

A relative form names a period by its place in the calendar on a given day, *today* — in the
report time zone (:func:`resolve_period`), or fixed with ``--as-of`` for reproducible runs. It
resolves to the concrete period before anything runs, so folders, titles and metrics.json only
ever see the concrete label: ``last-quarter`` on 23 November 2026 is ``2026-Q3``. ``last-*`` is
the latest *complete* period before today (``last-week`` on Wednesday 6 January 2021 is
``2020-W53``); ``this-*`` is the current one, which is still incomplete (the report says so, as
for any period that ends after the data).

Every period knows its *previous* period (same length, immediately before) and its *year-ago*
period. For calendar periods "same length" means the same calendar unit (the month before March is
February); for custom ranges it means the same number of days.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = [
    "ACCEPTED_FORMS",
    "Period",
    "PeriodError",
    "RELATIVE_FORMS",
    "add_months",
    "is_relative",
    "month_end",
    "month_index",
    "month_start",
    "months_between",
    "parse_period",
    "resolve_period",
    "today_in",
]

Kind = Literal["year", "half", "quarter", "month", "week", "range"]

# relative form → (calendar kind, steps from the period holding today: -1 last complete, 0 current)
_RELATIVE: dict[str, tuple[Kind, int]] = {
    "last-week": ("week", -1),
    "last-month": ("month", -1),
    "last-quarter": ("quarter", -1),
    "last-half": ("half", -1),
    "last-year": ("year", -1),
    "this-month": ("month", 0),
    "this-quarter": ("quarter", 0),
    "this-year": ("year", 0),
}
RELATIVE_FORMS = tuple(_RELATIVE)

ACCEPTED_FORMS = (
    "2024 (year), 2024-H1 (half), 2024-Q1 (quarter), 2024-03 (month), "
    "2024-W05 (ISO week), 2024-01-15..2024-02-14 (inclusive date range), "
    "last-week, last-month, last-quarter, last-half, last-year (the latest complete period) "
    "and this-month, this-quarter, this-year (the current, incomplete period)"
)

# Supported dates: every period, its previous, next and year-ago periods and the trend periods
# before it (up to TREND_STEPS) must be real dates; payment data does not reach outside these years.
FIRST_YEAR, LAST_YEAR = 1900, 9998
TREND_STEPS = 24

# Number of months in each calendar kind.
_MONTHS = {"year": 12, "half": 6, "quarter": 3, "month": 1}


class PeriodError(ValueError):
    """A PERIOD string that is not one of the accepted forms."""


# ------------------------------------------------------------------------------ month arithmetic
# The one place where calendar months are counted (periods, cohorts, segments, LTV); the metric
# modules' engine-side twin of month_index is retention_report.metrics._common.month_number.

def month_index(d: date) -> int:
    """The running number of ``d``'s month, ``year × 12 + month − 1``: consecutive months differ
    by 1, so ``month_index(b) − month_index(a)`` counts calendar months (:func:`months_between`)."""
    return d.year * 12 + d.month - 1


def month_start(index: int) -> date:
    """The first day of the month with running number ``index`` (the inverse of :func:`month_index`)."""
    year, month0 = divmod(index, 12)
    return date(year, month0 + 1, 1)


def month_end(d: date) -> date:
    """The last day of ``d``'s month (also in December 9999, which has no next month)."""
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def add_months(d: date, n: int) -> date:
    """The same day ``n`` calendar months later (earlier when ``n`` is negative), clamped to the
    last day of a shorter month: 31 January + 1 → 29 February 2024; 29 February − 12 → 28 February.

    Raises ValueError when the result is outside the years 1–9999.
    """
    first = month_start(month_index(d) + n)
    return first.replace(day=min(d.day, calendar.monthrange(first.year, first.month)[1]))


def months_between(a: date, b: date) -> int:
    """Calendar months from ``a``'s month to ``b``'s (the days are ignored): 31 January → 1 February
    is 1, and negative when ``b``'s month is before ``a``'s."""
    return month_index(b) - month_index(a)


@dataclass(frozen=True, order=True)
class Period:
    """An inclusive date range with a kind and a label.

    Attributes
    ----------
    start, end
        First and last day, inclusive.
    kind
        ``year``, ``half``, ``quarter``, ``month``, ``week`` or ``range``.
    label
        The canonical ``PERIOD`` string (``2024-Q1``); it names the output folder.
    """

    start: date
    end: date
    kind: Kind
    label: str

    @property
    def days(self) -> int:
        """Number of days in the period, both ends included."""
        return (self.end - self.start).days + 1

    @property
    def title(self) -> str:
        """Human-readable name, e.g. ``Q1 2024`` or ``15 Jan 2024 – 14 Feb 2024``."""
        if self.kind == "year":
            return str(self.start.year)
        if self.kind == "half":
            return f"H{1 if self.start.month == 1 else 2} {self.start.year}"
        if self.kind == "quarter":
            return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year}"
        if self.kind == "month":
            return self.start.strftime("%B %Y")
        if self.kind == "week":
            y, w, _ = self.start.isocalendar()
            return f"Week {w} {y}"
        return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"

    @property
    def date_range(self) -> str:
        """``1 Jan 2024 – 31 Mar 2024``."""
        return f"{self.start.day} {self.start:%b %Y} – {self.end.day} {self.end:%b %Y}"

    def shift(self, n: int) -> Period:
        """The period ``n`` steps later (negative: earlier), of the same kind and length."""
        if n == 0:
            return self
        if self.kind in _MONTHS:
            start = add_months(self.start, _MONTHS[self.kind] * n)
            return _calendar(self.kind, start, month_end(add_months(start, _MONTHS[self.kind] - 1)))
        if self.kind == "week":
            start = self.start + timedelta(weeks=n)
            return _calendar("week", start, start + timedelta(days=6))
        start = self.start + timedelta(days=self.days * n)
        return _range(start, start + timedelta(days=self.days - 1))

    def previous(self) -> Period:
        """The period of the same length immediately before this one."""
        return self.shift(-1)

    def year_ago(self) -> Period:
        """The same period one year earlier.

        Calendar periods map to the same unit a year before (``2024-Q1`` → ``2023-Q1``); ISO weeks
        to the same week number of the previous ISO year (week 53 of a year whose predecessor has
        none maps to that year's last week, 52: ``2020-W53`` → ``2019-W52``, just as 29 February
        maps to 28 February); custom ranges shift both ends by one calendar year.
        """
        if self.kind in _MONTHS:
            return self.shift(-12 // _MONTHS[self.kind])
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            try:
                start = date.fromisocalendar(year - 1, week, 1)
            except ValueError:  # week 53; every ISO year has a week 52
                start = date.fromisocalendar(year - 1, 52, 1)
            return _calendar("week", start, start + timedelta(days=6))
        return _range(add_months(self.start, -12), add_months(self.end, -12))  # 29 Feb → 28 Feb

    def to_dict(self) -> dict[str, str]:
        return {"period": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}

    def __str__(self) -> str:
        return self.label


def _calendar(kind: Kind, start: date, end: date) -> Period:
    if kind == "year":
        label = f"{start.year}"
    elif kind == "half":
        label = f"{start.year}-H{1 if start.month == 1 else 2}"
    elif kind == "quarter":
        label = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    elif kind == "month":
        label = f"{start.year}-{start.month:02d}"
    else:
        y, w, _ = start.isocalendar()
        label = f"{y}-W{w:02d}"
    return Period(start, end, kind, label)


def _range(start: date, end: date) -> Period:
    return Period(start, end, "range", f"{start.isoformat()}..{end.isoformat()}")


_PATTERNS = [
    ("range", re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")),
    ("year", re.compile(r"^(\d{4})$")),
    ("half", re.compile(r"^(\d{4})-H([12])$", re.I)),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$", re.I)),
    ("month", re.compile(r"^(\d{4})-(\d{2})$")),
    ("week", re.compile(r"^(\d{4})-W(\d{2})$", re.I)),
]


def parse_period(text: str, today: date | None = None) -> Period:
    """Parse a ``PERIOD`` string into a :class:`Period`.

    ``today`` is the day a relative form (``last-month``, ``this-quarter`` …) is taken from; the
    concrete forms ignore it. :func:`resolve_period` finds it from the report time zone.

    Raises
    ------
    PeriodError
        When the text is not one of :data:`ACCEPTED_FORMS`, or names a date that does not exist
        (``2024-13``, ``2023-W53``, ``2024-02-30..2024-03-01``), a range that ends before it
        starts, or dates outside 1900–9998 (or whose previous, next, year-ago or trend periods
        are); or is a relative form and no ``today`` is given. The message repeats the accepted
        forms.
    """
    raw = text
    text = "" if text is None else str(text).strip()  # papermill may pass PERIOD=2024 as an int
    relative = _RELATIVE.get(text.lower())
    if relative is not None:
        if today is None:
            raise PeriodError(f"PERIOD {raw!r} is relative: it needs the day it is relative to "
                              f"(resolve_period(), or --as-of on the command line)")
        try:
            return _check_range(_current(relative[0], today).shift(relative[1]))
        except (ValueError, OverflowError) as exc:
            raise PeriodError(f"PERIOD {raw!r} on {today} is not a valid period: {exc}. "
                              f"Accepted forms: {ACCEPTED_FORMS}.") from None
    for kind, pattern in _PATTERNS:
        m = pattern.match(text)
        if not m:
            continue
        try:
            return _check_range(_build(kind, m))
        except (ValueError, OverflowError) as exc:
            raise PeriodError(f"PERIOD {raw!r} is not a valid period: {exc}. "
                              f"Accepted forms: {ACCEPTED_FORMS}.") from None
    raise PeriodError(f"PERIOD {raw!r} is not a recognised period. Accepted forms: {ACCEPTED_FORMS}.")


def is_relative(text: str) -> bool:
    """Whether ``text`` is one of :data:`RELATIVE_FORMS` (case and surrounding blanks ignored)."""
    return str(text).strip().lower() in _RELATIVE


def today_in(tz: str, now: datetime | None = None) -> date:
    """The date it is in the time zone ``tz`` (an IANA name such as ``Europe/Moscow``) at the
    instant ``now`` — a time-zone-aware datetime; the system clock when None.

    At 21:30 UTC on 31 October it is already 1 November in Moscow (UTC+3): a report scheduled
    for 00:30 there on the 1st runs in the new month.

    Raises ValueError when ``now`` is naive (its instant would be a guess).
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be time-zone-aware, got the naive {now.isoformat()}")
    return now.astimezone(ZoneInfo(tz)).date()


def resolve_period(text: str, tz: str = "UTC", *, as_of: date | None = None,
                   now: datetime | None = None) -> Period:
    """Parse ``text`` as :func:`parse_period` does, taking a relative form from today: ``as_of``
    when given (a fixed day, for reproducible runs and tests), else the date in the report time
    zone ``tz`` (``Settings.timezone``) at the aware instant ``now`` (:func:`today_in`; the system
    clock when None).

    Raises PeriodError as :func:`parse_period` does.
    """
    if not is_relative(text):
        return parse_period(text)
    return parse_period(text, today=as_of if as_of is not None else today_in(tz, now))


def _current(kind: Kind, today: date) -> Period:
    """The calendar period of ``kind`` (year, half, quarter, month or week) holding ``today``."""
    if kind == "week":
        start = today - timedelta(days=today.weekday())
        return _calendar("week", start, start + timedelta(days=6))
    months = _MONTHS[kind]
    start = date(today.year, (today.month - 1) // months * months + 1, 1)
    return _calendar(kind, start, month_end(add_months(start, months - 1)))


def _check_range(p: Period) -> Period:
    """``p`` if it and the periods a report compares it with are computable dates in the supported
    years; otherwise ValueError (``9999-W52`` has no next week, ``0001-01-01..0001-01-05`` no
    previous period)."""
    bounds = f"periods must lie between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31"
    if p.start.year < FIRST_YEAR or p.end.year > LAST_YEAR:
        raise ValueError(bounds)
    try:
        neighbours = [p.shift(1), p.previous(), p.year_ago(), p.shift(-(TREND_STEPS - 1))]
    except (ValueError, OverflowError):
        raise ValueError(f"its previous, next or year-ago periods fall outside the calendar ({bounds})") from None
    if any(q.start.year < 1 for q in neighbours):  # pragma: no cover - date() cannot go below year 1
        raise ValueError(bounds)
    return p


def _build(kind: str, m: re.Match[str]) -> Period:
    if kind == "range":
        start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        if end < start:
            raise ValueError(f"the range ends ({end}) before it starts ({start})")
        return _range(start, end)
    year = int(m[1])
    if year < FIRST_YEAR:
        raise ValueError(f"year {year} is before {FIRST_YEAR}")
    if year > LAST_YEAR:
        raise ValueError(f"year {year} is after {LAST_YEAR} (periods must lie between {FIRST_YEAR} and {LAST_YEAR})")
    if kind == "year":
        return _calendar("year", date(year, 1, 1), date(year, 12, 31))
    if kind == "half":
        h = int(m[2])
        return _calendar("half", date(year, 6 * h - 5, 1), month_end(date(year, 6 * h, 1)))
    if kind == "quarter":
        q = int(m[2])
        return _calendar("quarter", date(year, 3 * q - 2, 1), month_end(date(year, 3 * q, 1)))
    if kind == "month":
        month = int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"month {month:02d} does not exist")
        return _calendar("month", date(year, month, 1), month_end(date(year, month, 1)))
    week = int(m[2])
    try:
        start = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"ISO year {year} has no week {week:02d}") from None
    return _calendar("week", start, start + timedelta(days=6))
