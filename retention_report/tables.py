"""HTML tables and text blocks for the report, formatted for reading.

Every function returns an HTML string (wrap it in ``IPython.display.HTML`` in a notebook). All
text that comes from data or config (segment values, source names) is escaped, and data values
in cells are shortened to 40 characters (``formatting.shorten_all``). Numbers are right-aligned
with thousands separators; rates are shown as percents; missing values as "n/a".

Cells showing a metric carry ``data-kpi="<key>"`` (a metrics.json KPI key, or ``aov_per_purchase``,
``segment_customer_share.<segment>`` …) and ``data-period`` (``current``/``previous``/``year_ago``),
so the same number can be found — and checked to agree — wherever the report shows it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .data.validation import rule_label
from .formatting import (
    AOV_SPECS,
    HEADLINE_KPIS,
    coverage,
    fmt_count,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_value,
    is_missing,
    kpi_rows,
    shorten,
    shorten_all,
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
    "aov_note",
    "shorten",
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


def _kpi_attr(key: str, period: str = "current") -> str:
    return f' data-kpi="{esc(key)}" data-period="{esc(period)}"'


_COVERAGE_NOTE = {"partial": "partial data", "none": "no data"}


def _coverage_footnote(doc: Mapping[str, Any], title: str, cov: str) -> str:
    first = str((doc.get("data_quality") or {}).get("first_payment") or "")[:10]
    last = str((doc.get("data_quality") or {}).get("last_payment") or "")[:10]
    if cov == "none":
        return (f"{title}: no data — it lies outside the data ({first or '?'} to {last or '?'}), "
                "so there is nothing to compare with.")
    return (f"{title}: partial data — the data ({first or '?'} to {last or '?'}) cover only part of it, "
            "so its values are incomplete and the changes against it are shown in grey, not judged.")


def kpi_table(doc: Mapping[str, Any], keys: Sequence[str] = HEADLINE_KPIS, currency: str = "EUR") -> str:
    """The executive-summary KPI table: value in the period, previous period, a year ago, and the
    changes (arrow, coloured by good/bad direction).

    A reference period the data cover only partly (``coverage`` of ``previous_period`` /
    ``year_ago_period``) says so in its column headers and its changes are not coloured; one with no
    data at all shows "no data" instead of zeros and changes."""
    cur_t = _period_title(doc, doc.get("period", "This period"))
    refs = [(_period_title(doc.get(which), fallback), coverage(doc, which), period)
            for which, fallback, period in (("previous_period", "Previous", "previous"),
                                            ("year_ago_period", "Year ago", "year_ago"))]

    def head_cell(text: str, cov: str, cls: str = "num") -> str:
        note_ = _COVERAGE_NOTE.get(cov)
        extra = f"<br><span class='rr-col-note'>{esc(note_)}</span>" if note_ else ""
        return f"<th scope='col' class='{cls}'>{esc(text)}{extra}</th>"

    head = (
        "<thead><tr><th scope='col' class='rr-label'>KPI</th>"
        f"<th scope='col' class='num rr-current'>{esc(cur_t)}</th>"
        + "".join(head_cell(t, cov) for t, cov, _ in refs)
        + "".join(head_cell(f"vs {t}", cov) for t, cov, _ in refs)
        + "</tr></thead>"
    )
    rows = []
    for row in kpi_rows(doc, currency, keys):
        key, spec = row.key, row.spec
        cells = [f"<th scope='row' class='rr-label' title='{esc(spec.help)}'>{esc(spec.label)}</th>"]
        cells.append(f"<td class='num rr-current'{_kpi_attr(key)}>{esc(row.value)}</td>")
        for _, cov, period in refs:
            shown = "no data" if cov == "none" else getattr(row, period)
            cls = " rr-nodata" if cov == "none" else ""
            cells.append(f"<td class='num{cls}'{_kpi_attr(key, period)}>{esc(shown)}</td>")
        for _, cov, period in refs:
            if cov == "none":
                cells.append("<td class='num rr-change rr-nodata'>no data</td>")
                continue
            c = getattr(row, f"vs_{period}")
            tone = "partial" if cov == "partial" else c.tone
            cells.append(f"<td class='num rr-change rr-{tone}'>{esc(c.text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = ["▲/▼ direction of the change; green is good, red is bad for the business. "
             "Changes of rates are in percentage points (pp)."]
    notes += [_coverage_footnote(doc, t, cov) for t, cov, _ in refs if cov != "full"]
    return (
        "<table class='rr-table rr-kpis'>" + head + "<tbody>" + "".join(rows) + "</tbody></table>"
        + "".join(f"<p class='rr-note'>{esc(n)}</p>" for n in notes)
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
    cell_kpis: Mapping[tuple[Any, str], str] | None = None,
    width: int = 40,
    css_class: str = "",
) -> str:
    """A DataFrame as a formatted table. ``formats`` maps column → money|count|pct|number|text
    and selects the columns shown, in order. Row labels and text cells (values from data) are
    shortened to ``width`` characters, kept distinct; ``cell_kpis`` maps (row, column) to the
    ``data-kpi`` key of that cell."""
    labels = labels or {}
    cell_kpis = cell_kpis or {}
    head = f"<th scope='col' class='rr-label'>{esc(index_label)}</th>" + "".join(
        f"<th scope='col' class='{'' if formats[c] == 'text' else 'num'}'>{esc(labels.get(c, c))}</th>"
        for c in formats
    )
    names = shorten_all([(row_labels or {}).get(idx, str(idx)) for idx in frame.index], width)
    texts = {c: shorten_all([_fmt("text", v, currency) for v in frame[c]], width)
             for c, kind in formats.items() if kind == "text"}
    rows = []
    for i, (idx, row) in enumerate(frame.iterrows()):
        cls = " class='rr-total'" if total_row is not None and idx == total_row else ""
        cells = []
        for c, kind in formats.items():
            text = texts[c][i] if kind == "text" else _fmt(kind, row[c], currency)
            key = cell_kpis.get((idx, c))
            attr = _kpi_attr(key) if key else ""
            cells.append(f"<td class='{'' if kind == 'text' else 'num'}'{attr}>{esc(text)}</td>")
        rows.append(f"<tr{cls}><th scope='row' class='rr-label'>{esc(names[i])}</th>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    cls_ = f"rr-table {esc(css_class)}".strip()
    return f"<table class='{cls_}'>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# where the new-vs-returning table shows a number metrics.json also has (SPEC §4.1)
_NVR_KPIS = {
    ("new", "revenue"): "revenue_new",
    ("returning", "revenue"): "revenue_returning",
    ("total", "revenue"): "gross_revenue",
    ("new", "revenue_share"): "new_revenue_share",
    ("new", "customers"): "customers_new",
    ("returning", "customers"): "customers_returning",
    ("total", "customers"): "customers",
    ("total", "purchases"): "purchases",
    ("total", "aov"): "aov_per_purchase",
}


def new_vs_returning_table(table: pd.DataFrame, currency: str = "EUR", has_margin: bool = False) -> str:
    """The §4.1 table: new, returning and total. Its AOV divides by purchases (the rows split
    purchases, not orders): "AOV per purchase", whatever the headline AOV is."""
    formats = {"revenue": "money", "revenue_share": "pct"}
    if has_margin:
        formats["margin"] = "money"
    formats.update({"customers": "count", "purchases": "count", "payments": "count", "aov": "money"})
    labels = {"revenue": "Gross revenue", "revenue_share": "Share", "margin": "Margin",
              "customers": "Customers", "purchases": "Purchases", "payments": "Payments",
              "aov": AOV_SPECS["purchase"].label}
    return frame_table(table, formats, labels, "", {"new": "New (first purchase)", "returning": "Returning",
                                                    "total": "Total"}, currency, total_row="total",
                       cell_kpis=_NVR_KPIS)


def aov_note(doc: Mapping[str, Any], currency: str = "EUR") -> str:
    """Under the new-vs-returning table when the headline AOV is per order: both AOVs, each with
    its definition ("" when the headline AOV is per purchase too)."""
    k = doc.get("kpis") or {}
    if doc.get("aov_basis") != "order" or not k.get("purchases"):
        return ""
    per_purchase = k["gross_revenue"] / k["purchases"]
    return (
        "<p class='rr-note'>AOV per purchase = gross revenue / purchases "
        f"(<span{_kpi_attr('aov_per_purchase')}>{esc(fmt_money(per_purchase, currency))}</span> in total); the "
        "summary's AOV per order = gross revenue / orders "
        f"(<span{_kpi_attr('aov')}>{esc(fmt_money(k.get('aov'), currency))}</span>): one purchase (a customer's "
        "payments on one day) can hold several orders.</p>"
    )


def segment_table(table: pd.DataFrame, currency: str = "EUR") -> str:
    """The §4.2 segment table. Customer shares are of *all* customers acquired by the period end,
    lapsed included (the rows add up to 100%), as the findings state them; AOV is per purchase."""
    from .metrics.segments import SEGMENT_LABELS

    frame = table.copy()
    frame["rev_per_customer"] = frame["revenue"] / frame["customers"].where(frame["customers"] > 0)
    formats = {"customers": "count", "customer_share": "pct", "revenue": "money", "revenue_share": "pct",
               "purchases": "count", "aov": "money", "rev_per_customer": "money"}
    labels = {"customers": "Customers", "customer_share": "% of all customers", "revenue": "Revenue",
              "revenue_share": "% of revenue", "purchases": "Purchases", "aov": AOV_SPECS["purchase"].label,
              "rev_per_customer": "Revenue / customer"}
    kpis: dict[tuple[Any, str], str] = {("new", "customers"): "customers_new"}
    for name in frame.index:
        kpis[(name, "customer_share")] = f"segment_customer_share.{name}"
        kpis[(name, "revenue_share")] = f"segment_revenue_share.{name}"
        kpis[(name, "aov")] = f"segment_aov.{name}"
    total = int(frame["customers"].sum())
    caption = (f"% of all customers: of the {fmt_count(total)} customers acquired by the period end, lapsed "
               "included; % of revenue: of the period's gross revenue.")
    return frame_table(frame, formats, labels, "Segment", SEGMENT_LABELS, currency, caption=caption,
                       cell_kpis=kpis, css_class="rr-segments")


def bridge_formulas(k: Mapping[str, Any], window_days: int) -> str:
    """The bridge as a table plus the CRR and churn formulas with the period's numbers."""
    cs, ce, cn = k["customers_start"], k["customers_end"], k["customers_new"]
    cl, re_, nl = k["customers_churned"], k["customers_reactivated"], k["customers_new_lapsed"]
    rows = [
        ("Active at start (CS)", cs, "", "customers_start"),
        ("− Churned (CL)", cl, "active at start, no purchase in the last "
                               f"{window_days} days at the end", "customers_churned"),
        ("+ New (CN)", cn, "first purchase ever in the period", "customers_new"),
        ("− New, already lapsed (NL)", nl, "only when the window is shorter than the period", "customers_new_lapsed"),
        ("+ Reactivated (RE)", re_, "inactive at start, bought again in the period", "customers_reactivated"),
        ("= Active at end (CE)", ce, "", "customers_end"),
    ]
    body = "".join(
        f"<tr{' class=rr-total' if i in (0, 5) else ''}><th scope='row' class='rr-label'>{esc(a)}</th>"
        f"<td class='num'{_kpi_attr(key)}>{esc(fmt_count(b))}</td><td class='rr-muted'>{esc(c)}</td></tr>"
        for i, (a, b, c, key) in enumerate(rows)
    )
    table = ("<table class='rr-table rr-bridge'><thead><tr><th scope='col' class='rr-label'>Customer base</th>"
             "<th scope='col' class='num'>Customers</th><th scope='col'>Meaning</th></tr></thead>"
             f"<tbody>{body}</tbody></table>")

    def n(key: str, value: Any) -> str:
        """A number of the formula, marked with its metric."""
        text = fmt_pct(value) if key in ("crr", "churn_rate") else fmt_count(value)
        return f'<span{_kpi_attr(key)}>{esc(text)}</span>'

    if cs:
        lines = [
            f"CRR = (CE − CN) / CS = ({n('customers_end', ce)} − {n('customers_new', cn)}) / "
            f"{n('customers_start', cs)} = {n('crr', k['crr'])}",
            f"Churn = CL / CS = {n('customers_churned', cl)} / {n('customers_start', cs)} = "
            f"{n('churn_rate', k['churn_rate'])}",
            f"Check: CS − CL + CN − NL + RE = {n('customers_start', cs)} − {n('customers_churned', cl)} + "
            f"{n('customers_new', cn)} − {n('customers_new_lapsed', nl)} + {n('customers_reactivated', re_)} = "
            f"{esc(fmt_count(cs - cl + cn - nl + re_))} = CE",
        ]
    else:
        lines = [esc("CRR = (CE − CN) / CS is n/a: no customer was active at the start of the period"),
                 esc("Churn = CL / CS is n/a for the same reason")]
    formulas = "".join(f"<div class='rr-formula'>{t}</div>" for t in lines)
    return table + formulas


