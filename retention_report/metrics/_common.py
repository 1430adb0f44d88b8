"""Small helpers shared by the metric functions (no I/O beyond executing Ibis expressions)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any, SupportsFloat

import ibis
import ibis.expr.types as ir

__all__ = ["lit", "in_range", "month_number", "ratio", "scalar_row", "weighted_median", "to_float", "to_int"]


def lit(d: date) -> ir.DateScalar:
    """A date literal."""
    return ibis.literal(d, type="date")


def in_range(col: ir.DateValue, start: date, end: date) -> ir.BooleanValue:
    """``start <= col <= end`` (both inclusive)."""
    return (col >= lit(start)) & (col <= lit(end))


def month_number(col: ir.DateValue) -> ir.IntegerValue:
    """The running month number ``year × 12 + month − 1`` of a date column, computed by the engine:
    the twin of :func:`retention_report.periods.month_index` (same numbers), so month differences
    of columns and Python dates agree."""
    return col.year() * 12 + col.month() - 1


def ratio(num: SupportsFloat | None, den: SupportsFloat | None) -> float | None:
    """``num / den``, or None when either is missing or the denominator is 0 (undefined, never an
    error or infinity)."""
    if num is None or den is None:
        return None
    n, d = float(num), float(den)
    if math.isnan(n) or math.isnan(d) or d == 0:
        return None
    return n / d


def to_float(v: SupportsFloat | None) -> float:
    """Aggregates over no rows come back as NULL/NaN: sums of nothing are 0."""
    if v is None:
        return 0.0
    v = float(v)
    return 0.0 if math.isnan(v) else v


def to_int(v: SupportsFloat | None) -> int:
    return int(round(to_float(v)))


def scalar_row(expr: ir.Table) -> dict[str, Any]:
    """Execute a one-row aggregate and return it as a dict."""
    frame = expr.execute()
    return frame.iloc[0].to_dict() if len(frame) else {}


def weighted_median(values: list[float], counts: list[int]) -> float | None:
    """Median of a distribution given as value counts (the mean of the two middle values for an
    even total, like ``pandas.Series.median``)."""
    pairs = sorted((float(v), int(c)) for v, c in zip(values, counts, strict=True) if c > 0)
    n = sum(c for _, c in pairs)
    if n == 0:
        return None
    lo_rank, hi_rank = (n - 1) // 2, n // 2  # 0-based ranks of the middle value(s)
    lo = hi = None
    seen = 0
    for v, c in pairs:
        if lo is None and seen + c > lo_rank:
            lo = v
        if seen + c > hi_rank:
            hi = v
            break
        seen += c
    return (lo + hi) / 2  # type: ignore[operator]
