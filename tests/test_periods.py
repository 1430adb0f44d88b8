"""Tests for ``retention_report.periods`` (SPEC §3). Every expected date is written out by hand."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from retention_report.periods import (
    ACCEPTED_FORMS,
    RELATIVE_FORMS,
    Period,
    PeriodError,
    add_months,
    is_relative,
    month_end,
    month_index,
    month_start,
    months_between,
    parse_period,
    resolve_period,
    today_in,
)

ROOT = Path(__file__).resolve().parents[1]

D = date.fromisoformat

# One representative of each accepted form, used by the tests that loop over every kind.
ONE_OF_EACH_KIND = [
    "2024",
    "2024-H1",
    "2024-H2",
    "2024-Q1",
    "2024-Q4",
    "2024-03",
    "2024-12",
    "2024-W05",
    "2024-W01",
    "2020-W53",
    "2024-01-15..2024-02-14",
    "2024-02-29..2024-03-10",
    "2024-03-01..2024-03-01",
]


def _span(p: Period) -> tuple[str, str, str]:
    return p.label, p.start.isoformat(), p.end.isoformat()


# --------------------------------------------------------------------------------------------
# Parsing: start, end, kind, label, days, title
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "label", "start", "end", "days", "title"),
    [
        # years
        ("2024", "year", "2024", "2024-01-01", "2024-12-31", 366, "2024"),
        ("2023", "year", "2023", "2023-01-01", "2023-12-31", 365, "2023"),
        ("1900", "year", "1900", "1900-01-01", "1900-12-31", 365, "1900"),
        # halves
        ("2024-H1", "half", "2024-H1", "2024-01-01", "2024-06-30", 182, "H1 2024"),
        ("2024-H2", "half", "2024-H2", "2024-07-01", "2024-12-31", 184, "H2 2024"),
        ("2023-H1", "half", "2023-H1", "2023-01-01", "2023-06-30", 181, "H1 2023"),
        # quarters
        ("2024-Q1", "quarter", "2024-Q1", "2024-01-01", "2024-03-31", 91, "Q1 2024"),
        ("2024-Q2", "quarter", "2024-Q2", "2024-04-01", "2024-06-30", 91, "Q2 2024"),
        ("2024-Q3", "quarter", "2024-Q3", "2024-07-01", "2024-09-30", 92, "Q3 2024"),
        ("2024-Q4", "quarter", "2024-Q4", "2024-10-01", "2024-12-31", 92, "Q4 2024"),
        ("2023-Q1", "quarter", "2023-Q1", "2023-01-01", "2023-03-31", 90, "Q1 2023"),
        # months (leap and non-leap February, 30- and 31-day months, December)
        ("2024-03", "month", "2024-03", "2024-03-01", "2024-03-31", 31, "March 2024"),
        ("2024-02", "month", "2024-02", "2024-02-01", "2024-02-29", 29, "February 2024"),
        ("2023-02", "month", "2023-02", "2023-02-01", "2023-02-28", 28, "February 2023"),
        ("2000-02", "month", "2000-02", "2000-02-01", "2000-02-29", 29, "February 2000"),
        ("1900-02", "month", "1900-02", "1900-02-01", "1900-02-28", 28, "February 1900"),
        ("2024-04", "month", "2024-04", "2024-04-01", "2024-04-30", 30, "April 2024"),
        ("2024-01", "month", "2024-01", "2024-01-01", "2024-01-31", 31, "January 2024"),
        ("2024-12", "month", "2024-12", "2024-12-01", "2024-12-31", 31, "December 2024"),
        # ISO weeks (Monday..Sunday), including weeks that straddle a calendar year
        ("2024-W05", "week", "2024-W05", "2024-01-29", "2024-02-04", 7, "Week 5 2024"),
        ("2024-W01", "week", "2024-W01", "2024-01-01", "2024-01-07", 7, "Week 1 2024"),
        ("2024-W52", "week", "2024-W52", "2024-12-23", "2024-12-29", 7, "Week 52 2024"),
        ("2023-W01", "week", "2023-W01", "2023-01-02", "2023-01-08", 7, "Week 1 2023"),
        ("2023-W52", "week", "2023-W52", "2023-12-25", "2023-12-31", 7, "Week 52 2023"),
        ("2021-W01", "week", "2021-W01", "2021-01-04", "2021-01-10", 7, "Week 1 2021"),
        ("2020-W53", "week", "2020-W53", "2020-12-28", "2021-01-03", 7, "Week 53 2020"),
        ("2026-W53", "week", "2026-W53", "2026-12-28", "2027-01-03", 7, "Week 53 2026"),
        ("2025-W01", "week", "2025-W01", "2024-12-30", "2025-01-05", 7, "Week 1 2025"),
        # custom inclusive ranges
        (
            "2024-01-15..2024-02-14",
            "range",
            "2024-01-15..2024-02-14",
            "2024-01-15",
            "2024-02-14",
            31,
            "15 Jan 2024 – 14 Feb 2024",
        ),
        (
            "2024-02-29..2024-03-10",
            "range",
            "2024-02-29..2024-03-10",
            "2024-02-29",
            "2024-03-10",
            11,
            "29 Feb 2024 – 10 Mar 2024",
        ),
        (
            "2024-03-01..2024-03-01",
            "range",
            "2024-03-01..2024-03-01",
            "2024-03-01",
            "2024-03-01",
            1,
            "01 Mar 2024 – 01 Mar 2024",
        ),
        (
            "2023-12-20..2024-01-10",
            "range",
            "2023-12-20..2024-01-10",
            "2023-12-20",
            "2024-01-10",
            22,
            "20 Dec 2023 – 10 Jan 2024",
        ),
    ],
)
def test_parse_every_form(text, kind, label, start, end, days, title):
    p = parse_period(text)
    assert p.kind == kind
    assert p.label == label
    assert str(p) == label
    assert p.start == D(start)
    assert p.end == D(end)
    assert p.days == days
    assert p.title == title


@pytest.mark.parametrize(
    ("text", "date_range"),
    [
        ("2024-Q1", "1 Jan 2024 – 31 Mar 2024"),
        ("2024-02", "1 Feb 2024 – 29 Feb 2024"),
        ("2020-W53", "28 Dec 2020 – 3 Jan 2021"),
        ("2024-01-15..2024-02-14", "15 Jan 2024 – 14 Feb 2024"),
    ],
)
def test_date_range(text, date_range):
    assert parse_period(text).date_range == date_range


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("2024-q1", "2024-Q1"),
        ("2024-q4", "2024-Q4"),
        ("2024-h1", "2024-H1"),
        ("2024-h2", "2024-H2"),
        ("2024-w05", "2024-W05"),
        ("  2024-Q1  ", "2024-Q1"),
        ("\t2024-03\n", "2024-03"),
        (" 2024 ", "2024"),
        (" 2024-w05\n", "2024-W05"),
        ("\n2024-01-15..2024-02-14 ", "2024-01-15..2024-02-14"),
    ],
)
def test_lowercase_and_whitespace_are_accepted(text, label):
    assert parse_period(text).label == label


def test_lowercase_gives_the_same_period():
    assert parse_period("2024-q1") == parse_period("2024-Q1")
    assert parse_period(" 2024-w05 ") == parse_period("2024-W05")


def test_integer_year_is_accepted():
    # papermill's ``-p PERIOD 2024`` hands the notebook an int, not a str.
    p = parse_period(2024)  # type: ignore[arg-type]
    assert _span(p) == ("2024", "2024-01-01", "2024-12-31")


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_label_round_trips(text):
    p = parse_period(text)
    assert parse_period(p.label) == p


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2024-Q5",
        "2024-Q0",
        "2024-H3",
        "2024-H0",
        "2024-13",
        "2024-00",
        "2023-W53",  # 2023 has 52 ISO weeks
        "2024-W53",  # so has 2024
        "2024-W00",
        "2024-W54",
        "2024-W5",
        "2024-02-30..2024-03-01",
        "2023-02-29..2023-03-01",  # 2023 is not a leap year
        "2024-13-01..2024-13-05",
        "2024-03-01..2024-02-01",  # ends before it starts
        "2024-01-02..2024-01-01",
        "",
        "   ",
        "Q1-2024",
        "2024/03",
        "24-Q1",
        "2024-1",
        "2024-Q",
        "2024-",
        "20240301",
        "2024-03-01",  # a single day is written as a range
        "2024-01-15..",
        "..2024-02-14",
        "2024-01-15...2024-02-14",
        "1899",  # before 1900
        "garbage",
        "2024 Q1",
    ],
)
def test_malformed_period_raises_with_accepted_forms(text):
    with pytest.raises(PeriodError) as info:
        parse_period(text)
    msg = str(info.value)
    assert ACCEPTED_FORMS in msg
    for form in ("2024", "2024-H1", "2024-Q1", "2024-03", "2024-W05", ".."):
        assert form in msg
    assert repr(text) in msg  # the message names what was given


def test_none_raises_period_error():
    with pytest.raises(PeriodError, match="2024-W05"):
        parse_period(None)  # type: ignore[arg-type]


def test_period_error_is_a_value_error():
    assert issubclass(PeriodError, ValueError)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2024-13", "month 13 does not exist"),
        ("2024-00", "month 00 does not exist"),
        ("2023-W53", "ISO year 2023 has no week 53"),
        ("2024-W00", "ISO year 2024 has no week 00"),
        ("2024-03-01..2024-02-01", "ends (2024-02-01) before it starts (2024-03-01)"),
        ("1899", "year 1899 is before 1900"),
    ],
)
def test_error_message_explains_the_problem(text, reason):
    with pytest.raises(PeriodError, match="Accepted forms") as info:
        parse_period(text)
    assert reason in str(info.value)


@pytest.mark.slow
def test_importing_periods_does_not_import_heavy_libraries():
    code = (
        "import sys, retention_report.periods; "
        "print(any(m in sys.modules for m in ('ibis','pandas','duckdb')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# Previous period
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2024", "2023", "2023-01-01", "2023-12-31"),
        ("2024-H1", "2023-H2", "2023-07-01", "2023-12-31"),
        ("2024-H2", "2024-H1", "2024-01-01", "2024-06-30"),
        ("2024-Q1", "2023-Q4", "2023-10-01", "2023-12-31"),
        ("2024-Q2", "2024-Q1", "2024-01-01", "2024-03-31"),
        ("2024-Q4", "2024-Q3", "2024-07-01", "2024-09-30"),
        ("2024-01", "2023-12", "2023-12-01", "2023-12-31"),
        ("2024-03", "2024-02", "2024-02-01", "2024-02-29"),
        ("2023-03", "2023-02", "2023-02-01", "2023-02-28"),
        ("2024-05", "2024-04", "2024-04-01", "2024-04-30"),
        ("2024-W05", "2024-W04", "2024-01-22", "2024-01-28"),
        ("2024-W01", "2023-W52", "2023-12-25", "2023-12-31"),
        ("2021-W01", "2020-W53", "2020-12-28", "2021-01-03"),
        ("2020-W53", "2020-W52", "2020-12-21", "2020-12-27"),
        ("2025-W01", "2024-W52", "2024-12-23", "2024-12-29"),
        # custom range of 31 days → the 31 days before
        ("2024-01-15..2024-02-14", "2023-12-15..2024-01-14", "2023-12-15", "2024-01-14"),
        ("2024-02-29..2024-03-10", "2024-02-18..2024-02-28", "2024-02-18", "2024-02-28"),
        ("2024-03-01..2024-03-01", "2024-02-29..2024-02-29", "2024-02-29", "2024-02-29"),
    ],
)
def test_previous(text, label, start, end):
    p = parse_period(text)
    prev = p.previous()
    assert _span(prev) == (label, start, end)
    assert prev.kind == p.kind


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_previous_ends_the_day_before(text):
    p = parse_period(text)
    prev = p.previous()
    assert (p.start - prev.end).days == 1
    if p.kind in ("week", "range"):
        assert prev.days == p.days


# --------------------------------------------------------------------------------------------
# Year-ago period
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2024", "2023", "2023-01-01", "2023-12-31"),
        ("2024-H1", "2023-H1", "2023-01-01", "2023-06-30"),
        ("2024-H2", "2023-H2", "2023-07-01", "2023-12-31"),
        ("2024-Q1", "2023-Q1", "2023-01-01", "2023-03-31"),
        ("2024-Q4", "2023-Q4", "2023-10-01", "2023-12-31"),
        ("2024-02", "2023-02", "2023-02-01", "2023-02-28"),
        ("2025-02", "2024-02", "2024-02-01", "2024-02-29"),
        ("2024-03", "2023-03", "2023-03-01", "2023-03-31"),
        ("2024-01", "2023-01", "2023-01-01", "2023-01-31"),
        # ISO weeks keep their week number
        ("2024-W05", "2023-W05", "2023-01-30", "2023-02-05"),
        ("2024-W01", "2023-W01", "2023-01-02", "2023-01-08"),
        ("2021-W05", "2020-W05", "2020-01-27", "2020-02-02"),
        ("2021-W52", "2020-W52", "2020-12-21", "2020-12-27"),
        # week 53 of a year whose predecessor has only 52 weeks → that year's last week
        ("2020-W53", "2019-W52", "2019-12-23", "2019-12-29"),
        ("2026-W53", "2025-W52", "2025-12-22", "2025-12-28"),
        # custom ranges shift both ends by a calendar year (29 Feb → 28 Feb)
        ("2024-01-15..2024-02-14", "2023-01-15..2023-02-14", "2023-01-15", "2023-02-14"),
        ("2024-02-29..2024-03-10", "2023-02-28..2023-03-10", "2023-02-28", "2023-03-10"),
        ("2024-02-01..2024-02-29", "2023-02-01..2023-02-28", "2023-02-01", "2023-02-28"),
        ("2024-02-29..2024-02-29", "2023-02-28..2023-02-28", "2023-02-28", "2023-02-28"),
        ("2025-02-28..2025-03-01", "2024-02-28..2024-03-01", "2024-02-28", "2024-03-01"),
    ],
)
def test_year_ago(text, label, start, end):
    p = parse_period(text)
    ago = p.year_ago()
    assert _span(ago) == (label, start, end)
    assert ago.kind == p.kind


def test_year_ago_of_week_53_is_a_whole_week_of_the_previous_iso_year():
    p = parse_period("2020-W53")  # 2020-12-28 .. 2021-01-03
    ago = p.year_ago()
    assert ago.days == 7
    assert ago.start.weekday() == 0  # Monday
    assert ago.start.isocalendar()[0] == 2019
    assert ago.end < p.start
    # 53 weeks back (2019 has 52 ISO weeks): roughly a year, not overlapping 2020's week 1.
    assert (p.start - ago.start).days == 53 * 7
    assert ago.end < parse_period("2020-W01").start


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_year_ago_is_about_a_year_earlier(text):
    p = parse_period(text)
    ago = p.year_ago()
    assert 364 - 7 <= (p.start - ago.start).days <= 366 + 7
    assert ago.end < p.start


# --------------------------------------------------------------------------------------------
# shift(n)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n", "label", "start", "end"),
    [
        ("2024", -8, "2016", "2016-01-01", "2016-12-31"),
        ("2024", 1, "2025", "2025-01-01", "2025-12-31"),
        ("2024-H1", -8, "2020-H1", "2020-01-01", "2020-06-30"),
        ("2024-H2", 1, "2025-H1", "2025-01-01", "2025-06-30"),
        ("2024-Q1", -8, "2022-Q1", "2022-01-01", "2022-03-31"),
        ("2024-Q1", -5, "2022-Q4", "2022-10-01", "2022-12-31"),
        ("2024-Q4", 1, "2025-Q1", "2025-01-01", "2025-03-31"),
        ("2024-03", -8, "2023-07", "2023-07-01", "2023-07-31"),
        ("2024-03", -1, "2024-02", "2024-02-01", "2024-02-29"),
        ("2024-03", -13, "2023-02", "2023-02-01", "2023-02-28"),
        ("2024-12", 1, "2025-01", "2025-01-01", "2025-01-31"),
        ("2024-01", -12, "2023-01", "2023-01-01", "2023-01-31"),
        ("2024-W05", -8, "2023-W49", "2023-12-04", "2023-12-10"),
        ("2024-W52", 1, "2025-W01", "2024-12-30", "2025-01-05"),
        ("2020-W52", 1, "2020-W53", "2020-12-28", "2021-01-03"),
        ("2020-W53", 1, "2021-W01", "2021-01-04", "2021-01-10"),
        ("2024-01-15..2024-02-14", -8, "2023-05-12..2023-06-11", "2023-05-12", "2023-06-11"),
        ("2024-01-15..2024-02-14", 1, "2024-02-15..2024-03-16", "2024-02-15", "2024-03-16"),
        ("2024-03-01..2024-03-01", -3, "2024-02-27..2024-02-27", "2024-02-27", "2024-02-27"),
    ],
)
def test_shift(text, n, label, start, end):
    shifted = parse_period(text).shift(n)
    assert _span(shifted) == (label, start, end)


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_shift_minus_one_is_previous(text):
    p = parse_period(text)
    assert p.shift(-1) == p.previous()


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_shift_zero_is_identity(text):
    p = parse_period(text)
    assert p.shift(0) == p


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
@pytest.mark.parametrize("n", [1, 2, 5, 8, 53])
def test_shift_there_and_back_is_identity(text, n):
    p = parse_period(text)
    assert p.shift(n).shift(-n) == p
    assert p.shift(-n).shift(n) == p


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_shift_minus_eight_is_eight_previous_steps(text):
    # The trend charts walk back ``trend_periods`` periods: repeated previous() must agree.
    p = parse_period(text)
    q = p
    for _ in range(8):
        q = q.previous()
    assert p.shift(-8) == q


@pytest.mark.parametrize("text", ONE_OF_EACH_KIND)
def test_trend_periods_are_contiguous_and_same_kind(text):
    p = parse_period(text)
    trend = [p.shift(-k) for k in range(8, -1, -1)]
    assert trend[-1] == p
    for earlier, later in zip(trend, trend[1:], strict=False):
        assert earlier.kind == later.kind == p.kind
        assert (later.start - earlier.end).days == 1
        assert parse_period(earlier.label) == earlier


@pytest.mark.parametrize(
    ("text", "n"),
    [("2024-Q1", -4), ("2024-03", -12), ("2024-H2", -2), ("2024", -1)],
)
def test_year_ago_of_calendar_periods_is_a_shift(text, n):
    p = parse_period(text)
    assert p.year_ago() == p.shift(n)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "day", "inside"),
    [
        ("2024-Q1", "2024-01-01", True),
        ("2024-Q1", "2024-03-31", True),
        ("2024-Q1", "2024-04-01", False),
        ("2024-Q1", "2023-12-31", False),
        ("2024-02", "2024-02-29", True),
        ("2020-W53", "2021-01-03", True),
        ("2020-W53", "2021-01-04", False),
        ("2024-01-15..2024-02-14", "2024-01-15", True),
        ("2024-01-15..2024-02-14", "2024-02-14", True),
        ("2024-01-15..2024-02-14", "2024-01-14", False),
    ],
)
def test_bounds(text, day, inside):
    p = parse_period(text)
    assert (p.start <= D(day) <= p.end) is inside


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-Q1", {"period": "2024-Q1", "start": "2024-01-01", "end": "2024-03-31"}),
        ("2020-W53", {"period": "2020-W53", "start": "2020-12-28", "end": "2021-01-03"}),
        (
            "2024-01-15..2024-02-14",
            {"period": "2024-01-15..2024-02-14", "start": "2024-01-15", "end": "2024-02-14"},
        ),
    ],
)
def test_to_dict(text, expected):
    assert parse_period(text).to_dict() == expected


def test_period_is_frozen_and_hashable():
    p = parse_period("2024-Q1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.start = D("2024-02-01")  # type: ignore[misc]
    assert {p, parse_period("2024-q1")} == {p}


def test_periods_sort_by_start():
    labels = ["2024-Q2", "2023-Q4", "2024-Q1"]
    assert [p.label for p in sorted(parse_period(x) for x in labels)] == [
        "2023-Q4",
        "2024-Q1",
        "2024-Q2",
    ]


# --------------------------------------------------------------------------------------------
# Periods at the edges of the calendar (issue 12): one clear error, never an OverflowError
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["9999-W52", "9999", "9999-H2", "9999-Q4", "9999-12", "2024-01-01..9999-12-31", "0001-01-01..0001-01-05",
     "1899-12-01..1899-12-31", "1900-01-01..9000-12-31"],
)
def test_periods_whose_neighbours_cannot_be_computed_are_rejected(text):
    with pytest.raises(PeriodError, match="Accepted forms") as info:
        parse_period(text)
    assert repr(text) in str(info.value)
    assert "1900" in str(info.value) and "9998" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("text", ["9999-W52", "2024-01-01..9999-12-31", "0001-01-01..0001-01-05"])
def test_check_period_at_the_edges_is_one_line_exit_2(text):
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "check-period", text],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["9998", "9998-W52", "9998-12", "1900", "1900-01-01..1900-01-31"])
def test_the_last_and_first_supported_years_still_work(text):
    p = parse_period(text)
    p.previous(), p.year_ago(), p.shift(1), p.shift(-23)  # all computable


# ------------------------------------------------------------------------------ month arithmetic

@pytest.mark.parametrize(
    "d, n, expected",
    [
        ("2024-01-31", 1, "2024-02-29"),  # clamped to the shorter month (leap year)
        ("2023-01-31", 1, "2023-02-28"),
        ("2024-03-31", -1, "2024-02-29"),
        ("2024-12-15", 1, "2025-01-15"),  # December → January
        ("2025-01-15", -1, "2024-12-15"),  # January → December
        ("2024-02-29", -12, "2023-02-28"),
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-05-31", -3, "2024-02-29"),
        ("2024-05-31", -15, "2023-02-28"),
        ("2024-08-31", 0, "2024-08-31"),
        ("2024-01-01", 25, "2026-02-01"),
        ("9999-11-30", 1, "9999-12-30"),
        ("0001-02-28", -1, "0001-01-28"),
    ],
)
def test_add_months(d, n, expected):
    assert add_months(D(d), n) == D(expected)


@pytest.mark.parametrize("d, n", [("9999-12-01", 1), ("0001-01-31", -1)])
def test_add_months_outside_the_calendar_raises(d, n):
    with pytest.raises(ValueError):
        add_months(D(d), n)


@pytest.mark.parametrize(
    "a, b, months",
    [
        ("2024-01-31", "2024-02-01", 1),  # the days do not count
        ("2024-01-01", "2024-01-31", 0),
        ("2023-12-31", "2024-01-01", 1),
        ("2024-03-15", "2023-03-15", -12),
        ("2021-01-01", "2024-12-31", 47),
    ],
)
def test_months_between(a, b, months):
    assert months_between(D(a), D(b)) == months


@pytest.mark.parametrize(
    "d, index, start, end",
    [
        ("2024-02-10", 2024 * 12 + 1, "2024-02-01", "2024-02-29"),
        ("2023-12-31", 2023 * 12 + 11, "2023-12-01", "2023-12-31"),
        ("2024-01-01", 2024 * 12, "2024-01-01", "2024-01-31"),
        ("9999-12-05", 9999 * 12 + 11, "9999-12-01", "9999-12-31"),  # no next month to count back from
    ],
)
def test_month_index_start_and_end(d, index, start, end):
    assert month_index(D(d)) == index
    assert month_start(index) == D(start)
    assert month_end(D(d)) == D(end)


# ------------------------------------------------------------------------------ relative periods
# last-* is the latest *complete* period before today, this-* the current (incomplete) one; both
# resolve to the concrete label. "Today" is the date in the report time zone (resolve_period).

@pytest.mark.parametrize(
    ("text", "today", "label", "start", "end"),
    [
        # months: across the year boundary, from the 1st and the last day, into a leap February
        ("last-month", "2026-01-10", "2025-12", "2025-12-01", "2025-12-31"),
        ("last-month", "2026-01-01", "2025-12", "2025-12-01", "2025-12-31"),
        ("last-month", "2026-03-01", "2026-02", "2026-02-01", "2026-02-28"),
        ("last-month", "2024-03-31", "2024-02", "2024-02-01", "2024-02-29"),
        ("last-month", "2026-11-23", "2026-10", "2026-10-01", "2026-10-31"),
        # quarters
        ("last-quarter", "2026-11-23", "2026-Q3", "2026-07-01", "2026-09-30"),
        ("last-quarter", "2026-01-01", "2025-Q4", "2025-10-01", "2025-12-31"),
        ("last-quarter", "2026-03-31", "2025-Q4", "2025-10-01", "2025-12-31"),
        ("last-quarter", "2026-04-01", "2026-Q1", "2026-01-01", "2026-03-31"),
        # halves
        ("last-half", "2026-07-01", "2026-H1", "2026-01-01", "2026-06-30"),
        ("last-half", "2026-06-30", "2025-H2", "2025-07-01", "2025-12-31"),
        ("last-half", "2026-01-01", "2025-H2", "2025-07-01", "2025-12-31"),
        # years
        ("last-year", "2026-01-01", "2025", "2025-01-01", "2025-12-31"),
        ("last-year", "2026-12-31", "2025", "2025-01-01", "2025-12-31"),
        # ISO weeks (Monday..Sunday): 2020 and 2015 have a week 53, 2025 has not
        ("last-week", "2021-01-06", "2020-W53", "2020-12-28", "2021-01-03"),
        ("last-week", "2021-01-04", "2020-W53", "2020-12-28", "2021-01-03"),
        ("last-week", "2021-01-03", "2020-W52", "2020-12-21", "2020-12-27"),  # a Sunday: W53 is current
        ("last-week", "2016-01-10", "2015-W53", "2015-12-28", "2016-01-03"),
        ("last-week", "2026-01-01", "2025-W52", "2025-12-22", "2025-12-28"),
        ("last-week", "2026-11-23", "2026-W47", "2026-11-16", "2026-11-22"),
        # the current, incomplete periods
        ("this-month", "2026-11-23", "2026-11", "2026-11-01", "2026-11-30"),
        ("this-month", "2024-02-29", "2024-02", "2024-02-01", "2024-02-29"),
        ("this-quarter", "2026-01-01", "2026-Q1", "2026-01-01", "2026-03-31"),
        ("this-quarter", "2026-12-31", "2026-Q4", "2026-10-01", "2026-12-31"),
        ("this-quarter", "2026-11-23", "2026-Q4", "2026-10-01", "2026-12-31"),
        ("this-year", "2026-11-23", "2026", "2026-01-01", "2026-12-31"),
        ("this-year", "2027-01-01", "2027", "2027-01-01", "2027-12-31"),
    ],
)
def test_relative_periods_resolve_to_the_concrete_period(text, today, label, start, end):
    p = parse_period(text, today=D(today))
    assert _span(p) == (label, start, end)
    assert p == parse_period(label)  # the same period as its label: folders and titles use it
    assert resolve_period(text, as_of=D(today)) == p


def test_every_relative_form_resolves_and_is_listed():
    assert set(RELATIVE_FORMS) == {"last-week", "last-month", "last-quarter", "last-half", "last-year",
                                   "this-month", "this-quarter", "this-year"}
    for form in RELATIVE_FORMS:
        assert form in ACCEPTED_FORMS
        p = parse_period(form, today=D("2026-11-23"))
        assert "last" not in p.label and "this" not in p.label
        assert p.end < D("2026-11-23") if form.startswith("last-") else p.start <= D("2026-11-23") <= p.end


@pytest.mark.parametrize(("text", "label"), [(" Last-Month ", "2026-10"), ("THIS-YEAR", "2026"), ("last-quarter\n", "2026-Q3")])
def test_relative_forms_ignore_case_and_whitespace(text, label):
    assert parse_period(text, today=D("2026-11-23")).label == label


@pytest.mark.parametrize("text", ["last-decade", "next-month", "last-months", "last month", "last-", "this-week",
                                  "this-half", "previous-month", "last-2-months"])
def test_unknown_relative_forms_list_the_accepted_forms(text):
    with pytest.raises(PeriodError) as info:
        parse_period(text, today=D("2026-11-23"))
    msg = str(info.value)
    assert repr(text) in msg and ACCEPTED_FORMS in msg
    assert "last-quarter" in msg and "this-month" in msg and "2024-W05" in msg


def test_a_relative_period_needs_a_today():
    with pytest.raises(PeriodError, match="relative"):
        parse_period("last-month")


def test_relative_periods_outside_the_supported_years_are_rejected():
    with pytest.raises(PeriodError, match="1900"):
        parse_period("last-year", today=D("1900-06-01"))
    assert parse_period("last-year", today=D("1901-01-01")).label == "1900"


# "today" is the date in the report time zone at an aware instant (the clock is injected)

@pytest.mark.parametrize(
    ("tz", "now", "today"),
    [
        # 21:30 UTC on 31 October is 00:30 on 1 November in Moscow (UTC+3): already the new month
        ("Europe/Moscow", datetime(2026, 10, 31, 21, 30, tzinfo=UTC), "2026-11-01"),
        ("UTC", datetime(2026, 10, 31, 21, 30, tzinfo=UTC), "2026-10-31"),
        # the same instant given in Moscow time
        ("Europe/Moscow", datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("Europe/Moscow")), "2026-11-01"),
        ("UTC", datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("Europe/Moscow")), "2026-10-31"),
        # 03:00 UTC on New Year's Day is still 31 December in New York
        ("America/New_York", datetime(2026, 1, 1, 3, 0, tzinfo=UTC), "2025-12-31"),
    ],
)
def test_today_is_the_date_in_the_report_time_zone(tz, now, today):
    assert today_in(tz, now) == D(today)


def test_a_run_at_half_past_midnight_in_moscow_on_the_first_is_in_the_new_month():
    now = datetime(2026, 10, 31, 21, 30, tzinfo=UTC)  # 2026-11-01 00:30 in Moscow
    assert _span(resolve_period("last-month", "Europe/Moscow", now=now)) == ("2026-10", "2026-10-01", "2026-10-31")
    assert resolve_period("this-month", "Europe/Moscow", now=now).label == "2026-11"
    # the same instant for a report kept in UTC: still October
    assert _span(resolve_period("last-month", "UTC", now=now)) == ("2026-09", "2026-09-01", "2026-09-30")
    assert resolve_period("this-month", now=now).label == "2026-10"  # UTC is the default time zone


def test_new_year_in_new_york_is_not_yet_new_year():
    now = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    assert resolve_period("last-year", "America/New_York", now=now).label == "2024"
    assert resolve_period("last-year", "UTC", now=now).label == "2025"
    assert resolve_period("last-week", "America/New_York", now=now).label == "2025-W52"  # Wed 31 Dec: W01 runs


def test_as_of_fixes_today_and_concrete_periods_ignore_the_clock():
    now = datetime(2030, 5, 5, 12, 0, tzinfo=UTC)
    assert resolve_period("last-quarter", "Europe/Moscow", as_of=D("2026-11-23"), now=now).label == "2026-Q3"
    assert resolve_period("2024-Q1", "Europe/Moscow", now=now) == parse_period("2024-Q1")
    assert resolve_period("2024-Q1") == parse_period("2024-Q1")


def test_the_clock_must_be_time_zone_aware():
    with pytest.raises(ValueError, match="aware"):
        today_in("UTC", datetime(2026, 11, 1, 0, 30))


def test_today_without_a_clock_is_the_system_clock_in_the_zone():
    before = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    got = today_in("Pacific/Kiritimati")
    after = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert before <= got <= after


@pytest.mark.parametrize(("text", "relative"), [("last-month", True), (" This-Year ", True), ("2024-Q1", False),
                                                ("last-decade", False), ("", False)])
def test_is_relative(text, relative):
    assert is_relative(text) is relative