def ltv_table(doc: Mapping[str, Any], currency: str = "EUR") -> str:
    """LTV with its inputs: AOV × AF (annualised) × AL."""
    k = doc["kpis"]
    days = (pd.Timestamp(doc["end"]) - pd.Timestamp(doc["start"])).days + 1
    af = k.get("purchase_frequency")
    af_year = None if is_missing(af) else af * 365.25 / days
    extra = doc.get("extra") or {}
    # AF counts purchases, so the LTV's AOV is per purchase (AOV × AF = revenue per customer) even
    # when the headline AOV is per order
    aov = AOV_SPECS["purchase"]
    purchases = k.get("purchases")
    aov_value = k.get("gross_revenue") / purchases if purchases and not is_missing(k.get("gross_revenue")) else None
    aov_key = "aov" if doc.get("aov_basis") != "order" else "aov_per_purchase"
    rows = [
        (aov.label, fmt_money(aov_value, currency), aov.help, aov_key),
        ("Purchase frequency in the period (AF)", fmt_number(af), "purchases / customers", "purchase_frequency"),
        ("AF per year", fmt_number(af_year), f"AF × 365.25 / {days} days", ""),
        ("Average lifetime (AL)", fmt_value("avg_lifetime_years", k.get("avg_lifetime_years")),
         "1 / annual churn, annual churn = 1 − (1 − churn)^(365.25 / days)", "avg_lifetime_years"),
        ("LTV", fmt_money(k.get("ltv"), currency), f"{aov.label} × AF per year × AL", "ltv"),
        ("LTV on margin", fmt_money(extra.get("ltv_margin"), currency), "LTV × margin / net revenue", ""),
        ("Empirical 12-month revenue per customer", fmt_money(extra.get("ltv_empirical_12m"), currency),
         "what the 12 most recent cohorts with a full year of history spent in their first 12 months", ""),
    ]
    if is_missing(extra.get("ltv_margin")):
        rows = [r for r in rows if r[0] != "LTV on margin"]
    body = "".join(
        f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td class='num'{_kpi_attr(key) if key else ''}>"
        f"{esc(b)}</td><td class='rr-muted'>{esc(c)}</td></tr>"
        for a, b, c, key in rows
    )
    return ("<table class='rr-table'><thead><tr><th scope='col' class='rr-label'>Input</th>"
            "<th scope='col' class='num'>Value</th><th scope='col'>How</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def data_quality_table(dq: Mapping[str, Any]) -> str:
    rows = [("Rows read", fmt_count(dq.get("rows_read"))), ("Rows used", fmt_count(dq.get("rows_used")))]
    dropped = dq.get("rows_dropped") or {}
    for reason, n in dropped.items():
        rows.append((f"Dropped: {rule_label(reason)}", fmt_count(n)))
    if not dropped:
        rows.append(("Rows dropped", "0"))
    rows.append(("First payment", str(dq.get("first_payment") or "n/a")))
    rows.append(("Last payment", str(dq.get("last_payment") or "n/a")))
    if dq.get("derived_tables_cached_at"):  # a warm run: validation and derived tables of an earlier load
        rows.append(("Validated and derived", f"{str(dq['derived_tables_cached_at'])[:16].replace('T', ' ')} "
                                              "(cached; the source files are unchanged since)"))
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
    (AOV_SPECS["purchase"].label, "Gross revenue / purchases — in the new-vs-returning and segment tables, "
                                  "in LTV, and the headline AOV when order ids are not mapped."),
    (AOV_SPECS["order"].label, "Gross revenue / orders (distinct order ids of positive payments) — the "
                               "headline AOV when order ids are mapped."),
    ("Repeat purchase rate", "Customers with two or more purchases in the period / customers."),
    ("LTV", "AOV per purchase × purchases per year × average lifetime in years (1 / annual churn): "
            "revenue per customer and year × lifetime."),
]


def definitions(window_days: int = 365, aov_basis: str | None = None) -> str:
    """The appendix definitions. ``aov_basis`` (metrics.json's): "AOV per order" is defined only
    when the report shows it (``order``)."""
    aov = AOV_SPECS[aov_basis].label if aov_basis in AOV_SPECS else "AOV"
    items = "".join(
        f"<dt>{esc(t)}</dt><dd>{esc(d.replace('W days', f'{window_days} days').replace('{aov}', aov))}</dd>"
        for t, d in DEFINITIONS
        if t != AOV_SPECS["order"].label or aov_basis == "order"
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
