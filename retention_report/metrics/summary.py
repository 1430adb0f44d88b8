"""KPIs of a period (SPEC §4) and their trend over periods.

Pure: a :class:`~retention_report.data.Dataset` and a period in, numbers out; nothing is cached
here (the report context memoises, :mod:`retention_report.context`), and the metrics.json document
with its findings is assembled above the metrics, in :mod:`retention_report.document`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
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
from .flow import CustomerBridge, customer_bridge, customer_bridges
from .sales import PeriodSales, order_counts, period_sales
from .uncertainty import Estimate, ratio_se

if TYPE_CHECKING:
    from ..data import Dataset

__all__ = ["KPI_KEYS", "UNOBSERVABLE_KEYS", "KpiSource", "PeriodKpis", "unobservable_kpis", "period_kpis", "kpis_of",
           "kpi_trend", "period_coverage", "kpi_estimates"]

KPI_KEYS = [
    "revenue",
    "gross_revenue",
    "refunds",
    "revenue_new",
    "revenue_returning",
    "revenue_guest",
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

# SPEC §4.3 observability: the KPIs that need a customer to have been able to lapse (no purchase in
# a whole activity window) — and the time to a second purchase, which the same span censors: only
# gaps shorter than the data's span before the period end can be seen, so its median is structural
# (short by construction) until the data reach a whole window back
UNOBSERVABLE_KEYS = (
    "customers_churned",
    "customers_reactivated",
    "customers_new_lapsed",
    "churn_rate",
    "crr",
    "avg_lifetime_years",
    "ltv",
    "median_days_to_second_purchase",
)


def unobservable_kpis(period: Period, first_day: date | None, window_days: int) -> dict[str, str]:
    """The KPIs of ``period`` the data's span makes structural, each with the reason (metrics.json's
    ``unobservable`` block); empty when the data begin on or before ``end − W``.

    Notes
    -----
    SPEC §4.3: when the first payment is later than ``end − W``, every customer ever seen bought in
    (end − W, end], so CL = RE = NL = 0 by construction, not by behaviour: churn, CRR, the average
    lifetime and LTV say nothing, and are null. The reason is machine-readable English with ISO
    dates (the report words it in the reader's language from ``data_quality.first_payment`` and
    ``settings.activity_window_days``).
    """
    if first_day is None or first_day <= period.end - timedelta(days=window_days):
        return {}
    reason = (f"the data begin {first_day.isoformat()}, less than the {window_days}-day activity window "
              f"before the period end {period.end.isoformat()}: nobody can have lapsed yet")
    return dict.fromkeys(UNOBSERVABLE_KEYS, reason)


class PeriodKpis(dict[str, Any]):
    """The KPIs of a period (a plain ``{key: value}`` dict, metrics.json's ``kpis``) carrying what
    their 95% intervals are computed from: ``estimates``, ``{key: Estimate}``
    (:mod:`retention_report.metrics.uncertainty`), computed in the same engine passes."""

    def __init__(self, values: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), estimates: dict[str, Estimate] | None = None) -> None:
        super().__init__(values)
        self.estimates: dict[str, Estimate] = dict(estimates or {})

    def copy(self) -> PeriodKpis:
        return PeriodKpis(self, self.estimates)


# periods → their KPIs (the report context passes a memoised one)
KpiSource = Callable[[Sequence[Period]], list[dict[str, Any]]]


def period_kpis(
    ds: Dataset, period: Period, metrics: MetricSettings | None = None, *, orders: int | None = None,
    bridge: CustomerBridge | None = None,
) -> dict[str, Any]:
    """Every headline KPI of ``period`` (the ``kpis`` block of metrics.json).

    Input: a :class:`retention_report.data.Dataset`; ``orders``, the period's distinct orders when
    already counted, ``bridge`` its customer bridge when already counted (:func:`kpis_of` counts
    those of several periods in one query each). Rates are
    fractions; undefined values (a division by zero, no churn for LTV) are None.

    Notes
    -----
    SPEC §4.5: AOV = gross revenue / purchases (per distinct order when ``order_id`` is mapped),
    both of identified customers (guest payments, SPEC §2, are revenue but no purchase);
    AF = purchases / customers; repeat purchase rate = customers with ≥ 2 purchases / customers;
    refund rate = refunds / gross revenue; AL = 1 / annual churn (or the observed lifespan of lapsed
    customers); LTV = AOV × AF × (365.25 / days) × AL with AOV per purchase, the unit AF counts
    in (so AOV × AF = gross revenue / customers whether or not order ids are mapped); margin = net
    revenue − cost of all rows.
    """
    m = metrics or MetricSettings()
    if ds.has_order_id and orders is None:
        orders = order_counts(ds.payments, [(period.start, period.end)])[0]
    return _period_kpis(ds, period, m, orders, bridge)


def kpis_of(ds: Dataset, periods: Sequence[Period], metrics: MetricSettings | None = None) -> list[dict[str, Any]]:
    """:func:`period_kpis` of several periods; their distinct orders (the one KPI that reads the
    payment rows) counted in one query, their customer bridges in one grouped pass
    (:func:`~retention_report.metrics.flow.customer_bridges`)."""
    if not periods:
        return []
    m = metrics or MetricSettings()
    bridges = customer_bridges(ds.daily, ds.customers, [(p.start, p.end) for p in periods], m.activity_window_days)
    orders: list[int | None] = [None] * len(periods)
    if ds.has_order_id:
        ranges = list(dict.fromkeys((p.start, p.end) for p in periods))
        counted = dict(zip(ranges, order_counts(ds.payments, ranges), strict=True))
        orders = [counted[(p.start, p.end)] for p in periods]
    return [period_kpis(ds, p, m, orders=n, bridge=b) for p, n, b in zip(periods, orders, bridges, strict=True)]


def _period_kpis(ds: Dataset, period: Period, opts: MetricSettings, orders: int | None,
                 bridge: CustomerBridge | None = None) -> dict[str, Any]:
    daily, customers = ds.daily, ds.customers
    s = period_sales(daily, customers, period.start, period.end, opts.split_basis, days=ds.days)
    b = bridge or customer_bridge(daily, customers, period.start, period.end, opts.activity_window_days)
    # per purchase / per order of identified customers: guest payments are neither (SPEC §2)
    aov_purchase = ratio(s.customer_gross, s.purchases)
    aov = ratio(s.customer_gross, orders) if orders is not None else aov_purchase
    frequency = ratio(s.purchases, s.customers)
    if opts.lifetime_method == "observed":
        lifetime = observed_lifetime_years(daily, customers, period.end, opts.activity_window_days)
    else:
        lifetime = lifetime_from_churn(b.churn_rate, period.days)
    second = time_to_second_purchase(customers, period.end)
    values = {
        "revenue": s.revenue,
        "gross_revenue": s.gross_revenue,
        "refunds": s.refunds,
        "revenue_new": s.revenue_new,
        "revenue_returning": s.revenue_returning,
        "revenue_guest": s.revenue_guest,
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
    # structural numbers (SPEC §4.3 observability) are null, never a 0% churn nobody could show, and
    # have no interval
    unobservable = unobservable_kpis(period, ds.first_day, opts.activity_window_days)
    values.update(dict.fromkeys(unobservable))
    estimates = kpi_estimates(values, s, b, period.days, opts.lifetime_method)
    for key in unobservable:
        estimates.pop(key, None)
    return PeriodKpis(values, estimates)


def kpi_estimates(
    k: dict[str, Any], s: PeriodSales, b: CustomerBridge, days: int, lifetime_method: str = "churn"
) -> dict[str, Estimate]:
    """What the 95% intervals of a period's KPIs ``k`` are computed from (SPEC §4.6), given its
    sales ``s`` (with the per-customer sums of squares of the same engine pass) and bridge ``b``.

    Notes
    -----
    Proportions of customers (``repeat_purchase_rate`` = repeat / customers, ``churn_rate`` =
    CL / CS, ``crr`` = (CE − CN) / CS): Wilson. Counts of customers: Poisson. ``revenue``,
    ``gross_revenue`` and ``purchases``: compound Poisson, se = √Σ g_i² (√Σ p_i²) over customers (refunds are period sums,
    not attributed to customers: net revenue's interval is gross revenue's, shifted). Ratios
    (``aov`` per purchase = Σg/Σp, ``purchase_frequency`` = Σp/n, ``new_revenue_share`` = Σa/Σg):
    delta method; AOV per order takes the relative error of AOV per purchase (orders per customer
    are not counted per customer). ``ltv`` = revenue per customer × 365.25/days × AL: the relative
    errors of the mean revenue per customer and of AL (from the churn rate's binomial error, delta
    method; an observed lifetime is taken as known) combined.
    """
    n = s.customers
    e: dict[str, Estimate] = {
        "customers": Estimate("poisson", x=n),
        "customers_new": Estimate("poisson", x=s.customers_new),
        "customers_returning": Estimate("poisson", x=s.customers_returning),
    }
    se_gross = math.sqrt(s.sum_gg) if math.isfinite(s.sum_gg) else float("nan")
    e["gross_revenue"] = Estimate("normal", s.gross_revenue, se_gross, lower=0.0)
    e["revenue"] = Estimate("normal", s.gross_revenue - s.refunds, se_gross)
    # purchases: a total over customers too (compound Poisson, se = √Σ p_i²)
    e["purchases"] = Estimate("normal", s.purchases, math.sqrt(s.sum_pp) if math.isfinite(s.sum_pp) else float("nan"),
                              lower=0.0)
    if n > 0:
        e["repeat_purchase_rate"] = Estimate.proportion(s.customers_repeat, n)
        e["purchase_frequency"] = Estimate(
            "normal", k["purchase_frequency"], float(ratio_se(n, s.purchases, n, s.sum_pp, n, s.purchases)),
            lower=0.0)
    if s.gross_revenue > 0:
        e["new_revenue_share"] = Estimate("normal", k["new_revenue_share"], float(
            ratio_se(n, s.revenue_new, s.gross_revenue, s.sum_aa, s.sum_gg, s.sum_ag)), lower=0.0, upper=1.0)
    # per customer: the identified customers' gross (guest payments belong to no customer, SPEC §2)
    cg = s.customer_gross
    if s.purchases > 0 and k["aov"] is not None and cg > 0:
        se_pp = float(ratio_se(n, cg, s.purchases, s.sum_gg, s.sum_pp, s.sum_gp))
        rel = se_pp / (cg / s.purchases)
        e["aov"] = Estimate("normal", k["aov"], rel * float(k["aov"]), lower=0.0)
    if b.start > 0:
        e["churn_rate"] = Estimate.proportion(b.churned, b.start)
        e["crr"] = Estimate.proportion(b.end - b.new, b.start)
    if k["ltv"] is not None and n > 1:
        mean_se = float(ratio_se(n, cg, n, s.sum_gg, n, cg))
        rel_mean = mean_se / (cg / n) if cg > 0 else 0.0
        rel_al = 0.0
        c = b.churn_rate
        if lifetime_method == "churn" and c is not None and 0 < c < 1:
            q = 365.25 / days
            annual = 1 - (1 - c) ** q
            dlog_al = q * (1 - c) ** (q - 1) / annual  # |d log AL / d churn|, AL = 1 / annual churn
            rel_al = dlog_al * math.sqrt(c * (1 - c) / b.start)
        e["ltv"] = Estimate("normal", k["ltv"], float(k["ltv"]) * math.hypot(rel_mean, rel_al), lower=0.0)
    return e



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
