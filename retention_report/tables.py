"""HTML tables and text blocks for the report, formatted for reading.

Every function returns an HTML string (wrap it in ``IPython.display.HTML`` in a notebook). All
text that comes from data or config (segment values, source names) is escaped. Numbers are
right-aligned with thousands separators; rates are shown as percents; missing values as "n/a".
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .formatting import (
    HEADLINE_KPIS,
    KPI_SPECS,
    change,
    fmt_count,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_value,
    is_missing,
)
from .periods import parse_period

__all__ = [
    "kpi_table",
    "findings_list",
    "frame_table",
    "new_vs_returning_table",
    "segment_table",
    "bridge_formulas",
    "ltv_table",
    "data_quality_table",
    "definitions",
    "banner",
    "run_details",
    "note",
]

esc = html.escape


def _period_title(info: Mapping[str, Any] | None, fallback: str) -> str:
    try:
        return parse_period(str(info["period"])).title  # type: ignore[index]
    except Exception:
        return fallback


def note(text: str) -> str:
    """A small explanatory paragraph (text is escaped)."""
    return f'<p class="rr-note">{esc(text)}</p>'


def banner(text: str, kind: str = "warning") -> str:
    """A highlighted box, e.g. the incomplete-period warning."""
    return f'<div class="rr-banner rr-banner-{esc(kind)}" role="note">{esc(text)}</div>'


def kpi_table(doc: Mapping[str, Any], keys: Sequence[str] = HEADLINE_KPIS, currency: str = "EUR") -> str:
    """The executive-summary KPI table: value in the period, previous period, a year ago, and the
    changes (arrow, coloured by good/bad direction)."""
    cur_t = _period_title(doc, doc.get("period", "This period"))
    prev_t = _period_title(doc.get("previous_period"), "Previous")
    ago_t = _period_title(doc.get("year_ago_period"), "Year ago")
    k, p, a = doc["kpis"], doc.get("previous") or {}, doc.get("year_ago") or {}
    head = (
        "<thead><tr><th scope='col' class='rr-label'>KPI</th>"
        f"<th scope='col' class='num rr-current'>{esc(cur_t)}</th>"
        f"<th scope='col' class='num'>{esc(prev_t)}</th>"
        f"<th scope='col' class='num'>{esc(ago_t)}</th>"
        f"<th scope='col' class='num'>vs {esc(prev_t)}</th>"
        f"<th scope='col' class='num'>vs {esc(ago_t)}</th></tr></thead>"
    )
    rows = []
    for key in keys:
        spec = KPI_SPECS[key]
        cells = [f"<th scope='row' class='rr-label' title='{esc(spec.help)}'>{esc(spec.label)}</th>"]
        cells.append(f"<td class='num rr-current'>{esc(fmt_value(key, k.get(key), currency))}</td>")
        cells.append(f"<td class='num'>{esc(fmt_value(key, p.get(key), currency))}</td>")
        cells.append(f"<td class='num'>{esc(fmt_value(key, a.get(key), currency))}</td>")
        for ref in (p, a):
            c = change(key, k.get(key), ref.get(key), currency)
            cells.append(f"<td class='num rr-change rr-{c.tone}'>{esc(c.text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table class='rr-table rr-kpis'>" + head + "<tbody>" + "".join(rows) + "</tbody></table>"
        "<p class='rr-note'>▲/▼ direction of the change; green is good, red is bad for the business. "
        "Changes of rates are in percentage points (pp).</p>"
    )


def findings_list(items: Sequence[str]) -> str:
    lis = "".join(f"<li>{esc(t)}</li>" for t in items)
    return f"<ol class='rr-findings'>{lis}</ol>"


def _fmt(kind: str, v: Any, currency: str) -> str:
    if kind == "money":
        return fmt_money(v, currency)
    if kind == "count":
        return fmt_count(v)
    if kind == "pct":
        return fmt_pct(v)
    if kind == "text":
        return "" if is_missing(v) else str(v)
    return fmt_number(v)


def frame_table(
    frame: pd.DataFrame,
    formats: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    index_label: str = "",
    row_labels: Mapping[Any, str] | None = None,
    currency: str = "EUR",
    total_row: Any = None,
    caption: str = "",
) -> str:
    """A DataFrame as a formatted table. ``formats`` maps column → money|count|pct|number|text
    and selects the columns shown, in order."""
    labels = labels or {}
    head = f"<th scope='col' class='rr-label'>{esc(index_label)}</th>" + "".join(
        f"<th scope='col' class='{'' if formats[c] == 'text' else 'num'}'>{esc(labels.get(c, c))}</th>"
        for c in formats
    )
    rows = []
    for idx, row in frame.iterrows():
        label = (row_labels or {}).get(idx, str(idx))
        cls = " class='rr-total'" if total_row is not None and idx == total_row else ""
        cells = "".join(
            f"<td class='{'' if kind == 'text' else 'num'}'>{esc(_fmt(kind, row[c], currency))}</td>"
            for c, kind in formats.items()
        )
        rows.append(f"<tr{cls}><th scope='row' class='rr-label'>{esc(label)}</th>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table class='rr-table'>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def new_vs_returning_table(table: pd.DataFrame, currency: str = "EUR", has_margin: bool = False) -> str:
    """The §4.1 table: new, returning and total."""
    formats = {"revenue": "money", "revenue_share": "pct"}
    if has_margin:
        formats["margin"] = "money"
    formats.update({"customers": "count", "purchases": "count", "payments": "count", "aov": "money"})
    labels = {"revenue": "Gross revenue", "revenue_share": "Share", "margin": "Margin",
              "customers": "Customers", "purchases": "Purchases", "payments": "Payments",
              "aov": "Avg order value"}
    return frame_table(table, formats, labels, "", {"new": "New (first purchase)", "returning": "Returning",
                                                    "total": "Total"}, currency, total_row="total")


def segment_table(table: pd.DataFrame, currency: str = "EUR") -> str:
    from .metrics.segments import SEGMENT_LABELS

    frame = table.copy()
    frame["rev_per_customer"] = frame["revenue"] / frame["customers"].where(frame["customers"] > 0)
    formats = {"customers": "count", "customer_share": "pct", "revenue": "money", "revenue_share": "pct",
               "purchases": "count", "aov": "money", "rev_per_customer": "money"}
    labels = {"customers": "Customers", "customer_share": "% of customers", "revenue": "Revenue",
              "revenue_share": "% of revenue", "purchases": "Purchases", "aov": "Avg order value",
              "rev_per_customer": "Revenue / customer"}
    return frame_table(frame, formats, labels, "Segment", SEGMENT_LABELS, currency)


def bridge_formulas(k: Mapping[str, Any], window_days: int) -> str:
    """The bridge as a table plus the CRR and churn formulas with the period's numbers."""
    cs, ce, cn = k["customers_start"], k["customers_end"], k["customers_new"]
    cl, re_, nl = k["customers_churned"], k["customers_reactivated"], k["customers_new_lapsed"]
    rows = [
        ("Active at start (CS)", fmt_count(cs), ""),
        ("− Churned (CL)", fmt_count(cl), "active at start, no purchase in the last "
                                          f"{window_days} days at the end"),
        ("+ New (CN)", fmt_count(cn), "first purchase ever in the period"),
        ("− New, already lapsed (NL)", fmt_count(nl), "only when the window is shorter than the period"),
        ("+ Reactivated (RE)", fmt_count(re_), "inactive at start, bought again in the period"),
        ("= Active at end (CE)", fmt_count(ce), ""),
    ]
    body = "".join(
        f"<tr{' class=rr-total' if i in (0, 5) else ''}><th scope='row' class='rr-label'>{esc(a)}</th>"
        f"<td class='num'>{esc(b)}</td><td class='rr-muted'>{esc(c)}</td></tr>"
        for i, (a, b, c) in enumerate(rows)
    )
    table = ("<table class='rr-table rr-bridge'><thead><tr><th scope='col' class='rr-label'>Customer base</th>"
             "<th scope='col' class='num'>Customers</th><th scope='col'>Meaning</th></tr></thead>"
             f"<tbody>{body}</tbody></table>")
    if cs:
        crr = f"CRR = (CE − CN) / CS = ({fmt_count(ce)} − {fmt_count(cn)}) / {fmt_count(cs)} = {fmt_pct(k['crr'])}"
        churn = f"Churn = CL / CS = {fmt_count(cl)} / {fmt_count(cs)} = {fmt_pct(k['churn_rate'])}"
        check = (f"Check: CS − CL + CN − NL + RE = {fmt_count(cs)} − {fmt_count(cl)} + {fmt_count(cn)} − "
                 f"{fmt_count(nl)} + {fmt_count(re_)} = {fmt_count(cs - cl + cn - nl + re_)} = CE")
    else:
        crr = "CRR = (CE − CN) / CS is n/a: no customer was active at the start of the period"
        churn = "Churn = CL / CS is n/a for the same reason"
        check = ""
    formulas = "".join(f"<div class='rr-formula'>{esc(t)}</div>" for t in (crr, churn, check) if t)
    return table + formulas


