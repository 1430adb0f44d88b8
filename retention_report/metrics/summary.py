"""KPIs of a period, comparisons (§4.6) and the metrics.json document (§5)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pandas as pd

from ..periods import Period
from ._common import ratio
from .behaviour import (
    empirical_ltv,
    lifetime_from_churn,
    ltv,
    observed_lifetime_years,
    time_to_second_purchase,
)
from .cohorts import cohort_matrices
from .flow import customer_bridge
from .sales import order_counts, period_sales
from .segments import frequency_segments

__all__ = ["KPI_KEYS", "period_kpis", "kpi_trend", "metrics_document", "MetricOptions", "period_coverage"]

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


class MetricOptions:
    """The metric settings a computation needs (a view of ``Settings.metrics``)."""

    def __init__(
        self,
        activity_window_days: int = 365,
        split_basis: str = "purchase",
        cohort_grain: str = "month",
        cohort_count: int = 12,
        lookback_months: int = 12,
        frequency_thresholds: list[float] | None = None,
        lifetime_method: str = "churn",
        trend_periods: int = 8,
        cohort_segment: str = "",
    ) -> None:
        self.activity_window_days = activity_window_days
        self.split_basis = split_basis
        self.cohort_grain = cohort_grain
        self.cohort_count = cohort_count
        self.lookback_months = lookback_months
        self.frequency_thresholds = list(frequency_thresholds or [])
        self.lifetime_method = lifetime_method
        self.trend_periods = trend_periods
        self.cohort_segment = cohort_segment

    @classmethod
    def from_settings(cls, settings: Any) -> MetricOptions:
        m = settings.metrics
        return cls(
            activity_window_days=m.activity_window_days,
            split_basis=m.split_basis,
            cohort_grain=m.cohort_grain,
            cohort_count=m.cohort_count,
            lookback_months=m.lookback_months,
            frequency_thresholds=list(m.frequency_thresholds),
            lifetime_method=m.lifetime_method,
            trend_periods=m.trend_periods,
            cohort_segment=m.cohort_segment,
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def period_kpis(ds: Any, period: Period, opts: MetricOptions | None = None) -> dict[str, Any]:
    """Every headline KPI of ``period`` (the ``kpis`` block of metrics.json).

    Input: a :class:`retention_report.data.Dataset`. Rates are fractions; undefined values (a
    division by zero, no churn for LTV) are None.

    Notes
    -----
    SPEC §4.5: AOV = gross revenue / purchases (per distinct order when ``order_id`` is mapped);
    AF = purchases / customers; repeat purchase rate = customers with ≥ 2 purchases / customers;
    refund rate = refunds / gross revenue; AL = 1 / annual churn (or the observed lifespan of lapsed
    customers); LTV = AOV × AF × (365.25 / days) × AL with AOV per purchase, the unit AF counts
    in (so AOV × AF = gross revenue / customers whether or not order ids are mapped); margin = net
    revenue − cost of all rows.
    """
    opts = opts or MetricOptions()
    # metrics.json's three periods are also periods of the report's trend: computed once per data set
    key = ("kpis", period.start, period.end, json.dumps(opts.to_dict(), sort_keys=True, default=str))
    memo = getattr(ds, "memo", None)
    if memo is not None and key in memo:
        return dict(memo[key])
    kpis = _period_kpis(ds, period, opts)
    if memo is not None:
        memo[key] = dict(kpis)
    return kpis


def _period_kpis(ds: Any, period: Period, opts: MetricOptions) -> dict[str, Any]:
    daily, customers = ds.daily, ds.customers
    s = period_sales(daily, customers, period.start, period.end, opts.split_basis, days=ds.days)  # type: ignore[arg-type]
    b = customer_bridge(daily, customers, period.start, period.end, opts.activity_window_days)
    aov_purchase = ratio(s.gross_revenue, s.purchases)
    if ds.has_order_id:
        orders = prefetch_orders(ds, [period])[0]
        aov = ratio(s.gross_revenue, orders)
    else:
        aov = aov_purchase
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


def prefetch_orders(ds: Any, periods: list[Period]) -> list[int]:
    """Distinct orders of each period, counted for all periods not yet known in one pass over the
    payments and kept in ``ds.memo`` (the only KPI that needs the payment rows)."""
    memo = ds.memo.setdefault("orders", {})
    keys = [(p.start, p.end) for p in periods]
    missing = list(dict.fromkeys(k for k in keys if k not in memo))
    if missing:
        memo.update(zip(missing, order_counts(ds.payments, missing), strict=True))
    return [memo[k] for k in keys]


def kpi_trend(ds: Any, period: Period, n: int = 8, opts: MetricOptions | None = None) -> pd.DataFrame:
    """KPIs of the ``n`` periods ending with ``period`` (oldest first), one row per period."""
    rows = []
    periods = [period.shift(-k) for k in range(n - 1, -1, -1)]
    if ds.has_order_id:
        prefetch_orders(ds, periods)
    for p in periods:
        row = {"period": p.label, "start": p.start, "end": p.end}
        row.update(period_kpis(ds, p, opts))
        rows.append(row)
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


def _clean(v: Any) -> Any:
    """JSON-safe: NaN → None, numpy scalars → Python, rounding money noise."""
    import math

    import numpy as np

    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return None
        # 13 significant digits (at most 10 decimals): removes float summation noise such as
        # 3026340.1599999927 → 3026340.16 while keeping cents up to 10^11
        whole = len(str(int(abs(f)))) if abs(f) >= 1 else 0
        return round(f, max(0, min(10, 13 - whole)))
    if isinstance(v, date):
        return v.isoformat()
    return v


def metrics_document(
    ds: Any,
    period: Period,
    opts: MetricOptions | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole metrics.json document of SPEC §5 for ``period``.

    Besides the specified keys it carries ``previous_period`` / ``year_ago_period`` (their dates and
    ``coverage``: ``full``/``partial``/``none``, see :func:`period_coverage`), ``aov_basis``
    (``order`` when ``kpis.aov`` is per order, else ``purchase``), ``segment_thresholds``, ``time_to_second_purchase`` and ``extra`` KPIs (margin LTV, empirical
    12-month LTV) — additions only; the specified keys never change.
    """
    from ..findings import findings  # findings read numbers only; no import cycle at module load

    opts = opts or MetricOptions()
    prev, ago = period.previous(), period.year_ago()
    last_day = ds.last_day
    complete = last_day is not None and last_day >= period.end
    if ds.has_order_id:
        prefetch_orders(ds, [period, prev, ago])
    kpis = period_kpis(ds, period, opts)
    kpis_prev = period_kpis(ds, prev, opts)
    kpis_ago = period_kpis(ds, ago, opts)
    cohorts = cohort_matrices(
        ds.daily, ds.customers, period.end, last_day, opts.cohort_grain, opts.cohort_count  # type: ignore[arg-type]
    )
    seg = frequency_segments(
        ds.daily,
        ds.customers,
        period,
        opts.activity_window_days,
        opts.lookback_months,
        opts.frequency_thresholds or None,
    )
    second = time_to_second_purchase(ds.customers, period.end)
    segments = [
        {
            "segment": name,
            "customers": int(row["customers"]),
            "revenue": float(row["revenue"]),
            "purchases": int(row["purchases"]),
            "aov": row["aov"],
            "revenue_share": row["revenue_share"],
        }
        for name, row in seg.table.iterrows()
    ]
    horizon = min(period.end, last_day) if last_day else None
    ltv_12m = empirical_ltv(ds.daily, ds.customers, horizon)
    margin_ratio = ratio(kpis["margin"], kpis["revenue"]) if kpis["margin"] is not None else None
    doc: dict[str, Any] = {
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "complete": complete,
        "settings": opts.to_dict(),
        "kpis": kpis,
        "previous": kpis_prev,
        "year_ago": kpis_ago,
        "previous_period": {**prev.to_dict(), "coverage": period_coverage(prev, ds.first_day, last_day)},
        "year_ago_period": {**ago.to_dict(), "coverage": period_coverage(ago, ds.first_day, last_day)},
        "aov_basis": "order" if ds.has_order_id else "purchase",
        "cohorts": cohorts.to_json(),
        "segments": segments,
        "segment_thresholds": {
            "low": seg.low,
            "high": seg.high,
            "data_driven": seg.data_driven,
            "unit": "purchases per month",
            "lookback_months": seg.lookback_months,
        },
        "time_to_second_purchase": {
            "customers": second.customers,
            "median_days": second.median_days,
            "mean_days": second.mean_days,
            "within_30_days": second.within_30,
            "within_90_days": second.within_90,
            "within_180_days": second.within_180,
        },
        "extra": {
            "ltv_empirical_12m": ltv_12m,
            "ltv_margin": None if kpis["ltv"] is None or margin_ratio is None else kpis["ltv"] * margin_ratio,
            "margin_rate": margin_ratio,
        },
        "data_quality": ds.quality.to_dict(),
    }
    if extra:
        doc.update(extra)
    doc["findings"] = findings(doc)
    return _clean(doc)
