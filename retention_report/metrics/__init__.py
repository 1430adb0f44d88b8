"""Metric functions of SPEC §4, executed by the engine through Ibis.

Every function takes Ibis tables (the daily and customers tables of :mod:`retention_report.data`)
and returns small pandas frames, dataclasses or scalars. No file I/O, no plotting, no caching, no
report prose (the metrics.json document is assembled above them, in :mod:`retention_report.document`).
"""

from ._common import ratio
from .behaviour import (
    SecondPurchase,
    annual_churn,
    empirical_ltv,
    lifetime_from_churn,
    ltv,
    observed_lifetime_years,
    time_to_second_purchase,
)
from .cohorts import CohortMatrices, cohort_matrices, cohort_segment_curves, cohort_window
from .flow import CustomerBridge, customer_bridge
from .sales import PeriodSales, new_vs_returning, period_sales
from .segments import SEGMENT_LABELS, SEGMENT_ORDER, FrequencySegments, frequency_segments
from .summary import KPI_KEYS, KpiSource, kpi_trend, kpis_of, period_coverage, period_kpis

__all__ = [
    "KPI_KEYS",
    "SEGMENT_LABELS",
    "SEGMENT_ORDER",
    "CohortMatrices",
    "CustomerBridge",
    "FrequencySegments",
    "KpiSource",
    "PeriodSales",
    "SecondPurchase",
    "annual_churn",
    "cohort_matrices",
    "cohort_segment_curves",
    "cohort_window",
    "customer_bridge",
    "empirical_ltv",
    "frequency_segments",
    "kpi_trend",
    "lifetime_from_churn",
    "ltv",
    "kpis_of",
    "period_coverage",
    "new_vs_returning",
    "observed_lifetime_years",
    "period_kpis",
    "period_sales",
    "ratio",
    "time_to_second_purchase",
]