def ltv_table(doc: Mapping[str, Any], currency: str = "EUR") -> str:
    """LTV with its inputs: AOV × AF (annualised) × AL."""
    k = doc["kpis"]
    days = (pd.Timestamp(doc["end"]) - pd.Timestamp(doc["start"])).days + 1
    af = k.get("purchase_frequency")
    af_year = None if is_missing(af) else af * 365.25 / days
    extra = doc.get("extra") or {}
    rows = [
        ("Average order value (AOV)", fmt_money(k.get("aov"), currency), "gross revenue / purchases"),
        ("Purchase frequency in the period (AF)", fmt_number(af), "purchases / customers"),
        ("AF per year", fmt_number(af_year), f"AF × 365.25 / {days} days"),
        ("Average lifetime (AL)", fmt_value("avg_lifetime_years", k.get("avg_lifetime_years")),
         "1 / annual churn, annual churn = 1 − (1 − churn)^(365.25 / days)"),
        ("LTV", fmt_money(k.get("ltv"), currency), "AOV × AF per year × AL"),
        ("LTV on margin", fmt_money(extra.get("ltv_margin"), currency), "LTV × margin / net revenue"),
        ("Empirical 12-month revenue per customer", fmt_money(extra.get("ltv_empirical_12m"), currency),
         "what the 12 most recent cohorts with a full year of history spent in their first 12 months"),
    ]
    if is_missing(extra.get("ltv_margin")):
        rows = [r for r in rows if r[0] != "LTV on margin"]
    body = "".join(
        f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td class='num'>{esc(b)}</td>"
        f"<td class='rr-muted'>{esc(c)}</td></tr>"
        for a, b, c in rows
    )
    return ("<table class='rr-table'><thead><tr><th scope='col' class='rr-label'>Input</th>"
            "<th scope='col' class='num'>Value</th><th scope='col'>How</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


_DROP_REASONS = {
    "null_customer_id": "empty customer id",
    "unparsable_paid_at": "date missing or not a date",
    "non_numeric_amount": "amount missing or not a number",
    "non_numeric_cost": "cost not a number",
    "future_paid_at": "dated in the future",
    "duplicate_row": "exact duplicate of another row",
}


def data_quality_table(dq: Mapping[str, Any]) -> str:
    rows = [("Rows read", fmt_count(dq.get("rows_read"))), ("Rows used", fmt_count(dq.get("rows_used")))]
    dropped = dq.get("rows_dropped") or {}
    for reason, n in dropped.items():
        rows.append((f"Dropped: {_DROP_REASONS.get(reason, reason)}", fmt_count(n)))
    if not dropped:
        rows.append(("Rows dropped", "0"))
    rows.append(("First payment", str(dq.get("first_payment") or "n/a")))
    rows.append(("Last payment", str(dq.get("last_payment") or "n/a")))
    body = "".join(f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td class='num'>{esc(b)}</td></tr>"
                   for a, b in rows)
    return f"<table class='rr-table rr-narrow'><tbody>{body}</tbody></table>"


DEFINITIONS = [
    ("Purchase", "All of a customer's positive payments on one calendar day, merged. Counts and "
                 "frequencies are in purchases, not payment rows."),
    ("New / returning purchase", "A purchase is new when it is the customer's first purchase ever; "
                                 "every later purchase is returning."),
    ("New customer", "First purchase ever falls in the period (acquisition date from the whole history)."),
    ("Returning customer", "Acquired before the period and bought in it."),
    ("Revenue", "Gross revenue = sum of positive payments; refunds = money paid back; "
                "net revenue = gross − refunds."),
    ("Active customer", "At least one purchase in the activity window (W days) up to the date."),
    ("Churn rate", "CL / CS: customers active at the start who are no longer active at the end, "
                   "over those active at the start."),
    ("CRR", "(CE − CN) / CS: active customers at the end, without the new ones, over those at the "
            "start. Reactivated customers count as retained."),
    ("Frequency segments", "Returning active customers ranked by purchases per month over the "
                           "lookback: frequent (X), medium (Y), rare (Z); plus new and lapsed."),
    ("Cohort retention", "Share of a cohort (acquisition month) buying in each later month."),
    ("Revenue retention", "Cohort revenue in a month over its revenue in the acquisition month."),
    ("AOV", "Gross revenue / purchases (per order when order ids are given)."),
    ("Repeat purchase rate", "Customers with two or more purchases in the period / customers."),
    ("LTV", "AOV × purchases per year × average lifetime in years (1 / annual churn)."),
]


def definitions(window_days: int = 365) -> str:
    items = "".join(
        f"<dt>{esc(t)}</dt><dd>{esc(d.replace('W days', f'{window_days} days'))}</dd>" for t, d in DEFINITIONS
    )
    return f"<dl class='rr-definitions'>{items}</dl>"


def run_details(settings_public: Mapping[str, Any], version: str, generated_at: str = "") -> str:
    """Config summary without secrets (values are escaped)."""
    src = settings_public.get("source", {})
    m = settings_public.get("metrics", {})
    rows = [
        ("Package version", f"retention-report {version}"),
        ("Generated", generated_at),
        ("Data source", src.get("name") or src.get("path") or src.get("url") or "embedded sample data"),
        ("Time zone", settings_public.get("timezone", "")),
        ("Activity window", f"{m.get('activity_window_days')} days"),
        ("New/returning basis", str(m.get("split_basis"))),
        ("Cohort grain", f"{m.get('cohort_grain')} ({m.get('cohort_count')} cohorts)"),
        ("Frequency lookback", f"{m.get('lookback_months')} months"),
        ("Lifetime method", str(m.get("lifetime_method"))),
        ("Invalid rows", str(settings_public.get("validation", {}).get("on_invalid"))),
    ]
    body = "".join(f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td>{esc(str(b))}</td></tr>"
                   for a, b in rows if b)
    return f"<table class='rr-table rr-narrow'><tbody>{body}</tbody></table>"
