"""How numbers are shown to people: KPI labels, units, good direction and text formatting.

Shared by the report notebooks, the findings and the email, so a KPI reads the same everywhere.
Values are the raw metrics.json values (rates as fractions); ``None``/NaN is shown as ``n/a``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "KpiSpec",
    "KPI_SPECS",
    "AOV_SPECS",
    "HEADLINE_KPIS",
    "kpi_spec",
    "coverage",
    "shorten",
    "shorten_all",
    "Change",
    "change",
    "KpiRow",
    "kpi_rows",
    "movement_phrase",
    "fmt_value",
    "fmt_money",
    "fmt_count",
    "fmt_pct",
    "fmt_number",
    "is_missing",
]

Unit = Literal["money", "count", "rate", "number", "days", "years"]
Direction = Literal["up", "down", "neutral"]

_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "RUB": "₽", "INR": "₹"}


@dataclass(frozen=True)
class KpiSpec:
    """How one KPI is labelled and judged.

    ``good`` is the direction a manager wants: ``up`` (more revenue), ``down`` (less churn) or
    ``neutral`` (a share that is neither good nor bad by itself).
    """

    key: str
    label: str
    unit: Unit
    good: Direction
    help: str = ""


KPI_SPECS: dict[str, KpiSpec] = {
    s.key: s
    for s in [
        KpiSpec("revenue", "Revenue (net)", "money", "up", "gross revenue minus refunds"),
        KpiSpec("gross_revenue", "Gross revenue", "money", "up", "sum of positive payments"),
        KpiSpec("refunds", "Refunds", "money", "down", "money paid back in the period"),
        KpiSpec("revenue_new", "Revenue from first purchases", "money", "up"),
        KpiSpec("revenue_returning", "Revenue from repeat purchases", "money", "up"),
        KpiSpec("new_revenue_share", "New-customer revenue share", "rate", "neutral",
                "first-purchase revenue / gross revenue"),
        KpiSpec("margin", "Margin", "money", "up", "net revenue minus cost"),
        KpiSpec("customers", "Customers", "count", "up", "customers with a purchase in the period"),
        KpiSpec("customers_new", "New customers", "count", "up", "first purchase ever in the period"),
        KpiSpec("customers_returning", "Returning customers", "count", "up",
                "acquired before the period, bought in it"),
        KpiSpec("purchases", "Purchases", "count", "up", "customer-days with a positive payment"),
        # labelled by the document's ``aov_basis`` (see kpi_spec); this generic label only for
        # documents that do not say whether AOV was per order or per purchase
        KpiSpec("aov", "AOV", "money", "up", "gross revenue / orders when order ids are mapped, else / purchases"),
        KpiSpec("purchase_frequency", "Purchases per customer", "number", "up",
                "purchases / customers in the period"),
        KpiSpec("repeat_purchase_rate", "Repeat purchase rate", "rate", "up",
                "customers with 2+ purchases in the period / customers"),
        KpiSpec("refund_rate", "Refund rate", "rate", "down", "refunds / gross revenue"),
        KpiSpec("customers_start", "Active customers at start", "count", "up"),
        KpiSpec("customers_end", "Active customers at end", "count", "up"),
        KpiSpec("customers_churned", "Churned customers", "count", "down"),
        KpiSpec("customers_reactivated", "Reactivated customers", "count", "up"),
        KpiSpec("customers_new_lapsed", "New customers already lapsed", "count", "down"),
        KpiSpec("crr", "Customer retention rate (CRR)", "rate", "up", "(CE − CN) / CS"),
        KpiSpec("churn_rate", "Churn rate", "rate", "down", "CL / CS"),
        KpiSpec("avg_lifetime_years", "Average customer lifetime", "years", "up"),
        KpiSpec("ltv", "Customer lifetime value (LTV)", "money", "up", "AOV × AF × AL"),
        KpiSpec("median_days_to_second_purchase", "Median days to 2nd purchase", "days", "down"),
    ]
}

# AOV has one label per definition (issue 12): metrics.json's ``kpis.aov`` is per order when order
# ids are mapped (SPEC §4.5) and says which in ``aov_basis``; tables that divide by purchases
# (new vs returning, segments) always say "per purchase".
AOV_SPECS: dict[str, KpiSpec] = {
    "order": KpiSpec("aov", "AOV per order", "money", "up", "gross revenue / orders"),
    "purchase": KpiSpec("aov", "AOV per purchase", "money", "up", "gross revenue / purchases"),
}


def kpi_spec(key: str, doc: Any = None) -> KpiSpec:
    """The spec of KPI ``key`` as shown for metrics document ``doc`` (AOV per order or per purchase,
    by ``doc["aov_basis"]``)."""
    basis = doc.get("aov_basis") if isinstance(doc, dict) else None
    if basis in AOV_SPECS and key == "aov":
        return AOV_SPECS[basis]
    if key == "ltv":  # AF counts purchases: the LTV's AOV is per purchase whatever the headline's
        return replace(KPI_SPECS[key], help=f"{AOV_SPECS['purchase'].label} × AF × AL")
    return KPI_SPECS[key]


def coverage(doc: Any, which: str) -> str:
    """How much of reference period ``which`` (``previous_period``/``year_ago_period``) the data
    cover: ``full``, ``partial`` or ``none`` (``full`` for documents that do not say)."""
    info = (doc or {}).get(which) or {}
    value = info.get("coverage") if isinstance(info, dict) else None
    return value if value in ("full", "partial", "none") else "full"


def shorten(text: Any, width: int = 40) -> str:
    """``text`` cut to at most ``width`` characters, ending in "…" when cut (segment values from
    data can be thousands of characters long)."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def shorten_all(values: Any, width: int = 40) -> list[str]:
    """:func:`shorten` for several values, kept distinct: long values that would collide after the
    cut keep their ends ("start…end"), and get a number when even that collides."""
    values = [str(v) for v in values]
    out = [shorten(v, width) for v in values]

    def clashes(i: int) -> bool:
        return len(values[i]) > width and sum(o == out[i] for o in out) > 1

    for i in [i for i in range(len(out)) if clashes(i)]:
        tail = (width - 1) // 2
        out[i] = values[i][: width - 1 - tail] + "…" + values[i][-tail:]
    numbered: dict[str, int] = {}
    for i in [i for i in range(len(out)) if clashes(i)]:
        numbered[out[i]] = n = numbered.get(out[i], 0) + 1
        suffix = f" #{n}"
        out[i] = values[i][: width - 1 - len(suffix)] + "…" + suffix
    return out


