"""Mapping the source's columns to the canonical ones and converting them: ids and segment values
to text, ``paid_at`` to a report-zone timestamp, amounts and costs to float64 (text in a CSV
dialect, NaN and infinity as NULL so validation catches them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..config import Settings
from .model import NONE_SEGMENT, ROLE_COLUMNS, DataError
from .sources import delimiter_hint, source_kind

__all__ = ["column_mapping", "check_columns", "convert"]


def column_mapping(settings: Settings) -> dict[str, str]:
    """canonical name -> source column name, for the roles and segments in use."""
    cols = settings.columns
    m = {"customer_id": cols.customer_id, "paid_at": cols.paid_at, "amount": cols.amount}
    if cols.order_id:
        m["order_id"] = cols.order_id
    if cols.cost:
        m["cost"] = cols.cost
    if cols.payment_id:
        m["payment_id"] = cols.payment_id
    for s in cols.segments:
        if s in ROLE_COLUMNS:
            raise DataError(f"segment column {s!r} clashes with a canonical column name")
        m[s] = s
    return m


def check_columns(raw: ir.Table, mapping: dict[str, str], settings: Settings | None = None) -> None:
    available = list(raw.columns)
    missing = [(canon, src) for canon, src in mapping.items() if src not in available]
    if missing:
        parts = [
            f"{src!r}" + (f" (mapped to {canon})" if canon != src else "") for canon, src in missing
        ]
        hint = ""
        if settings is not None and settings.source.path and source_kind(settings) == "csv":
            hint = delimiter_hint(settings.source.path, settings)
        shown = [a if len(a) <= 60 else a[:57] + "…" for a in available[:50]]
        more = f" and {len(available) - 50} more" if len(available) > 50 else ""
        raise DataError(
            (f"{hint}. " if hint else "")
            + f"missing column(s) {', '.join(parts)} in the source; available columns: {shown}{more}. "
            "Map your column names in the [columns] section of the config."
        )


def _try_cast(col: ir.Value, to: str | dt.DataType, lenient: bool) -> ir.Value:
    """TRY_CAST where the engine has it (DuckDB, PostgreSQL via Ibis, Spark); a plain cast
    elsewhere (SQLite's CAST already yields NULL/0 instead of failing)."""
    return col.try_cast(to) if lenient else col.cast(to)


# Ibis has no type information: its decorator for engine built-ins, typed here (what it makes
# builds an Ibis expression when called)
_builtin: Callable[..., Callable[[Callable[..., object]], Callable[..., ir.Value]]] = ibis.udf.scalar.builtin


@_builtin(name="isfinite")
def _isfinite(x: float) -> bool:  # type: ignore[empty-body]
    """DuckDB's ISFINITE."""


def _not_finite(x: ir.FloatingValue, backend: str) -> ir.BooleanValue:
    """NaN, +inf or -inf: values a float column or a text "NaN"/"inf" can hold that are no amount
    of money (one NaN would turn every sum into NaN, one inf every total into inf).

    DuckDB: ``NOT isfinite(x)``. DuckDB 2.0 folds ``isnan(x)`` and ``isinf(x)`` to false from a
    Parquet file's min/max statistics, which leave NaN out, so a real NaN passed; ``isfinite`` is not
    folded (tests/test_data.py checks a Parquet NaN).
    """
    if backend == "duckdb":
        return ~_isfinite(x)
    inf = ibis.literal(float("inf"))
    if backend == "sqlite":  # SQLite has no NaN (stored as NULL) and no isnan()
        return (x == inf) | (x == -inf)
    return x.isnan() | (x == inf) | (x == -inf)


def _finite_or_null(x: ir.FloatingValue, backend: str) -> ir.FloatingValue:
    return ibis.ifelse(_not_finite(x, backend).fill_null(False), ibis.null("float64"), x)


# a space as the thousands separator stands for any of the spaces spreadsheets write (no-break,
# narrow no-break, thin); around an amount they are ignored
_SPACES = " \u00a0\u202f\u2009"
_AROUND = f"[\\t{_SPACES}]*"


def amount_pattern(decimal: str, thousands: str) -> str:
    """The regular expression (RE2 and Python) a text amount must match in full: an optional sign,
    digits — with ``thousands`` only between groups of exactly three digits (``1 234 567``, never
    ``12 50``) — and an optional ``decimal`` part; nothing else (SPEC §2: a value is read only in the
    declared form, never by deleting characters)."""
    d = "\\." if decimal == "." else ","
    if thousands:
        t = f"[{_SPACES}]" if thousands.isspace() else "[" + ("\\" * (thousands in "]\\^-")) + thousands + "]"
        integer = f"(?:[0-9]+|[0-9]{{1,3}}(?:{t}[0-9]{{3}})+)"
    else:
        integer = "[0-9]+"
    return f"^{_AROUND}[+-]?(?:{integer}(?:{d}[0-9]*)?|{d}[0-9]+){_AROUND}$"


def _parse_amount(col: ir.Value, settings: Settings, lenient: bool = True) -> ir.FloatingValue:
    """Text or a number → float64; empty or text not in the configured form → NULL (the
    non-numeric rule names it). NaN and ±inf are left as they are here (see :func:`_finite_or_null`).

    Text is first matched in full against :func:`amount_pattern` (the configured decimal and
    thousands separators, thousands only in groups of three), then cleaned: every character but
    digits, the sign and the decimal mark removed — safe only because the form was checked. Two
    vectorised string functions per row, in the engine."""
    if col.type().is_numeric():
        return col.cast("float64")
    if not col.type().is_string():
        return col.cast("float64")  # will raise on execution with a clear type error upstream
    c = settings.source.csv
    valid = col.re_search(amount_pattern(c.decimal, c.thousands))
    keep = "." if c.decimal == "." else ","
    s = col.re_replace(f"[^0-9+\\-{keep}]", "")
    if c.decimal == ",":
        s = s.replace(",", ".")
    return ibis.ifelse(valid.fill_null(False), _try_cast(s.nullif(""), "float64", lenient), ibis.null("float64"))


# dates before it are not read (SPEC §2): "24-01-05" is no payment of the year 24, and a two-digit
# year is read only with a date_format that says so ("%y-%m-%d")
FIRST_YEAR = 1900


def _in_range(ts: ir.TimestampValue) -> ir.TimestampValue:
    return ibis.ifelse(ts < ibis.literal(datetime(FIRST_YEAR, 1, 1)), ibis.null(dt.Timestamp()), ts)


def _parse_timestamp(col: ir.Value, settings: Settings, lenient: bool = True) -> ir.TimestampValue:
    """A timestamp in the report zone, NULL when empty, unparsable or before :data:`FIRST_YEAR`
    (the unparsable-date rule names it)."""
    return _in_range(_timestamp(col, settings, lenient))


def _timestamp(col: ir.Value, settings: Settings, lenient: bool) -> ir.TimestampValue:
    typ = col.type()
    if typ.is_timestamp():
        # tz-aware → local time of the session zone; naive → taken as report-zone local time
        return col.cast(dt.Timestamp()) if typ.timezone else col
    if typ.is_date():
        return col.cast(dt.Timestamp())
    if typ.is_string():
        s = col.strip().nullif("")
        fmt = settings.source.csv.date_format
        if fmt:
            return _try_strptime(s, fmt)
        if not lenient:
            return s.cast(dt.Timestamp())
        return s.try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
    raise DataError(f"column paid_at has type {typ}, which is not a date, timestamp or text")


@_builtin(name="try_strptime")
def _try_strptime_udf(s: str, fmt: str) -> datetime:  # type: ignore[empty-body]
    """DuckDB's TRY_STRPTIME."""


def _try_strptime(s: ir.StringValue, fmt: str) -> ir.TimestampValue:
    return _try_strptime_udf(s, fmt).cast(dt.Timestamp())


def _as_text(col: ir.Value, trim: bool = False) -> ir.StringValue:
    """An id or segment value as text. ``trim``: strip surrounding whitespace, for sources read as
    text (CSV, Excel), where it is an artefact of the format; typed string columns (Parquet,
    databases) are opaque and kept as they are (SPEC §2) — and not trimming them saves the costliest
    string operation of the load."""
    if col.type().is_string():
        return col.strip() if trim else col
    if col.type().is_floating():
        # ids stored as floats: 123.0 becomes "123" (never "123.0"); 1.4 stays "1.4" (never "1",
        # which would merge it with id 1) and is invalid as an id (:func:`_fractional`)
        return ibis.ifelse(_integral(col), col.cast("int64").cast("string"), col.cast("string"))
    return col.cast("string")


def _integral(col: ir.FloatingValue) -> ir.BooleanValue:
    """A float that is a whole number an int64 holds (NaN and ±inf are not)."""
    return (col.floor() == col) & (col.abs() < 9.2e18)


def _fractional(col: ir.Value) -> ir.BooleanValue | None:
    """True for an id stored as a float that is no whole number (1.4); None when the column is not
    a float column."""
    if not col.type().is_floating():
        return None
    return col.notnull() & ~_integral(col).fill_null(False)


def convert(
    raw: ir.Table, mapping: dict[str, str], settings: Settings, backend: str = "duckdb", text_source: bool = False
) -> ir.Table:
    """Raw source → typed canonical columns plus the raw text of the checked columns.

    ``text_source``: the source was read as text (CSV, Excel): ids and segment values are trimmed.
    """
    lenient = backend != "sqlite"
    cols: dict[str, ir.Value] = {}
    cid = raw[mapping["customer_id"]]
    cols["customer_id"] = _as_text(cid, text_source).nullif("")
    for role in ("customer_id", "order_id", "payment_id"):
        if role in mapping and (bad_id := _fractional(raw[mapping[role]])) is not None:
            cols[f"_fractional_{role}"] = bad_id
    cols["paid_at"] = _parse_timestamp(raw[mapping["paid_at"]], settings, lenient)
    # NaN / inf amounts (a float column, or the text "NaN" / "inf") are not numbers: NULL, so the
    # non-numeric rule catches them like "ten"
    cols["amount"] = _finite_or_null(_parse_amount(raw[mapping["amount"]], settings, lenient), backend)
    if "cost" in mapping:
        raw_cost = raw[mapping["cost"]]
        parsed = _parse_amount(raw_cost, settings, lenient)
        cols["cost"] = _finite_or_null(parsed, backend)
        # an empty cost is allowed (unknown); text that is no number, NaN or inf is not
        bad = _not_finite(parsed, backend).fill_null(False)
        if raw_cost.type().is_string():
            bad = bad | (parsed.isnull() & raw_cost.strip().nullif("").notnull())
        cols["_bad_cost"] = bad
    if "order_id" in mapping:
        cols["order_id"] = _as_text(raw[mapping["order_id"]], text_source).nullif("")
    if "payment_id" in mapping:
        cols["payment_id"] = _as_text(raw[mapping["payment_id"]], text_source).nullif("")
    for s in settings.columns.segments:
        cols[s] = _as_text(raw[s], text_source).nullif("").fill_null(NONE_SEGMENT)
    for role in ("paid_at", "amount", "cost"):
        # the raw value, to tell "empty" from "unparsable" in text columns and to quote bad values
        # (a typed NaN is quoted as 'nan', not as an empty value); only read on the error path
        if role in mapping:
            col = raw[mapping[role]]
            cols[f"_raw_{role}"] = col if col.type().is_string() else col.cast("string")
    return raw.select(**cols)
