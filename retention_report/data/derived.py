"""The tables every metric is computed from, derived once per load from the validated payments:
the per-day summary, the daily (customer-day) table, the customers table and, on demand, the
segment values of each customer's first purchase (see the package docstring for the columns)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from .model import NONE_SEGMENT

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GUEST_COLUMNS", "day_aggregates", "days_frame", "day_summary", "build_daily", "build_customers",
           "first_purchase_segments", "acquired_between"]


GUEST_COLUMNS = ("guest_rows", "guest_payments", "guest_gross", "guest_refunds", "guest_cost_pos")


def day_aggregates(t: ir.Table, guest: bool = False) -> dict[str, ir.Value]:
    """The per-day summary (see :func:`day_summary`) as aggregates over payment rows; ``guest``:
    also the sums of the rows without a customer id (guest payments, SPEC §2)."""
    pos = t.amount > 0
    aggs: dict[str, ir.Value] = {
        "rows": t.count(),
        "payments": t.count(where=pos),
        "gross": t.amount.sum(where=pos),
        "refunds": (-t.amount).sum(where=t.amount < 0),
        "first": t.paid_at.min(),
        "last": t.paid_at.max(),
    }
    if "cost" in t.columns:
        aggs["cost_all"] = t.cost.sum()
        aggs["cost_pos"] = t.cost.sum(where=pos)
    if guest:
        g = t.customer_id.isnull()
        aggs["guest_rows"] = t.count(where=g)
        aggs["guest_payments"] = t.count(where=g & pos)
        aggs["guest_gross"] = t.amount.sum(where=g & pos)
        aggs["guest_refunds"] = (-t.amount).sum(where=g & (t.amount < 0))
        if "cost" in t.columns:
            aggs["guest_cost_pos"] = t.cost.sum(where=g & pos)
    return aggs


def days_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The executed per-day summary as a small pandas frame: ``day`` as datetime64, sorted, sums
    of no rows as 0."""
    import pandas as pd

    frame = frame[frame["day"].notna()].copy()
    frame["day"] = pd.to_datetime(frame["day"])
    for col in ("rows", "payments", "guest_rows", "guest_payments"):
        if col in frame.columns:
            frame[col] = frame[col].fillna(0).astype("int64")
    for col in ("gross", "refunds", "cost_all", "cost_pos", "guest_gross", "guest_refunds", "guest_cost_pos"):
        if col in frame.columns:
            frame[col] = frame[col].astype("float64").fillna(0.0)
    keep = ["day", "rows", "payments", "gross", "refunds", "first", "last",
            *[c for c in ("cost_all", "cost_pos", *GUEST_COLUMNS) if c in frame.columns]]
    return frame[keep].sort_values("day").reset_index(drop=True)


def day_summary(payments: ir.Table, guest: bool = False) -> pd.DataFrame:
    """One row per calendar day with payments (a pandas frame, at most a few thousand rows):
    ``day, rows, payments`` (positive ones), ``gross, refunds, first, last`` (paid_at)
    ``[, cost_all, cost_pos]`` — the period sums that need no customer (refunds, cost of all rows)
    and the data-quality dates. Over every row, guest payments included; with ``guest`` also
    ``guest_rows, guest_payments, guest_gross, guest_refunds[, guest_cost_pos]``: the share of
    those sums without a customer id."""
    p = payments if "day" in payments.columns else payments.mutate(day=payments.paid_at.date())
    return days_frame(p.group_by("day").aggregate(**day_aggregates(p, guest)).execute())


def build_daily(payments: ir.Table) -> ir.Table:
    """Canonical payments (with ``day``) → one row per customer and day (see module docstring).

    Not sorted: ordering the 9.7M rows of 10M payments by day let period filters skip row groups,
    but the sort cost more (time and peak memory) than the skipping saved in the metric queries,
    whose cost is mostly their joins and aggregations (interleaved runs at 10M, 2026-11-23).

    Segment values belong to customers (their first purchase, see :func:`first_purchase_segments`), not to
    this, the largest derived table. Refunds and the cost of all rows are summed per period from the
    per-day summary (:func:`day_summary`), not per customer.
    """
    p = payments
    pos = p.amount > 0
    aggs: dict[str, ir.Value] = {
        "gross": p.amount.sum(where=pos),
        "payments": p.count(where=pos),
        "rows": p.count(),
    }
    if "cost" in p.columns:
        aggs["cost_pos"] = p.cost.sum(where=pos)
    g = p.group_by(["customer_id", "day"]).aggregate(**aggs)
    cols: dict[str, ir.Value] = {
        "customer_id": g.customer_id,
        "day": g.day,
        "gross": g.gross.fill_null(0.0),
        "payments": g.payments,
        "rows": g.rows,
    }
    if "cost_pos" in g.columns:
        cols["cost_pos"] = g.cost_pos.fill_null(0.0)
    cols["is_purchase"] = g.gross.fill_null(0.0) > 0
    return g.select(**cols)