# The executive-summary table, in order (issue 4).
HEADLINE_KPIS = [
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


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _symbol(currency: str) -> str:
    return _CURRENCY_SYMBOLS.get(currency.upper(), currency)


def fmt_money(v: Any, currency: str = "EUR", decimals: int | None = None) -> str:
    """``1234567.8`` → ``€1,234,568``; small values keep cents (``€45.60``)."""
    if is_missing(v):
        return "n/a"
    v = float(v)
    if decimals is None:
        decimals = 0 if abs(v) >= 1000 else 2
    sym = _symbol(currency)
    sign = "−" if v < 0 else ""
    text = f"{abs(v):,.{decimals}f}"
    return f"{sign}{sym}{text}" if len(sym) == 1 else f"{sign}{text} {sym}"


def fmt_count(v: Any) -> str:
    """``12345`` → ``12,345``."""
    if is_missing(v):
        return "n/a"
    return f"{int(round(float(v))):,}".replace("-", "−")


def fmt_pct(v: Any, decimals: int = 1) -> str:
    """A fraction as a percent: ``0.1234`` → ``12.3%``."""
    if is_missing(v):
        return "n/a"
    return f"{100 * float(v):,.{decimals}f}%".replace("-", "−")


def fmt_number(v: Any, decimals: int = 2) -> str:
    if is_missing(v):
        return "n/a"
    return f"{float(v):,.{decimals}f}".replace("-", "−")


def fmt_value(key: str, v: Any, currency: str = "EUR") -> str:
    """Format a KPI value by its unit."""
    unit = KPI_SPECS[key].unit if key in KPI_SPECS else "number"
    if unit == "money":
        return fmt_money(v, currency)
    if unit == "count":
        return fmt_count(v)
    if unit == "rate":
        return fmt_pct(v)
    if unit == "days":
        return "n/a" if is_missing(v) else f"{float(v):,.0f} days"
    if unit == "years":
        return "n/a" if is_missing(v) else f"{float(v):,.1f} years"
    return fmt_number(v)


@dataclass(frozen=True)
class Change:
    """The change of a KPI from a reference period to the current one.

    ``absolute`` is current − reference (for rates: in percentage points when shown);
    ``relative`` is absolute / |reference| (None when the reference is 0 or missing);
    ``direction`` is ``up``/``down``/``flat``/``n/a``; ``tone`` is ``good``/``bad``/``neutral``.
    """

    absolute: float | None
    relative: float | None
    direction: str
    tone: str
    text: str


def change(key: str, current: Any, reference: Any, currency: str = "EUR") -> Change:
    """Compare ``current`` with ``reference`` for KPI ``key`` and format the change for people."""
    if is_missing(current) or is_missing(reference):
        return Change(None, None, "n/a", "neutral", "n/a")
    cur, ref = float(current), float(reference)
    absolute = cur - ref
    relative = absolute / abs(ref) if ref != 0 else None
    eps = 1e-12
    direction = "up" if absolute > eps else "down" if absolute < -eps else "flat"
    good = KPI_SPECS[key].good if key in KPI_SPECS else "neutral"
    if direction == "flat" or good == "neutral":
        tone = "neutral"
    else:
        tone = "good" if direction == good else "bad"
    unit = KPI_SPECS[key].unit if key in KPI_SPECS else "number"
    arrow = {"up": "▲", "down": "▼", "flat": "▶"}[direction]
    if unit == "rate":
        text = f"{arrow} {100 * absolute:+.1f} pp"
    elif relative is not None:
        text = f"{arrow} {100 * relative:+.1f}%"
    else:
        text = f"{arrow} {fmt_value(key, absolute, currency)}"
    return Change(absolute, relative, direction, tone, text.replace("-", "−"))


def movement_phrase(value: Any, reference: Any, period_name: str, decimals: int = 1) -> str | None:
    """``up 12.3% on Q4 2023``, ``down 4% on Q1 2023`` (``decimals=0``) or ``flat on Q4 2023``: the
    relative change from ``reference`` to ``value``, for a sentence about an amount (revenue).

    None when there is nothing to compare with: either value missing, or ``reference`` 0. The
    percentage is |value − reference| / |reference|, without thousands separators.
    """
    if is_missing(value) or is_missing(reference) or float(reference) == 0:
        return None
    absolute = float(value) - float(reference)
    if not absolute:
        return f"flat on {period_name}"
    relative = absolute / abs(float(reference))
    return f"{'up' if absolute > 0 else 'down'} {abs(100 * relative):.{decimals}f}% on {period_name}"


@dataclass(frozen=True)
class KpiRow:
    """One KPI of a headline table: its spec (label, help), the formatted values of the period, the
    previous period and a year ago, and the changes against those two."""

    key: str
    spec: KpiSpec
    value: str
    previous: str
    year_ago: str
    vs_previous: Change
    vs_year_ago: Change

    @property
    def label(self) -> str:
        return self.spec.label


def kpi_rows(doc: Mapping[str, Any], currency: str = "EUR", keys: Sequence[str] = HEADLINE_KPIS) -> list[KpiRow]:
    """The KPI rows of metrics document ``doc`` (its ``kpis``, ``previous`` and ``year_ago``
    blocks), in the order of ``keys``: what the report's KPI table and the email's show.

    Labels follow the document (:func:`kpi_spec`: "AOV per order" / "AOV per purchase"). The rows
    do not look at the reference periods' ``coverage``; the report's table does.
    """
    k = doc["kpis"]
    prev, ago = doc.get("previous") or {}, doc.get("year_ago") or {}
    return [
        KpiRow(
            key=key,
            spec=kpi_spec(key, doc),
            value=fmt_value(key, k.get(key), currency),
            previous=fmt_value(key, prev.get(key), currency),
            year_ago=fmt_value(key, ago.get(key), currency),
            vs_previous=change(key, k.get(key), prev.get(key), currency),
            vs_year_ago=change(key, k.get(key), ago.get(key), currency),
        )
        for key in keys
    ]
