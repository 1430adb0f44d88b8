"""The engine side: per-customer histories up to a calibration end, in one grouped pass over the
daily table, compressed in the engine to the few rows the models read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from .._common import lit

__all__ = ["Compressed", "compress_histories", "customer_histories", "typed_null"]

# money sums rounded to this many decimals: a parallel float sum differs in its last bits from run
# to run and engine to engine; rounded, the same data give the same m values, rows and fits
_MONEY_DECIMALS = 6


def customer_histories(daily: Any, end: date, backtest_end: date | None = None) -> Any:
    """Per customer with a purchase on or before ``end``: the history the models read, in days.

    Parameters
    ----------
    daily : ibis Table
        customer_id, day, gross, is_purchase (:func:`retention_report.data.build_daily`).
    end : date
        Calibration end (inclusive).
    backtest_end : date, optional
        A second, earlier calibration end (the day before the report period): adds its history.

    Returns
    -------
    ibis Table
        customer_id, acquired (first purchase day), ``x`` = purchase days up to ``end`` - 1,
        ``t_x_days`` (first to last of them), ``T_days`` (first to ``end``), ``value`` = gross of
        those purchase days, ``m`` = mean value of the repeat purchases (0 when x = 0); with
        ``backtest_end``: ``x0``, ``t_x0_days``, ``T0_days`` as of that day (null for customers
        acquired after it) and ``actual`` = their purchase days after it, up to ``end``.

    One grouped pass over the daily table, no join: the first purchase day's gross is the gross at
    the minimum day (one daily row per customer and day), so repeat value = value - that.
    """
    e1 = lit(end)
    p = daily.filter(daily.is_purchase & (daily.day <= e1))
    aggs: dict[str, Any] = {
        "acquired": p.day.min(),
        "_days": p.count(),
        "_last": p.day.max(),
        "value": p.gross.sum(),
        "_first_gross": p.gross.argmin(p.day),
    }
    if backtest_end is not None:
        e0 = lit(backtest_end)
        aggs["_days0"] = p.count(where=p.day <= e0)
        aggs["_last0"] = p.day.max(where=p.day <= e0)
    g = p.group_by("customer_id").aggregate(**aggs)
    x = (g._days - 1).cast("int64")
    repeat = (g.value - g._first_gross).cast("float64").round(_MONEY_DECIMALS)
    cols: dict[str, Any] = {
        "customer_id": g.customer_id,
        "acquired": g.acquired,
        "x": x,
        "t_x_days": g._last.delta(g.acquired, unit="day").cast("int64"),
        "T_days": e1.delta(g.acquired, unit="day").cast("int64"),
        "value": g.value.cast("float64").round(_MONEY_DECIMALS),
        "m": (x > 0).ifelse(repeat / x.cast("float64"), 0.0),
    }
    if backtest_end is not None:
        before = g._days0 > 0
        cols["x0"] = before.ifelse((g._days0 - 1).cast("int64"), typed_null("int64"))
        cols["t_x0_days"] = before.ifelse(g._last0.delta(g.acquired, unit="day").cast("int64"), typed_null("int64"))
        cols["T0_days"] = before.ifelse(lit(backtest_end).delta(g.acquired, unit="day").cast("int64"),
                                        typed_null("int64"))
        cols["actual"] = before.ifelse((g._days - g._days0).cast("int64"), typed_null("int64"))
    return g.select(**cols)


def typed_null(dtype: str) -> Any:
    import ibis

    return ibis.null().cast(dtype)


@dataclass(frozen=True)
class Compressed:
    """The engine's compressed histories (small numpy-backed frames).

    ``histories``: x, t_x_days, T_days, n (customers), n_m (repeat buyers with m > 0), sum_m
    (their sum of m), value (gross to date), sorted by x, T_days, t_x_days. ``spend``: x >= 1,
    m, n. ``backtest``: x, t_x_days, T_days, n, actual (purchases after the backtest end) of the
    customers acquired by then, sorted likewise (None without a backtest end).
    """

    histories: pd.DataFrame
    spend: pd.DataFrame
    backtest: pd.DataFrame | None


def _frame(table: Any) -> pd.DataFrame:
    # one block per column: no consolidating copy of a million rows
    return table.to_pyarrow().to_pandas(split_blocks=True)


def compress_histories(daily: Any, end: date, backtest_end: date | None = None) -> Compressed:
    """Run :func:`customer_histories` once (cached in the engine, numeric columns only) and
    compress it three ways: distinct (x, t_x, T) with counts and spend sums, distinct (x, m) of
    the repeat buyers, and distinct backtest histories with their actual purchases."""
    h = customer_histories(daily, end, backtest_end).drop("customer_id", "acquired")
    cached = h.cache()
    try:
        own = (cached.x > 0) & (cached.m > 0)
        a = cached.group_by(["x", "t_x_days", "T_days"]).aggregate(
            n=cached.count(), n_m=cached.count(where=own), sum_m=cached.m.sum(where=own).fill_null(0.0),
            value=cached.value.sum(),
        ).order_by(["x", "T_days", "t_x_days"])
        r = cached.filter(cached.x > 0)
        c = r.group_by(["x", "m"]).aggregate(n=r.count()).order_by(["x", "m"])
        histories = _frame(a)
        spend = _frame(c)
        back = None
        if backtest_end is not None:
            b0 = cached.filter(cached.x0.notnull())
            b = b0.group_by([b0.x0.name("x"), b0.t_x0_days.name("t_x_days"), b0.T0_days.name("T_days")]).aggregate(
                n=b0.count(), actual=b0.actual.sum()
            ).order_by(["x", "T_days", "t_x_days"])
            back = _frame(b)
    finally:
        cached.release()
    return Compressed(histories, spend, back)
