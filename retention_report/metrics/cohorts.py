"""§4.4 Cohort retention: customer retention, revenue retention and cumulative revenue per
customer by acquisition month (or ISO week) and age."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from ..periods import month_end, month_index, month_start
from ._common import lit, month_number
from .uncertainty import wilson

__all__ = ["CohortMatrices", "cohort_matrices", "cohort_segment_curves", "cohort_window", "bucket_start", "bucket_end",
           "headline_average", "weakest_group", "MIN_GROUP_SIZE", "OTHER_SEGMENT"]

# SPEC §4.4: a group (cohort, segment, first-purchase breakdown value) with fewer customers is
# shown but marked, never headlined, and left out of the averages the report quotes
MIN_GROUP_SIZE = 30

Grain = Literal["month", "week"]
_EPOCH_MONDAY = date(1970, 1, 5)


def bucket_start(d: date, grain: Grain) -> date:
    """First day of the month (or ISO week, Monday) containing ``d``."""
    if grain == "month":
        return d.replace(day=1)
    return d - timedelta(days=d.weekday())


def bucket_end(d: date, grain: Grain) -> date:
    """Last day of the bucket containing ``d``."""
    if grain == "month":
        return month_end(d)
    return bucket_start(d, grain) + timedelta(days=6)


def _bucket_index_py(d: date, grain: Grain) -> int:
    if grain == "month":
        return month_index(d)
    return (d - _EPOCH_MONDAY).days // 7


def _index_to_start(i: int, grain: Grain) -> date:
    if grain == "month":
        return month_start(i)
    return _EPOCH_MONDAY + timedelta(weeks=i)


def _bucket_index(col: ir.DateValue, grain: Grain) -> ir.IntegerValue:
    if grain == "month":
        return month_number(col)
    return col.delta(ibis.date(_EPOCH_MONDAY), unit="day") // 7


@dataclass(frozen=True)
class CohortMatrices:
    """Cohort × age matrices (rows: cohort start dates, columns: ages 0..n-1).

    Unobservable cells are NaN (never 0). ``partial`` marks, per cell, the bucket that contains the
    observation horizon when that bucket is not complete.
    """

    grain: Grain
    size: pd.Series
    retention: pd.DataFrame
    revenue_retention: pd.DataFrame
    cumulative_revenue_per_customer: pd.DataFrame
    active: pd.DataFrame
    revenue: pd.DataFrame
    partial: pd.DataFrame
    lifetime_repeat_rate: pd.Series
    horizon: date | None
    partial_bucket: date | None = None
    min_size: int = MIN_GROUP_SIZE

    @property
    def small(self) -> pd.Series:
        """Per cohort: fewer customers than ``min_size`` (shown, marked, never headlined)."""
        return (self.size < self.min_size).rename("small")

    def to_json(self) -> dict[str, object]:
        """The ``cohorts`` block of metrics.json (nulls for unobservable cells)."""

        def rows(frame: pd.DataFrame) -> list[list[float | None]]:
            return [[None if pd.isna(v) else float(v) for v in r] for r in frame.to_numpy()]

        return {
            "grain": self.grain,
            "cohort": [d.isoformat() for d in self.size.index],
            "size": [int(v) for v in self.size.to_numpy()],
            "age": [int(a) for a in self.retention.columns],
            "retention": rows(self.retention),
            "revenue_retention": rows(self.revenue_retention),
            "cumulative_revenue_per_customer": rows(self.cumulative_revenue_per_customer),
            "lifetime_repeat_rate": [None if pd.isna(v) else float(v) for v in self.lifetime_repeat_rate],
            "partial_bucket": self.partial_bucket.isoformat() if self.partial_bucket else None,
            "small": [bool(v) for v in self.small.to_numpy()],
        }


def _horizon(end: date, last_day: date | None) -> date | None:
    if last_day is None:
        return None
    return min(end, last_day)


def _latest_buckets(customers: ir.Table, horizon: date, grain: Grain, count: int) -> list[int]:
    """Indices (oldest first) of the latest ``count`` buckets up to ``horizon`` that acquired at
    least one customer (SPEC §4.4: empty buckets are skipped, so a business that stopped acquiring
    still shows its cohorts)."""
    c = customers.filter(customers.acquired <= lit(horizon))
    c = c.mutate(cidx=_bucket_index(c.acquired, grain))
    found = c.select("cidx").distinct().order_by(ibis.desc("cidx")).limit(count).execute()
    return sorted(int(v) for v in found["cidx"])


def cohort_matrices(
    daily: ir.Table,
    customers: ir.Table,
    end: date,
    last_day: date | None,
    grain: Grain = "month",
    count: int = 12,
    min_size: int = MIN_GROUP_SIZE,
) -> CohortMatrices:
    """Retention matrices of the latest ``count`` cohorts up to ``end`` that acquired anyone.

    Input: the daily table (``customer_id, day, gross, is_purchase``) and the customers table
    (``customer_id, acquired, second``); ``last_day`` is the day of the last payment in the data;
    ``min_size``: cohorts with fewer customers are marked ``small``.

    Notes
    -----
    SPEC §4.4. Cohort = bucket (month or ISO week) of the acquisition day; the cohorts are the
    latest ``count`` buckets up to the horizon min(end, last_day) with at least one customer (empty
    buckets skipped); age k = buckets from the cohort's bucket to the purchase's, k = 0..count − 1.
    Only purchases on or before the horizon count. retention(c, k) = customers of c with a purchase
    in bucket c + k / size(c); revenue_retention(c, k) = gross revenue of c in bucket c + k / gross
    revenue of c in bucket c; cumulative_revenue_per_customer(c, k) = gross revenue of c in buckets
    0..k / size(c). A cell whose bucket starts after the horizon is NaN (never 0); the horizon's
    bucket is *partial* when the horizon is not its last day. ``lifetime_repeat_rate`` = share of
    the cohort with a second purchase on or before the horizon.
    """
    horizon = _horizon(end, last_day)
    ages = list(range(count))
    chosen = _latest_buckets(customers, horizon, grain, count) if horizon is not None else []
    cohort_index = pd.Index([_index_to_start(i, grain) for i in chosen], name="cohort")
    empty = pd.DataFrame(np.nan, index=cohort_index, columns=ages, dtype="float64")
    if horizon is None or not chosen:
        zero = pd.Series(0, index=cohort_index, dtype="int64", name="size")
        return CohortMatrices(grain, zero, empty, empty.copy(), empty.copy(), empty.copy(), empty.copy(),
                              empty.astype(bool), pd.Series(np.nan, index=cohort_index, dtype="float64"), horizon,
                              min_size=min_size)
    h_idx = _bucket_index_py(horizon, grain)
    first_day = _index_to_start(chosen[0], grain)

    # every customer acquired from the oldest chosen bucket on is in a chosen one (the buckets in
    # between acquired nobody)
    c = customers.filter((customers.acquired >= lit(first_day)) & (customers.acquired <= lit(horizon)))
    c = c.mutate(cidx=_bucket_index(c.acquired, grain))
    sizes = c.group_by("cidx").aggregate(
        size=c.count(),
        repeaters=(c.second.notnull() & (c.second <= lit(horizon))).cast("int32").sum(),
    ).execute()
    # purchases of ages 0..count − 1 only: up to the end of the newest cohort's last age or the horizon
    d = daily.filter(daily.is_purchase & (daily.day >= lit(first_day)) & (daily.day <= lit(horizon)))
    j = d.inner_join(c.select("customer_id", "cidx"), "customer_id")
    j = j.mutate(age=_bucket_index(j.day, grain) - j.cidx)
    j = j.filter(j.age < count)
    cells = j.group_by(["cidx", "age"]).aggregate(active=j.customer_id.nunique(), revenue=j.gross.sum()).execute()

    def to_frame(col: str) -> pd.DataFrame:
        f = cells.pivot(index="cidx", columns="age", values=col) if len(cells) else pd.DataFrame()
        f = f.reindex(index=chosen, columns=ages)
        f.index = cohort_index
        return f.astype("float64")

    size = sizes.set_index("cidx")["size"].reindex(chosen).fillna(0).astype("int64")
    repeaters = sizes.set_index("cidx")["repeaters"].reindex(chosen).fillna(0)
    size.index = cohort_index
    repeaters.index = cohort_index
    active, revenue = to_frame("active"), to_frame("revenue")

    mask = np.array([[ci + k <= h_idx for k in ages] for ci in chosen])
    active = active.fillna(0).where(mask)
    revenue = revenue.fillna(0.0).where(mask)
    sz = size.replace(0, np.nan).astype("float64")
    retention = active.div(sz, axis=0)
    revenue_retention = revenue.div(revenue[0].replace(0, np.nan), axis=0).where(mask)
    cumulative = revenue.cumsum(axis=1, skipna=False).div(sz, axis=0).where(mask)

    partial_bucket = None
    if horizon != bucket_end(horizon, grain):
        partial_bucket = bucket_start(horizon, grain)
    partial = pd.DataFrame(
        [[partial_bucket is not None and ci + k == h_idx for k in ages] for ci in chosen],
        index=cohort_index,
        columns=ages,
    )
    lifetime_repeat = (repeaters / sz).astype("float64")
    return CohortMatrices(
        grain=grain,
        size=size.rename("size"),
        retention=retention,
        revenue_retention=revenue_retention,
        cumulative_revenue_per_customer=cumulative,
        active=active,
        revenue=revenue,
        partial=partial,
        lifetime_repeat_rate=lifetime_repeat,
        horizon=horizon,
        partial_bucket=partial_bucket,
        min_size=min_size,
    )


def headline_average(values: Iterable[float | None], sizes: Iterable[float | None], min_size: int = MIN_GROUP_SIZE) -> float | None:
    """The average a report quotes over groups (cohorts, segments): weighted by group size, over
    the groups with a value and at least ``min_size`` customers (SPEC §4.4); None when there is
    none. The chart titles and the findings quote this one number."""
    pairs = [(float(v), float(n)) for v, n in zip(values, sizes, strict=True)
             if v is not None and not pd.isna(v) and n is not None and not pd.isna(n) and n >= min_size and n > 0]
    total = sum(n for _v, n in pairs)
    if not total:
        return None
    return sum(v * n for v, n in pairs) / total


def weakest_group(values: Iterable[float | None], sizes: Iterable[float | None], min_size: int = MIN_GROUP_SIZE) -> tuple[int, float] | None:
    """(index of the group with the lowest rate, the :func:`headline_average`) over the groups of at
    least ``min_size`` customers — only when that group is below the average beyond noise: the
    upper end of its rate's 95% Wilson interval (the rate a share of the group's customers) lies
    under the average (SPEC §4.6). None otherwise, or with fewer than three such groups: "the
    weakest cohort" is then no finding and no chart title names one. A rate of 14.3% of 7,231
    customers against 14.9% on average is within noise (upper end 15.1%)."""
    avg = headline_average(values, sizes, min_size)
    cands = [(float(v), i, float(n)) for i, (v, n) in enumerate(zip(values, sizes, strict=True))
             if v is not None and not pd.isna(v) and n is not None and not pd.isna(n) and n >= min_size and n > 0]
    if avg is None or len(cands) < 3:
        return None
    rate, index, n = min(cands)
    _low, high = wilson(round(rate * n), n)
    return (index, avg) if float(high) < avg else None


def cohort_window(end: date, last_day: date | None, grain: Grain = "month", count: int = 12,
                  customers: ir.Table | None = None) -> tuple[date, date] | None:
    """(first day of the oldest of the ``count`` cohorts up to ``end``, the last observable day),
    or None when nothing is observable: the customers a cohort analysis needs were acquired then.

    With ``customers`` the cohorts are those :func:`cohort_matrices` shows (the latest ``count``
    buckets that acquired anyone); without, the ``count`` calendar buckets up to ``end``."""
    horizon = _horizon(end, last_day)
    if horizon is None:
        return None
    if customers is not None:
        chosen = _latest_buckets(customers, horizon, grain, count)
        return (_index_to_start(chosen[0], grain), horizon) if chosen else None
    return _index_to_start(_bucket_index_py(end, grain) - count + 1, grain), horizon


OTHER_SEGMENT = "(other)"  # the segment values outside the top, as one curve
TOP_SEGMENTS = 7


def cohort_segment_curves(
    daily: ir.Table,
    customers: ir.Table,
    segment: str,
    end: date,
    last_day: date | None,
    grain: Grain = "month",
    count: int = 12,
    top: int = TOP_SEGMENTS,
) -> pd.DataFrame:
    """Retention curves by a segment of the customers' first purchase (e.g. acquisition channel),
    over the cohorts :func:`cohort_matrices` shows.

    Returns a long DataFrame ``segment, age, customers, active, retention`` where, for each age,
    only cohorts (of the ``count`` up to ``end``) for which that age is observable count:
    retention(s, k) = Σ active(c, s, k) / Σ size(c, s) over those cohorts.

    The ``top`` segment values with the most customers in the cohorts have a curve each, in that
    order; the others are summed into one :data:`OTHER_SEGMENT` curve, last. A column with tens of
    thousands of values costs three grouped queries and a few small frames (no loop over segments
    or ages: issue 21 took 566 s for 60,000 values), and the chart stays readable.
    """
    cols = ["segment", "age", "customers", "active", "retention"]
    window = cohort_window(end, last_day, grain, count, customers)
    if window is None:
        return pd.DataFrame(columns=cols)
    first_day, horizon = window
    h_idx = _bucket_index_py(horizon, grain)
    c = customers.filter((customers.acquired >= lit(first_day)) & (customers.acquired <= lit(horizon)))
    biggest = (c.group_by(segment).aggregate(_n=c.count())
               .order_by([ibis.desc("_n"), segment]).limit(top + 1).execute())
    kept = biggest[segment].tolist()[:top]
    label = c[segment]
    if len(biggest) > top:
        label = ibis.ifelse(label.isin(kept), label, ibis.literal(OTHER_SEGMENT))
    c = c.mutate(cidx=_bucket_index(c.acquired, grain), segment=label)
    sizes = c.group_by(["segment", "cidx"]).aggregate(size=c.count()).execute()
    d = daily.filter(daily.is_purchase & (daily.day >= lit(first_day)) & (daily.day <= lit(horizon)))
    j = d.inner_join(c.select("customer_id", "cidx", "segment"), "customer_id")
    j = j.mutate(age=_bucket_index(j.day, grain) - j.cidx)
    # a customer is in one (segment, cohort): distinct buyers per cohort add up across cohorts
    cells = j.group_by(["segment", "cidx", "age"]).aggregate(active=j.customer_id.nunique()).execute()
    if sizes.empty:
        return pd.DataFrame(columns=cols)
    # every (segment, cohort) at every age it is observable at: cohort + age <= the horizon's bucket
    ages = pd.DataFrame({"age": range(count)})
    grid = sizes.merge(ages, how="cross")
    grid = grid[grid["cidx"] + grid["age"] <= h_idx]
    cells = cells[(cells["age"] >= 0) & (cells["age"] < count)]
    grid = grid.merge(cells, on=["segment", "cidx", "age"], how="left")
    out = grid.groupby(["segment", "age"], as_index=False).agg(customers=("size", "sum"), active=("active", "sum"))
    out = out[out["customers"] > 0]
    out["customers"] = out["customers"].astype("int64")
    out["active"] = out["active"].fillna(0).astype("int64")
    out["retention"] = out["active"] / out["customers"]
    rank = {s: i for i, s in enumerate([*kept, OTHER_SEGMENT])}
    out = out.sort_values(["segment", "age"], key=lambda col: col.map(rank) if col.name == "segment" else col)
    return out[cols].reset_index(drop=True)
