"""The KPI registry: every headline KPI declared once (issue 26).

Each :class:`KpiSpec` says what a metrics.json KPI *is* for the reader: its key, its label (a gettext
msgid, translated where shown), its unit (which also picks its formatter,
:func:`retention_report.formatting.fmt_value`), the direction a manager wants, how its 95% interval
is computed (``uncertainty``, see :mod:`retention_report.metrics.uncertainty`). The KPI table, the
findings, the trend charts, the email, the archive and the snapshots read these declarations, so a
label, a unit or a judgement can never drift from its number. Whether the data can show a KPI at all
is the metric layer's judgement (``metrics.summary.unobservable_kpis``, metrics.json's
``unobservable`` block); readers write it with ``formatting.unobservable_reason``.

The metric layer does not import this module: the KPI *keys* are the data contract of
:data:`retention_report.metrics.KPI_KEYS`; the words for the reader live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .i18n import N_

__all__ = [
    "Unit",
    "Direction",
    "Uncertainty",
    "KpiSpec",
    "KPI_SPECS",
    "AOV_SPECS",
    "HEADLINE_KPIS",
    "ARCHIVE_KPIS",
    "TREND_KPIS",
    "MOVER_KPIS",
    "min_change_of",
    "DEFAULT_MIN_CHANGE",
    "is_real_change",
]

Unit = Literal["money", "count", "rate", "number", "days", "years"]
Direction = Literal["up", "down", "neutral"]
# how a KPI's 95% interval is computed (SPEC §4.6; the formulas: metrics/uncertainty.py)
#   wilson   a proportion x / n of customers: Wilson score; a difference of two: Newcombe
#   total    a money total over customers: per-customer sum of squares (compound Poisson, CLT)
#   ratio    a ratio of two per-customer sums (AOV, purchases per customer, a revenue share):
#            delta method on the per-customer values (CLT)
#   poisson  a count of customers: Poisson (variance = count)
#   ltv      LTV = revenue per customer × lifetime: the two relative errors combined (delta method)
#   none     no interval (not a headline KPI, or not a sampled quantity)
Uncertainty = Literal["wilson", "total", "ratio", "poisson", "ltv", "none"]


@dataclass(frozen=True)
class KpiSpec:
    """How one KPI is labelled, formatted and judged.

    ``good`` is the direction a manager wants: ``up`` (more revenue), ``down`` (less churn) or
    ``neutral`` (a share that is neither good nor bad by itself). ``unit`` picks the formatter and
    the kind of smallest change worth reporting (``report.min_change``: percentage points for
    rates, a relative change for the rest). ``uncertainty`` names the interval method.
    """

    key: str
    label: str
    unit: Unit
    good: Direction
    help: str = ""
    uncertainty: Uncertainty = "none"


KPI_SPECS: dict[str, KpiSpec] = {
    s.key: s
    for s in [
        KpiSpec("revenue", N_("Revenue (net)"), "money", "up", N_("gross revenue minus refunds"), "total"),
        KpiSpec("gross_revenue", N_("Gross revenue"), "money", "up", N_("sum of positive payments"), "total"),
        KpiSpec("refunds", N_("Refunds"), "money", "down", N_("money paid back in the period")),
        KpiSpec("revenue_new", N_("Revenue from first purchases"), "money", "up"),
        KpiSpec("revenue_returning", N_("Revenue from repeat purchases"), "money", "up"),
        KpiSpec("revenue_guest", N_("Revenue from guest payments"), "money", "up",
                N_("payments without a customer id (validation.empty_customer_id = \"guest\")")),
        KpiSpec("new_revenue_share", N_("New (first purchases), share of revenue"), "rate", "neutral",
                N_("first-purchase revenue / gross revenue"), "ratio"),
        KpiSpec("margin", N_("Margin"), "money", "up", N_("net revenue minus cost")),
        KpiSpec("customers", N_("Customers who bought in the period"), "count", "up", N_("customers with a purchase in the period"),
                "poisson"),
        KpiSpec("customers_new", N_("New customers"), "count", "up", N_("first purchase ever in the period"),
                "poisson"),
        KpiSpec("customers_returning", N_("Returning customers"), "count", "up",
                N_("acquired before the period, bought in it"), "poisson"),
        KpiSpec("purchases", N_("Purchases"), "count", "up", N_("customer-days with a positive payment"), "total"),
        # labelled by the document's ``aov_basis`` (see formatting.kpi_spec); this generic label only
        # for documents that do not say whether AOV was per order or per purchase
        KpiSpec("aov", N_("AOV"), "money", "up", N_("gross revenue / orders when order ids are mapped, else / purchases"),
                "ratio"),
        KpiSpec("purchase_frequency", N_("Purchases per customer"), "number", "up",
                N_("purchases / customers in the period"), "ratio"),
        KpiSpec("repeat_purchase_rate", N_("Repeat purchase rate"), "rate", "up",
                N_("customers with 2+ purchases in the period / customers"), "wilson"),
        KpiSpec("refund_rate", N_("Refund rate"), "rate", "down", N_("refunds / gross revenue")),
        KpiSpec("customers_start", N_("Active customers at start"), "count", "up"),
        KpiSpec("customers_end", N_("Active customers at end"), "count", "up"),
        KpiSpec("customers_churned", N_("Churned customers"), "count", "down"),
        KpiSpec("customers_reactivated", N_("Reactivated customers"), "count", "up"),
        KpiSpec("customers_new_lapsed", N_("New customers already lapsed"), "count", "down"),
        KpiSpec("crr", N_("Customer retention rate (CRR)"), "rate", "up", "(CE − CN) / CS", "wilson"),
        KpiSpec("churn_rate", N_("Churn rate"), "rate", "down", "CL / CS", "wilson"),
        KpiSpec("avg_lifetime_years", N_("Average customer lifetime"), "years", "up"),
        KpiSpec("ltv", N_("LTV by formula"), "money", "up", "AOV × AF × AL", "ltv"),
        KpiSpec("median_days_to_second_purchase", N_("Median days to 2nd purchase"), "days", "down"),
    ]
}

# AOV has one label per definition (issue 12): metrics.json's ``kpis.aov`` is per order when order
# ids are mapped (SPEC §4.5) and says which in ``aov_basis``; tables that divide by purchases
# (new vs returning, segments) always say "per purchase".
AOV_SPECS: dict[str, KpiSpec] = {
    "order": KpiSpec("aov", N_("AOV per order"), "money", "up", N_("gross revenue / orders"), "ratio"),
    "purchase": KpiSpec("aov", N_("AOV per purchase"), "money", "up", N_("gross revenue / purchases"), "ratio"),
}

# The executive-summary table, in order (issue 4): the KPIs that get an interval and a verdict
HEADLINE_KPIS: list[str] = [
    "revenue",
    "new_revenue_share",
    "customers",
    "customers_new",
    "customers_returning",
    "crr",
    "churn_rate",
    "repeat_purchase_rate",
    "aov",
    "ltv",
]
# the archive's table (the headline KPIs that fit one row) and its trend chart's small multiples
ARCHIVE_KPIS: tuple[str, ...] = ("revenue", "customers", "customers_new", "crr", "churn_rate")
TREND_KPIS: tuple[str, ...] = ("revenue", "customers", "crr", "churn_rate")
# the KPIs considered for the findings' "largest movement"
MOVER_KPIS: tuple[str, ...] = ("customers_new", "customers_returning", "aov", "repeat_purchase_rate", "crr",
                               "churn_rate", "purchase_frequency", "refund_rate")


def min_change_of(key: str, relative: float = 0.01, points: float = 0.005) -> tuple[str, float]:
    """The smallest change of KPI ``key`` worth an arrow (SPEC §4.6, ``report.min_change``):
    ``("points", 0.005)`` for a rate (0.5 percentage points, as a fraction), else
    ``("relative", 0.01)`` (1% of the reference value)."""
    spec = KPI_SPECS.get(key)
    return ("points", points) if spec is not None and spec.unit == "rate" else ("relative", relative)


# report.min_change's defaults (config.MinChangeSettings): 1% relative, 0.5 percentage points
DEFAULT_MIN_CHANGE: dict[str, float] = {"relative": 0.01, "rate_points": 0.5}


def is_real_change(key: str, delta: float, reference: float | None, significant: bool | None,
                   min_change: Mapping[str, float] | None = None) -> bool:
    """Whether a change of KPI ``key`` earns an arrow, a colour and a finding (SPEC §4.6):
    significant (its 95% interval excludes zero; ``None`` = not known, e.g. a KPI without an
    interval or a document from before intervals) **and** larger than ``report.min_change`` —
    |delta| > ``rate_points`` percentage points for a rate (``delta`` a fraction), else
    |delta| / |reference| > ``relative``."""
    if significant is False:
        return False
    m = {**DEFAULT_MIN_CHANGE, **(min_change or {})}
    kind, _limit = min_change_of(key)
    if kind == "points":
        return abs(delta) > m["rate_points"] / 100 + 1e-12
    if reference is None or float(reference) == 0:
        return delta != 0
    return abs(delta) / abs(float(reference)) > m["relative"] + 1e-12
