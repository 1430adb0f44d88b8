"""The metrics.json document (SPEC §5): the period's KPIs with the previous and year-ago
periods', cohorts, segments, data quality and the plain-language findings (§4.6).

Document assembly sits above the metric functions: it calls them and the report prose
(:mod:`retention_report.findings`); the metrics never import it.
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import MetricSettings
from .findings import findings
from .kpis import DEFAULT_MIN_CHANGE, KPI_SPECS, is_real_change
from .metrics import ratio
from .metrics.behaviour import empirical_ltv, time_to_second_purchase
from .metrics.cohorts import cohort_matrices
from .metrics.predictive import ClvBlock, clv_block
from .metrics.revenue import revenue_bridge
from .metrics.segments import frequency_segments
from .metrics.summary import KpiSource, kpis_of, period_coverage, unobservable_kpis
from .metrics.uncertainty import Estimate, change_interval, interval, wilson
from .periods import Period

if TYPE_CHECKING:
    from .data import Dataset

__all__ = ["metrics_document", "settings_block", "clean", "SETTINGS_KEYS", "INTERVAL_KEYS", "intervals_block",
           "changes_block", "cohort_intervals"]

# the KPIs with a 95% interval and a verdict on their changes: those the registry gives a method
INTERVAL_KEYS = tuple(k for k, spec in KPI_SPECS.items() if spec.uncertainty != "none")


def _estimates(k: Any) -> dict[str, Estimate]:
    return dict(getattr(k, "estimates", None) or {})


def intervals_block(k: Any) -> dict[str, list[float] | None]:
    """metrics.json ``intervals``: ``{key: [low, high]}`` (95%) of the KPIs ``k`` of a period —
    null for a KPI that is null or has too little data for an interval (SPEC §4.6)."""
    est = _estimates(k)
    out: dict[str, list[float] | None] = {}
    for key in INTERVAL_KEYS:
        iv = interval(est.get(key)) if k.get(key) is not None else None
        out[key] = None if iv is None else [iv[0], iv[1]]
    return out


def cohort_intervals(cohorts: dict[str, Any]) -> tuple[list[list[float | None]], list[list[float | None]]]:
    """The 95% Wilson intervals of the cohort cells (metrics.json ``cohorts.retention_low`` /
    ``retention_high``): a cell is the share of the cohort's ``size`` customers who bought at that
    age (x = retention × size, counted); null where the cell is."""
    low: list[list[float | None]] = []
    high: list[list[float | None]] = []
    for size, row in zip(cohorts.get("size") or [], cohorts.get("retention") or [], strict=False):
        lo_row: list[float | None] = []
        hi_row: list[float | None] = []
        for v in row:
            if v is None or not size:
                lo_row.append(None)
                hi_row.append(None)
                continue
            lo, hi = wilson(round(float(v) * size), size)
            lo_row.append(float(lo))
            hi_row.append(float(hi))
        low.append(lo_row)
        high.append(hi_row)
    return low, high


def changes_block(cur: Any, ref: Any, min_change: dict[str, float] | None = None, *,
                  judged: bool = True) -> dict[str, Any]:
    """One reference period's block of metrics.json ``changes``: ``{key: {"delta", "low", "high",
    "significant", "real"}}`` — the change cur − ref in the KPI's unit (rates as fractions), the
    95% interval of that change (Newcombe for proportions, else normal with both periods' variances),
    ``significant`` when the interval excludes zero, ``real`` when also larger than ``min_change``;
    null when either value is null or has no interval. ``judged=False`` (a reference period the data
    cover only partly or not at all): never ``real``."""
    ce, re_ = _estimates(cur), _estimates(ref)
    out: dict[str, Any] = {}
    for key in INTERVAL_KEYS:
        got = None
        if cur.get(key) is not None and (ref or {}).get(key) is not None:
            got = change_interval(ce.get(key), re_.get(key))
        if got is None:
            out[key] = None
            continue
        delta, low, high = got
        significant = bool(low > 0 or high < 0)
        out[key] = {"delta": delta, "low": low, "high": high, "significant": significant,
                    "real": judged and is_real_change(key, delta, ref.get(key), significant, min_change)}
    return out

# metrics.json "settings": the metric conventions in force, in the contract's key order
SETTINGS_KEYS = ("activity_window_days", "split_basis", "cohort_grain", "cohort_count", "lookback_months",
                 "frequency_thresholds", "lifetime_method", "trend_periods", "cohort_segment", "min_group_size")


def settings_block(metrics: MetricSettings) -> dict[str, Any]:
    """The ``settings`` block of metrics.json."""
    data = metrics.model_dump()
    return {k: data[k] for k in SETTINGS_KEYS}


def clean(v: Any) -> Any:
    """JSON-safe: NaN → None, numpy scalars → Python, rounding money noise."""
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
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
    ds: Dataset,
    period: Period,
    metrics: MetricSettings | None = None,
    *,
    kpis: KpiSource | None = None,
    clv: ClvBlock | None = None,
    extra: dict[str, Any] | None = None,
    min_change: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The whole metrics.json document of SPEC §5 for ``period``.

    Besides the specified keys it carries ``previous_period`` / ``year_ago_period`` (their dates and
    ``coverage``: ``full``/``partial``/``none``, see :func:`period_coverage`), ``aov_basis``
    (``order`` when ``kpis.aov`` is per order, else ``purchase``), ``segment_thresholds``, ``time_to_second_purchase`` and ``extra`` KPIs (margin LTV, empirical
    12-month LTV) — additions only; the specified keys never change.
    """
    opts = metrics or MetricSettings()
    prev, ago = period.previous(), period.year_ago()
    last_day = ds.last_day
    complete = last_day is not None and last_day >= period.end
    source = kpis or (lambda ps: kpis_of(ds, ps, opts))
    kpis_now, kpis_prev, kpis_ago = source([period, prev, ago])
    cohorts = cohort_matrices(
        ds.daily, ds.customers, period.end, last_day, opts.cohort_grain, opts.cohort_count, opts.min_group_size
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
    # SPEC §4.3 observability: what the data's span makes structural, per period, with the reason
    unobservable = {block: unobservable_kpis(p, ds.first_day, opts.activity_window_days)
                    for block, p in (("kpis", period), ("previous", prev), ("year_ago", ago))}
    censored = "median_days_to_second_purchase" in unobservable["kpis"]
    if unobservable["kpis"]:  # the lapsed segment is empty by construction, too
        unobservable["segments"] = {"lapsed": unobservable["kpis"]["churn_rate"]}
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
    if ltv_12m is None and horizon is not None and ds.first_day is not None:
        # no cohort has a whole first year in the data yet: an empirical 12-month value cannot exist
        unobservable["extra"] = {"ltv_empirical_12m": (
            f"the data begin {ds.first_day.isoformat()}: no monthly cohort has 12 months of history "
            f"by {horizon.isoformat()}")}
    margin_ratio = ratio(kpis_now["margin"], kpis_now["revenue"]) if kpis_now["margin"] is not None else None
    doc: dict[str, Any] = {
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "complete": complete,
        "settings": {**settings_block(opts), "min_change": {**DEFAULT_MIN_CHANGE, **(min_change or {})}},
        "kpis": kpis_now,
        "previous": kpis_prev,
        "year_ago": kpis_ago,
        "previous_period": {**prev.to_dict(), "coverage": period_coverage(prev, ds.first_day, last_day)},
        "year_ago_period": {**ago.to_dict(), "coverage": period_coverage(ago, ds.first_day, last_day)},
        "aov_basis": "order" if ds.has_order_id else "purchase",
        "cohorts": cohorts.to_json(),  # with the cells' 95% intervals, below
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
            # gaps longer than the data's span cannot be seen yet: their summaries are structural
            **{key: None if censored else value for key, value in (
                ("median_days", second.median_days), ("mean_days", second.mean_days),
                ("within_30_days", second.within_30), ("within_90_days", second.within_90),
                ("within_180_days", second.within_180))},
        },
        "extra": {
            "ltv_empirical_12m": ltv_12m,
            "ltv_margin": None if kpis_now["ltv"] is None or margin_ratio is None else kpis_now["ltv"] * margin_ratio,
            "margin_rate": margin_ratio,
        },
        "data_quality": ds.quality.to_dict(),
        # SPEC §4.7: gross revenue of the previous period → of this one, by customer
        "revenue_bridge": revenue_bridge(
            ds.daily, ds.customers, period.start, period.end, prev.start, prev.end
        ).to_dict(),
        "unobservable": unobservable,
        "intervals": intervals_block(kpis_now),
    }
    doc["cohorts"]["retention_low"], doc["cohorts"]["retention_high"] = cohort_intervals(doc["cohorts"])
    doc["changes"] = {
        block: changes_block(kpis_now, ref, min_change, judged=doc[f"{block}_period"]["coverage"] == "full")
        for block, ref in (("previous", kpis_prev), ("year_ago", kpis_ago))
    }
    # predicted customer value (BG/NBD + Gamma-Gamma, issue 17): null, with the reason, when the
    # data cannot support a fit
    out = clv if clv is not None else clv_block(ds, period, ds.settings)
    doc["clv"] = out.block
    if out.reason:
        doc["clv_reason"] = out.reason
    if extra:
        doc.update(extra)
    doc["findings"] = findings(doc)
    cleaned: dict[str, Any] = clean(doc)
    return cleaned
