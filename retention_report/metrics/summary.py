"""KPIs of a period (SPEC §4) and their trend over periods.

Pure: a :class:`~retention_report.data.Dataset` and a period in, numbers out; nothing is cached
here (the report context memoises, :mod:`retention_report.context`), and the metrics.json document
with its findings is assembled above the metrics, in :mod:`retention_report.document`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..config import MetricSettings
from ..periods import Period
from ._common import ratio
from .behaviour import (
    lifetime_from_churn,
    ltv,
    observed_lifetime_years,
    time_to_second_purchase,
)
from .flow import customer_bridge
from .sales import order_counts, period_sales

if TYPE_CHECKING:
    from ..data import Dataset

__all__ = ["KPI_KEYS", "KpiSource", "period_kpis", "kpis_of", "kpi_trend", "period_coverage"]

KPI_KEYS = [
    "revenue",
    "gross_revenue",
    "refunds",
    "revenue_new",
    "revenue_returning",
    "new_revenue_share",
    "margin",
    "customers",
    "customers_new",
    "customers_returning",
    "purchases",
    "aov",
    "purchase_frequency",
    "repeat_purchase_rate",
    "refund_rate",
    "customers_start",
    "customers_end",
    "customers_churned",
    "customers_reactivated",
    "customers_new_lapsed",
    "crr",
    "churn_rate",
    "avg_lifetime_years",
    "ltv",
    "median_days_to_second_purchase",
]


# periods → their KPIs (the report context passes a memoised one)
KpiSource = Callable[[Sequence[Period]], list[dict[str, Any]]]


def period_kpis(
    ds: Dataset, period: Period, metrics: MetricSettings | None = None, *, orders: int | None = None
) -> dict[str, Any]:
    """Every headline KPI of ``period`` (the ``kpis`` block of metrics.json).

    Input: a :class:`retention_report.data.Dataset`; ``orders``, the period's distinct orders when
    already counted (:func:`kpis_of` counts those of several periods in one query). Rates are
    fractions; undefined values (a division by zero, no churn for LTV) are None.

    Notes
    -----
    SPEC §4.5: AOV = gross revenue / purchases (per distinct order when ``order_id`` is mapped);
    AF = purchases / customers; repeat purchase rate = customers with ≥ 2 purchases / customers;
    refund rate = refunds / gross revenue; AL = 1 / annual churn (or the observed lifespan of lapsed
    customers); LTV = AOV × AF × (365.25 / days) × AL with AOV per purchase, the unit AF counts
    in (so AOV × AF = gross revenue / customers whether or not order ids are mapped); margin = net
    revenue − cost of all rows.
    """
    m = metrics or MetricSettings()
    if ds.has_order_id and orders is None:
        orders = order_counts(ds.payments, [(period.start, period.end)])[0]
    return _period_kpis(ds, period, m, orders)


def kpis_of(ds: Dataset, periods: Sequence[Period], metrics: MetricSettings | None = None) -> list[dict[str, Any]]:
    """:func:`period_kpis` of several periods; their distinct orders (the one KPI that reads the
    payment rows) counted in one query."""
    if not periods:
        return []
    orders: list[int | None] = [None] * len(periods)
    if ds.has_order_id:
        ranges = list(dict.fromkeys((p.start, p.end) for p in periods))
        counted = dict(zip(ranges, order_counts(ds.payments, ranges), strict=True))
        orders = [counted[(p.start, p.end)] for p in periods]
    return [period_kpis(ds, p, metrics, orders=n) for p, n in zip(periods, orders, strict=True)]


def _period_kpis(ds: Dataset, period: Period, opts: MetricSettings, orders: int | None) -> dict[str, Any]:
    daily, customers = ds.daily, ds.customers
    s = period_sales(daily, customers, period.start, period.end, opts.split_basis, days=ds.days)
    b = customer_bridge(daily, customers, period.start, period.end, opts.activity_window_days)
    aov_purchase = ratio(s.gross_revenue, s.purchases)
    aov = ratio(s.gross_revenue, orders) if orders is not None else aov_purchase
    frequency = ratio(s.purchases, s.customers)
    if opts.lifetime_method == "observed":
        lifetime = observed_lifetime_years(daily, customers, period.end, opts.activity_window_days)
    else:
        lifetime = lifetime_from_churn(b.churn_rate, period.days)
    second = time_to_second_purchase(customers, period.end)
    return {
        "revenue": s.revenue,
        "gross_revenue": s.gross_revenue,
        "refunds": s.refunds,
        "revenue_new": s.revenue_new,
        "revenue_returning": s.revenue_returning,
        "new_revenue_share": ratio(s.revenue_new, s.gross_revenue),
        "margin": None if s.cost is None else s.revenue - s.cost,
        "customers": s.customers,
        "customers_new": s.customers_new,
        "customers_returning": s.customers_returning,
        "purchases": s.purchases,
        "aov": aov,
        "purchase_frequency": frequency,
        "repeat_purchase_rate": ratio(s.customers_repeat, s.customers),
        "refund_rate": ratio(s.refunds, s.gross_revenue),
        "customers_start": b.start,
        "customers_end": b.end,
        "customers_churned": b.churned,
        "customers_reactivated": b.reactivated,
        "customers_new_lapsed": b.new_lapsed,
        "crr": b.crr,
        "churn_rate": b.churn_rate,
        "avg_lifetime_years": lifetime,
        # AOV × AF must be revenue per customer: AF counts purchases, so the AOV here is per
        # purchase even when the headline AOV is per order (per order × per purchase mixed units)
        "ltv": ltv(aov_purchase, frequency, lifetime, period.days),
        "median_days_to_second_purchase": second.median_days,
    }


def kpi_trend(
    ds: Dataset, period: Period, n: int = 8, metrics: MetricSettings | None = None, *, kpis: KpiSource | None = None
) -> pd.DataFrame:
    """KPIs of the ``n`` periods ending with ``period`` (oldest first), one row per period.
    ``kpis``: where the KPIs come from (default :func:`kpis_of`; the report context passes its
    memoised one, so metrics.json's periods are not computed twice). ``coverage`` says how much of
    each period the data cover (:func:`period_coverage`): a period before the first payment is
    ``"none"``, not a period of zero revenue."""
    periods = [period.shift(-k) for k in range(n - 1, -1, -1)]
    source = kpis or (lambda ps: kpis_of(ds, ps, metrics))
    rows = [{"period": p.label, "start": p.start, "end": p.end, **k,
             "coverage": period_coverage(p, ds.first_day, ds.last_day)}
            for p, k in zip(periods, source(periods), strict=True)]
    return pd.DataFrame.from_records(rows)


def period_coverage(period: Period, first_day: date | None, last_day: date | None) -> str:
    """How much of ``period`` the data cover: ``"none"`` when it lies entirely before the first or
    after the last payment day (or there are no payments), ``"partial"`` when the first or the last
    payment day falls inside it (after its first / before its last day), else ``"full"``.

    A previous or year-ago period with partial data compares a fraction of a period (or customers
    without their history) with a whole one: its changes are shown as such, never judged."""
    if first_day is None or last_day is None or period.end < first_day or period.start > last_day:
        return "none"
    if period.start < first_day or period.end > last_day:
        return "partial"
    return "full"