# Ibis has no type information: its decorator for engine built-in aggregates, typed here (what it
# makes builds an Ibis expression when called)
_builtin_agg: Callable[..., Callable[[Callable[..., object]], Callable[..., ir.Value]]] = ibis.udf.agg.builtin


@_builtin_agg(name="min")
def _two_smallest(x: date, n: int) -> dt.Array(dt.date):  # type: ignore[valid-type]
    """DuckDB's ``min(x, n)``: the ``n`` smallest values, ascending, as a list."""


def _backend_name(t: ir.Table) -> str:
    try:
        return str(t._find_backend().name)
    except Exception:  # an unbound expression
        return ""


def build_customers(daily: ir.Table) -> ir.Table:
    """Daily table → one row per customer with a purchase: ``acquired`` and ``second`` (first and
    second purchase day). Segment values: :func:`first_purchase_segments`."""
    pur = daily.filter(daily.is_purchase).select("customer_id", "day")
    if _backend_name(daily) == "duckdb":
        # DuckDB's min(day, 2) takes the two earliest days in one grouped pass (1.7x faster than
        # the window at 10M payments)
        g = pur.group_by("customer_id").aggregate(_m=_two_smallest(pur.day, 2))
        customers = g.select("customer_id", acquired=g._m[0], second=g._m[1])
    else:
        ranked = pur.mutate(_n=ibis.row_number().over(group_by=pur.customer_id, order_by=pur.day))
        first_two = ranked.filter(ranked._n <= 1)
        customers = first_two.group_by("customer_id").aggregate(
            acquired=first_two.day.min(), second=first_two.day.min(where=first_two._n == 1)
        )
    # ordered by acquisition, so filters on it (the customers acquired in a period or a cohort)
    # skip most of the table
    return customers.order_by("acquired")


def acquired_between(customers: ir.Table, first: date | None, last: date | None) -> ir.Table:
    if first is not None:
        customers = customers.filter(customers.acquired >= ibis.literal(first, type="date"))
    if last is not None:
        customers = customers.filter(customers.acquired <= ibis.literal(last, type="date"))
    return customers


def first_purchase_segments(
    customers: ir.Table,
    payments: ir.Table,
    segments: tuple[str, ...] | list[str],
    acquired_from: date | None = None,
    acquired_to: date | None = None,
) -> ir.Table:
    """The customers (acquired in ``[acquired_from, acquired_to]`` when given) with the segment
    values of their first positive payment; ``(none)`` when missing.

    The first positive payment is on the acquisition day (the first day with one), so only the
    payments of the window's days are read — filtered on ``paid_at`` itself, so a time-ordered
    file skips the other row groups — and only those of each customer's acquisition day compared.
    """
    c = acquired_between(customers, acquired_from, acquired_to)
    pos = payments.filter(payments.amount > 0)
    if acquired_from is not None:
        pos = pos.filter(pos.paid_at >= ibis.literal(datetime.combine(acquired_from, time()), type="timestamp"))
    if acquired_to is not None:
        nxt = datetime.combine(acquired_to, time()) + timedelta(days=1)
        pos = pos.filter(pos.paid_at < ibis.literal(nxt, type="timestamp"))
    key = c.select(_cid=c.customer_id, _acq=c.acquired)
    first = pos.inner_join(key, [pos.customer_id == key._cid, pos.day == key._acq])
    segs = first.group_by(_cid=first.customer_id).aggregate(
        **{s: first[s].argmin(first.paid_at) for s in segments}
    )
    j = c.left_join(segs, c.customer_id == segs._cid)
    return j.select(*customers.columns, **{s: j[s].fill_null(NONE_SEGMENT) for s in segments})
