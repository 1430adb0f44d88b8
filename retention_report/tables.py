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
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from .data.validation import rule_label
from .formatting import (
    AOV_SPECS,
    HEADLINE_KPIS,
    KPI_SPECS,
    SAMPLE_SOURCE_SHORT,
    aov_label,
    coverage,
    doc_change,
    fmt_count,
    fmt_date,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_value,
    is_missing,
    kpi_rows,
    kpi_spec,
    period_title,
    segment_label,
    shorten,
    shorten_all,
    source_label,
    unobservable_keys,
    unobservable_reason,
)
from .i18n import N_, _, get_language, ngettext
from .kpis import DEFAULT_MIN_CHANGE
from .periods import parse_period

__all__ = [
    "kpi_table",
    "ltv_clv_note",
    "interval_table",
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
    if info is None:
        return fallback
    try:
        return period_title(parse_period(str(info["period"])))
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


_COVERAGE_NOTE = {"partial": N_("partial data"), "none": N_("no data")}


def _coverage_footnote(doc: Mapping[str, Any], title: str, cov: str) -> str:
    first = str((doc.get("data_quality") or {}).get("first_payment") or "")[:10]
    last = str((doc.get("data_quality") or {}).get("last_payment") or "")[:10]
    # TRANSLATORS: %(period)s is a period name ("Q1 2023"); %(first)s and %(last)s ISO dates
    words = {"period": title, "first": first or "?", "last": last or "?"}
    if cov == "none":
        return _("%(period)s: no data — it lies outside the data (%(first)s to %(last)s), "
                 "so there is nothing to compare with.") % words
    return _("%(period)s: partial data — the data (%(first)s to %(last)s) cover only part of it, "
             "so its values are incomplete and the changes against it are shown in grey, not judged.") % words


def _min_change_words(doc: Mapping[str, Any]) -> dict[str, str]:
    m = {**DEFAULT_MIN_CHANGE, **(((doc.get("settings") or {}).get("min_change")) or {})}
    return {"relative": fmt_pct(m["relative"], 1, group=False), "points": fmt_number(m["rate_points"], 1)}


def _interval_text(doc: Mapping[str, Any], key: str, currency: str) -> str:
    """"€120 – €180": the 95% interval of KPI ``key`` in metrics.json ``intervals``, or ""."""
    iv = (doc.get("intervals") or {}).get(key)
    if not (isinstance(iv, (list, tuple)) and len(iv) == 2 and not any(is_missing(v) for v in iv)):
        return ""
    lo, hi = float(iv[0]), float(iv[1])
    if KPI_SPECS[key].unit in ("rate", "count"):  # a normal interval may reach below zero
        lo = max(lo, 0.0)
    return f"{fmt_value(key, lo, currency)} – {fmt_value(key, hi, currency)}"


def interval_table(doc: Mapping[str, Any], keys: Sequence[str] = HEADLINE_KPIS, currency: str = "EUR") -> str:
    """"Is the change real?" (SPEC §4.6): each headline KPI with its 95% interval, and each change
    against the previous period and a year ago with the 95% interval of the change and its verdict
    (real: significant and larger than ``report.min_change``; else within noise)."""
    refs = [(_period_title(doc.get(which), fallback), block)
            for which, fallback, block in (("previous_period", _("Previous"), "previous"),
                                           ("year_ago_period", _("Year ago"), "year_ago"))]
    # TRANSLATORS: a column of changes against a period with their 95% intervals: "Change vs Q4 2023"
    words = [_("KPI"), _("Value"), _("95%% interval") % {}] + [_("Change vs %(period)s") % {"period": t}
                                                               for t, _b in refs]
    head = ("<thead><tr>" + "".join(f"<th scope='col' class='{'rr-label' if i == 0 else 'num'}'>{esc(w)}</th>"
                                    for i, w in enumerate(words)) + "</tr></thead>")
    rows = []
    na = _("n/a")
    for key in keys:
        spec = kpi_spec(key, doc)
        value = (doc.get("kpis") or {}).get(key)
        cells = [f"<th scope='row' class='rr-label'>{esc(spec.label)}</th>",
                 f"<td class='num'>{esc(fmt_value(key, value, currency))}</td>",
                 f"<td class='num'>{esc(_interval_text(doc, key, currency) or na)}</td>"]
        for _t, block in refs:
            entry = ((doc.get("changes") or {}).get(block) or {}).get(key)
            c = doc_change(doc, key, block, currency)
            if not isinstance(entry, Mapping) or c.absolute is None:
                cells.append(f"<td class='num rr-neutral'>{esc(na)}</td>")
                continue
            lo, hi = entry["low"], entry["high"]
            if spec.unit == "rate":
                span = _("%(low)s to %(high)s pp") % {"low": fmt_number(100 * lo, 1), "high": fmt_number(100 * hi, 1)}
            else:
                span = _("%(low)s to %(high)s") % {"low": fmt_value(key, lo, currency), "high": fmt_value(key, hi, currency)}
            verdict = _("real") if c.real else _("within noise")
            tone = "partial" if coverage(doc, f"{block}_period") != "full" else c.tone
            cells.append(f"<td class='num rr-change rr-{tone}'>{esc(c.text)}<br>"
                         f"<span class='rr-muted'>{esc(span)};<br>{esc(verdict)}</span></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table class='rr-table rr-intervals'>" + head + "<tbody>" + "".join(rows) + "</tbody></table>"


def kpi_table(doc: Mapping[str, Any], keys: Sequence[str] = HEADLINE_KPIS, currency: str = "EUR") -> str:
    """The executive-summary KPI table: value in the period, previous period, a year ago, and the
    changes (arrow, coloured by good/bad direction).

    A reference period the data cover only partly (``coverage`` of ``previous_period`` /
    ``year_ago_period``) says so in its column headers and its changes are not coloured; one with no
    data at all shows "no data" instead of zeros and changes."""
    cur_t = _period_title(doc, doc.get("period", _("This period")))
    refs = [(_period_title(doc.get(which), fallback), coverage(doc, which), period)
            for which, fallback, period in (("previous_period", _("Previous"), "previous"),
                                            ("year_ago_period", _("Year ago"), "year_ago"))]

    def head_cell(text: str, cov: str, cls: str = "num") -> str:
        note_ = _(_COVERAGE_NOTE.get(cov, ""))
        extra = f"<br><span class='rr-col-note'>{esc(note_)}</span>" if note_ else ""
        return f"<th scope='col' class='{cls}'>{esc(text)}{extra}</th>"

    kpi = esc(_("KPI"))
    head = (
        f"<thead><tr><th scope='col' class='rr-label'>{kpi}</th>"
        f"<th scope='col' class='num rr-current'>{esc(cur_t)}</th>"
        + "".join(head_cell(t, cov) for t, cov, _p in refs)
        # TRANSLATORS: a column of changes against a period: "vs Q4 2023"
        + "".join(head_cell(_("vs %(period)s") % {"period": t}, cov) for t, cov, _p in refs)
        + "</tr></thead>"
    )
    rows = []
    within_noise = _("within noise")
    for row in kpi_rows(doc, currency, keys):
        key, spec = row.key, row.spec
        cells = [f"<th scope='row' class='rr-label' title='{esc(spec.help)}'>{esc(spec.label)}</th>"]
        iv = _interval_text(doc, key, currency)
        # TRANSLATORS: a tooltip of a KPI's value: "95% interval: €120 – €180"
        ci_text = _("95%% interval: %(interval)s") % {"interval": iv}
        ci = f" title='{esc(ci_text)}'" if iv else ""
        cells.append(f"<td class='num rr-current'{_kpi_attr(key)}{ci}>{esc(row.value)}</td>")
        for _t, cov, period in refs:
            shown = _("no data") if cov == "none" else getattr(row, period)
            cls = " rr-nodata" if cov == "none" else ""
            cells.append(f"<td class='num{cls}'{_kpi_attr(key, period)}>{esc(shown)}</td>")
        for _t, cov, period in refs:
            if cov == "none":
                cells.append("<td class='num rr-change rr-nodata'>" + esc(_("no data")) + "</td>")
                continue
            c = getattr(row, f"vs_{period}")
            tone = "partial" if cov == "partial" else c.tone
            noise = f" title='{esc(within_noise)}'" if not c.real and c.absolute is not None else ""
            cells.append(f"<td class='num rr-change rr-{tone}'{noise}>{esc(c.text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = [_("▲/▼ direction of the change; green is good, red is bad for the business. "
               "Changes of rates are in percentage points (pp)."),
             _("≈ within noise: the change is not significant at 95%% or smaller than %(relative)s "
               "(%(points)s pp for rates); 95%% intervals in the appendix.") % _min_change_words(doc)]
    if any(KPI_SPECS[k].uncertainty == "none" for k in keys if k in KPI_SPECS):
        notes.append(_("A change without ▲/▼ or ≈ belongs to a number without an interval (refunds are not "
                       "attributed to customers, a median has none here): it is shown, not judged."))
    notes += [_coverage_footnote(doc, t, cov) for t, cov, _p in refs if cov != "full"]
    notes += _unobservable_notes(doc, keys, [(cur_t, "kpis", "full")] + [(t, p, cov) for t, cov, p in refs])
    return (
        "<table class='rr-table rr-kpis'>" + head + "<tbody>" + "".join(rows) + "</tbody></table>"
        + "".join(f"<p class='rr-note'>{esc(n)}</p>" for n in notes)
    )


def _unobservable_notes(doc: Mapping[str, Any], keys: Sequence[str],
                        columns: Sequence[tuple[str, str, str]]) -> list[str]:
    """One note per period column whose KPIs in ``keys`` metrics.json marks unobservable (SPEC
    §4.3): which, and why they read "n/a"."""
    out = []
    for title, block, cov in columns:
        shown = [k for k in keys if k in unobservable_keys(doc, block)]
        reason = unobservable_reason(doc, block)
        if not shown or not reason or cov == "none":
            continue
        # TRANSLATORS: "Q4 1997 — Churn rate, LTV: n/a — the data begin …"
        out.append(_("%(period)s — %(kpis)s: %(reason)s.") % {
            "period": title, "kpis": ", ".join(kpi_spec(k, doc).label for k in shown), "reason": reason})
    return out


def ltv_clv_note(doc: Mapping[str, Any], currency: str = "EUR") -> str:
    """One line under the headline KPIs naming both customer values and why they differ (issue 26:
    one word, one number): the LTV by formula and the model's CLV. Empty when the model gave none."""
    clv = doc.get("clv") or {}
    if not isinstance(clv, dict) or is_missing(clv.get("clv_mean")):
        return ""
    ltv = (doc.get("kpis") or {}).get("ltv")
    reason = unobservable_reason(doc, "kpis", "ltv")
    words = {"ltv": reason if reason else fmt_money(ltv, currency), "clv": fmt_money(clv["clv_mean"], currency),
             "days": fmt_count(clv.get("horizon_days") or 365)}
    # TRANSLATORS: %(ltv)s and %(clv)s are amounts (the LTV may be "n/a — the data begin …"); %(days)s a number
    return note(_("LTV by formula: %(ltv)s — a customer at this period's spend and pace for a whole lifetime "
                  "(1 / annual churn). CLV by model: %(clv)s — each customer's expected purchases in the next "
                  "%(days)s days from their own history, discounted, lapsing customers near 0. They answer "
                  "different questions, so they differ.") % words)


def findings_list(items: Sequence[str]) -> str:
    lis = "".join(f"<li>{esc(t)}</li>" for t in items)
    return f"<ol class='rr-findings'>{lis}</ol>"


def _fmt(kind: str, v: object, currency: str) -> str:
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
    total_row: Hashable | None = None,
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
    ("guest", "revenue"): "revenue_guest",
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
    labels = {"revenue": _("Gross revenue"), "revenue_share": _("Share"), "margin": _("Margin"),
              "customers": _("Customers"), "purchases": _("Purchases"), "payments": _("Payments"),
              "aov": aov_label("purchase")}
    rows = {"new": _("New (first purchases)"), "returning": _("Returning"), "total": _("Total")}
    note = ""
    if "guest" in table.index:  # payments without a customer id (SPEC §2): revenue, no customer
        rows = {"new": rows["new"], "returning": rows["returning"], "guest": _("Guest / unidentified"),
                "total": rows["total"]}
        note = "<p class='rr-note'>" + esc(_(
            "Guest / unidentified: payments without a customer id. They are in gross revenue, refunds and "
            "the trend, and in no customer number: customers, purchases and AOV are the identified "
            "customers' (the total's AOV divides their revenue).")) + "</p>"
    return frame_table(table.loc[list(rows)], formats, labels, "", rows, currency, total_row="total",
                       cell_kpis=_NVR_KPIS) + note


def aov_note(doc: Mapping[str, Any], currency: str = "EUR") -> str:
    """Under the new-vs-returning table when the headline AOV is per order: both AOVs, each with
    its definition ("" when the headline AOV is per purchase too)."""
    k = doc.get("kpis") or {}
    if doc.get("aov_basis") != "order" or not k.get("purchases"):
        return ""
    per_purchase = (k["gross_revenue"] - (k.get("revenue_guest") or 0.0)) / k["purchases"]
    # TRANSLATORS: %(per_purchase)s and %(per_order)s are amounts of money
    text = esc(_("AOV per purchase = gross revenue / purchases (%(per_purchase)s in total); the summary's "
                 "AOV per order = gross revenue / orders (%(per_order)s): one purchase (a customer's payments "
                 "on one day) can hold several orders."))
    return "<p class='rr-note'>" + text % {
        "per_purchase": f"<span{_kpi_attr('aov_per_purchase')}>{esc(fmt_money(per_purchase, currency))}</span>",
        "per_order": f"<span{_kpi_attr('aov')}>{esc(fmt_money(k.get('aov'), currency))}</span>",
    } + "</p>"


def segment_table(table: pd.DataFrame, currency: str = "EUR", min_size: int | None = None,
                  unobservable: Sequence[str] = ()) -> str:
    """The §4.2 segment table. Customer shares are of *all* customers acquired by the period end,
    lapsed included (the rows add up to 100%), as the findings state them; AOV is per purchase.
    A segment with fewer than ``min_size`` customers is marked "small" (SPEC §4.4); one metrics.json
    lists as ``unobservable`` (the lapsed one, when nobody can have lapsed yet: SPEC §4.3) is marked
    "not observable yet"."""
    frame = table.copy()
    frame["rev_per_customer"] = frame["revenue"] / frame["customers"].where(frame["customers"] > 0)
    formats = {"customers": "count", "customer_share": "pct", "revenue": "money", "revenue_share": "pct",
               "purchases": "count", "aov": "money", "rev_per_customer": "money"}
    # TRANSLATORS: a column header; "%%" is the percent sign
    labels = {"customers": _("Customers"), "customer_share": _("%% of all customers") % {}, "revenue": _("Revenue"),
              "revenue_share": _("%% of revenue") % {}, "purchases": _("Purchases"), "aov": aov_label("purchase"),
              "rev_per_customer": _("Revenue / customer")}
    kpis: dict[tuple[Any, str], str] = {("new", "customers"): "customers_new"}
    for name in frame.index:
        kpis[(name, "customer_share")] = f"segment_customer_share.{name}"
        kpis[(name, "revenue_share")] = f"segment_revenue_share.{name}"
        kpis[(name, "aov")] = f"segment_aov.{name}"
    total = int(frame["customers"].sum())
    # TRANSLATORS: begins with the two column headers "% of all customers" and "% of revenue"
    caption = _("%(customer_share)s: of the %(total)s customers acquired by the period end, lapsed included; "
                "%(revenue_share)s: of the period's gross revenue.") % {
        "customer_share": labels["customer_share"], "total": fmt_count(total), "revenue_share": labels["revenue_share"]}
    names = {s: segment_label(s) for s in frame.index}
    for seg in (s for s in frame.index if s in unobservable):
        # TRANSLATORS: a segment nobody can be in yet ("Lapsed"): the data are shorter than the window
        names[seg] = _("%(segment)s · not observable yet") % {"segment": names[seg]}
    small = [s for s in frame.index if min_size is not None and 0 < frame.loc[s, "customers"] < min_size]
    for seg in small:
        # TRANSLATORS: a segment too small to compare: "Frequent (X) · small"
        names[seg] = _("%(segment)s · small") % {"segment": names[seg]}
    if small:
        caption += " " + _("Small: fewer than %(count)s customers, too few to compare.") % {"count": fmt_count(min_size)}
    return frame_table(frame, formats, labels, _("Segment"), names, currency,
                       caption=caption, cell_kpis=kpis, css_class="rr-segments")


def bridge_formulas(k: Mapping[str, Any], window_days: int, doc: Mapping[str, Any] | None = None) -> str:
    """The bridge as a table plus the CRR and churn formulas with the period's numbers; when
    ``doc`` marks churn unobservable (SPEC §4.3) the formulas give the reason instead."""
    cs, ce, cn = k["customers_start"], k["customers_end"], k["customers_new"]
    cl, re_, nl = k["customers_churned"], k["customers_reactivated"], k["customers_new_lapsed"]
    rows = [
        (_("Active at start (CS)"), cs, "", "customers_start"),
        ("− " + _("Churned (CL)"), cl, ngettext("active at start, no purchase in the last %(days)s day at the end",
                                                "active at start, no purchase in the last %(days)s days at the end",
                                                window_days) % {"days": fmt_count(window_days)}, "customers_churned"),
        ("+ " + _("New (CN)"), cn, _("first purchase ever in the period"), "customers_new"),
        ("− " + _("New, already lapsed (NL)"), nl, _("only when the window is shorter than the period"),
         "customers_new_lapsed"),
        ("+ " + _("Reactivated (RE)"), re_, _("inactive at start, bought again in the period"), "customers_reactivated"),
        ("= " + _("Active at end (CE)"), ce, "", "customers_end"),
    ]
    body = "".join(
        f"<tr{' class=rr-total' if i in (0, 5) else ''}><th scope='row' class='rr-label'>{esc(a)}</th>"
        f"<td class='num'{_kpi_attr(key)}>{esc(fmt_count(b))}</td><td class='rr-muted'>{esc(c)}</td></tr>"
        for i, (a, b, c, key) in enumerate(rows)
    )
    head = [esc(_("Customer base")), esc(_("Customers")), esc(_("Meaning"))]
    table = (f"<table class='rr-table rr-bridge'><thead><tr><th scope='col' class='rr-label'>{head[0]}"
             f"</th><th scope='col' class='num'>{head[1]}</th><th scope='col'>{head[2]}</th></tr>"
             f"</thead><tbody>{body}</tbody></table>")

    def n(key: str, value: object) -> str:
        """A number of the formula, marked with its metric."""
        text = fmt_value(key, value)
        return f'<span{_kpi_attr(key)}>{esc(text)}</span>'

    # TRANSLATORS: the name of the churn rate in a formula, "Churn = CL / CS"
    churn = esc(_("Churn"))
    # TRANSLATORS: a check of the formula: "Check: CS − CL + CN − NL + RE = … = CE"
    check = esc(_("Check"))
    if any(is_missing(v) for v in (cl, re_, nl)):
        reason = unobservable_reason(doc, "kpis", "churn_rate") if doc is not None else None
        # TRANSLATORS: %(reason)s is "n/a — the data begin 1 Jan 1997, less than the …"
        lines = [esc(_("CRR = (CE − CN) / CS and churn = CL / CS: %(reason)s") % {"reason": reason or _("n/a")})]
    elif cs:
        lines = [
            f"CRR = (CE − CN) / CS = ({n('customers_end', ce)} − {n('customers_new', cn)}) / "
            f"{n('customers_start', cs)} = {n('crr', k['crr'])}",
            f"{churn} = CL / CS = {n('customers_churned', cl)} / {n('customers_start', cs)} = "
            f"{n('churn_rate', k['churn_rate'])}",
            f"{check}: CS − CL + CN − NL + RE = {n('customers_start', cs)} − {n('customers_churned', cl)} + "
            f"{n('customers_new', cn)} − {n('customers_new_lapsed', nl)} + {n('customers_reactivated', re_)} = "
            f"{esc(fmt_count(cs - cl + cn - nl + re_))} = CE",
        ]
    else:
        lines = [esc(_("CRR = (CE − CN) / CS is n/a: no customer was active at the start of the period")),
                 esc(_("%(churn)s = CL / CS is n/a for the same reason") % {"churn": _("Churn")})]
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
    aov = kpi_spec("aov", {"aov_basis": "purchase"})
    purchases = k.get("purchases")
    aov_value = k.get("gross_revenue") / purchases if purchases and not is_missing(k.get("gross_revenue")) else None
    aov_key = "aov" if doc.get("aov_basis") != "order" else "aov_per_purchase"
    rows = [
        (aov.label, fmt_money(aov_value, currency), aov.help, aov_key),
        (_("Purchase frequency in the period (AF)"), fmt_number(af), _("purchases / customers"), "purchase_frequency"),
        (_("AF per year"), fmt_number(af_year),
         ngettext("AF × 365.25 / %(days)s day", "AF × 365.25 / %(days)s days", days) % {"days": days}, ""),
        (_("Average lifetime (AL)"), fmt_value("avg_lifetime_years", k.get("avg_lifetime_years")),
         _("1 / annual churn, annual churn = 1 − (1 − churn)^(365.25 / days)"), "avg_lifetime_years"),
        ("LTV", fmt_money(k.get("ltv"), currency),
         # TRANSLATORS: %(aov)s is "AOV per purchase"
         _("%(aov)s × AF per year × AL") % {"aov": aov.label}, "ltv"),
        (_("LTV on margin"), fmt_money(extra.get("ltv_margin"), currency), _("LTV × margin / net revenue"),
         "ltv_margin"),
        (_("Empirical 12-month revenue per customer"), fmt_money(extra.get("ltv_empirical_12m"), currency),
         _("what the 12 most recent cohorts with a full year of history spent in their first 12 months"), ""),
    ]
    if is_missing(extra.get("ltv_margin")):
        rows = [r for r in rows if r[3] != "ltv_margin"]
    body = "".join(
        f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td class='num'{_kpi_attr(key) if key else ''}>"
        f"{esc(b)}</td><td class='rr-muted'>{esc(c)}</td></tr>"
        for a, b, c, key in ((a, b, c, "" if key == "ltv_margin" else key) for a, b, c, key in rows)
    )
    head = [esc(_("Input")), esc(_("Value")), esc(_("How"))]
    notes = ""
    reason = unobservable_reason(doc, "kpis", "ltv")
    if reason:  # SPEC §4.3: AL and LTV need customers who could have lapsed
        notes += note(_("%(kpis)s: %(reason)s.") % {
            "kpis": ", ".join((_("Average lifetime (AL)"), "LTV")), "reason": reason})
    empirical = ((doc.get("unobservable") or {}).get("extra") or {}).get("ltv_empirical_12m")
    if empirical and is_missing(extra.get("ltv_empirical_12m")):
        first = str((doc.get("data_quality") or {}).get("first_payment") or "")[:10]
        # TRANSLATORS: %(day)s is the data's first payment day ("1 Jan 1997")
        notes += note(_("Empirical 12-month revenue per customer: n/a — the data begin %(day)s, so no cohort "
                        "has a whole first year yet.") % {"day": fmt_date(first) if first else "?"})
    return (f"<table class='rr-table'><thead><tr><th scope='col' class='rr-label'>{head[0]}</th>"
            f"<th scope='col' class='num'>{head[1]}</th><th scope='col'>{head[2]}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>{notes}")


def data_quality_table(dq: Mapping[str, Any], currency: str = "EUR") -> str:
    rows = [(_("Rows read"), fmt_count(dq.get("rows_read"))), (_("Rows used"), fmt_count(dq.get("rows_used")))]
    dropped = dq.get("rows_dropped") or {}
    for reason, n in dropped.items():
        # TRANSLATORS: %(reason)s says why rows were dropped, e.g. "empty customer id"
        rows.append((_("Dropped: %(reason)s") % {"reason": rule_label(reason)}, fmt_count(n)))
    if not dropped:
        rows.append((_("Rows dropped"), fmt_count(0)))
    if dq.get("guest_rows") is not None:  # validation.empty_customer_id = "guest"
        rows.append((_("Guest payments (no customer id): rows"), fmt_count(dq["guest_rows"])))
        rows.append((_("Guest payments: net revenue, whole log"), fmt_money(dq.get("guest_revenue"), currency)))
    rows.append((_("First payment"), str(dq.get("first_payment") or _("n/a"))))
    rows.append((_("Last payment"), str(dq.get("last_payment") or _("n/a"))))
    if dq.get("derived_tables_cached_at"):  # a warm run: validation and derived tables of an earlier load
        # TRANSLATORS: %(when)s is a date and time, "2024-04-02 10:15"
        rows.append((_("Validated and derived"), _("%(when)s (cached; the source files are unchanged since)")
                     % {"when": str(dq["derived_tables_cached_at"])[:16].replace("T", " ")}))
    body = "".join(f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td class='num'>{esc(b)}</td></tr>"
                   for a, b in rows)
    return f"<table class='rr-table rr-narrow'><tbody>{body}</tbody></table>"


# (term, definition) as gettext msgids; ``%(days)s`` is the activity window in days
DEFINITIONS = [
    (N_("Purchase"), N_("All of a customer's positive payments on one calendar day, merged. Counts and "
                        "frequencies are in purchases, not payment rows.")),
    (N_("New / returning purchase"), N_("A purchase is new when it is the customer's first purchase ever; "
                                        "every later purchase is returning.")),
    (N_("New customer"), N_("First purchase ever falls in the period (acquisition date from the whole history).")),
    (N_("Returning customer"), N_("Acquired before the period and bought in it.")),
    (N_("Revenue"), N_("Gross revenue = sum of positive payments; refunds = money paid back; "
                       "net revenue = gross − refunds.")),
    (N_("Revenue bridge"), N_("Gross revenue of the previous period to this one, by customer: new (acquired in the "
                              "period, all their purchases), reactivated (bought in the period but not in the "
                              "previous one), lost (bought then but not now), bought more / bought less (bought in "
                              "both). Previous + new + reactivated + more − less − lost = this period.")),
    (N_("Active customer"), N_("At least one purchase in the activity window (%(days)s days) up to the date.")),
    (N_("Churn rate"), N_("CL / CS: customers active at the start who are no longer active at the end, "
                          "over those active at the start.")),
    ("CRR", N_("(CE − CN) / CS: active customers at the end, without the new ones, over those at the "
               "start. Reactivated customers count as retained.")),
    (N_("Frequency segments"), N_("Customers acquired before the period and active at its end, whether "
                                  "or not they bought in it, ranked by purchases per month over the "
                                  "lookback: frequent (X), medium (Y), rare (Z); plus new and lapsed.")),
    (N_("Cohort retention"), N_("Share of a cohort (acquisition month) buying in each later month.")),
    (N_("Revenue retention"), N_("Cohort revenue in a month over its revenue in the acquisition month.")),
    (AOV_SPECS["purchase"].label, N_("Gross revenue / purchases — in the new-vs-returning and segment tables, "
                                     "in LTV, and the headline AOV when order ids are not mapped.")),
    (AOV_SPECS["order"].label, N_("Gross revenue / orders (distinct order ids of positive payments) — the "
                                  "headline AOV when order ids are mapped.")),
    (N_("Repeat purchase rate"), N_("Customers with two or more purchases in the period / customers.")),
    ("LTV", N_("AOV per purchase × purchases per year × average lifetime in years (1 / annual churn): "
               "revenue per customer and year × lifetime.")),
    (N_("95%% interval"), N_("The range that holds the true value in 95 of 100 periods drawn from the same "
                             "stream of customers. Rates of customers (CRR, churn, repeat purchase rate): "
                             "Wilson score interval. Money totals: from each customer's sum of squares, "
                             "computed by the database engine (compound Poisson, central limit theorem); "
                             "AOV, purchases per customer and revenue shares: delta method over customers; "
                             "LTV: the errors of revenue per customer and of the churn rate combined. "
                             "Customer counts: Poisson — the customers of a period are taken as a draw "
                             "from the shop's stream of customers, not as a fixed list.")),
    (N_("Real change or within noise (≈)"), N_(
        "A change is real when the 95%% interval of the change excludes zero (Newcombe's hybrid score "
        "interval for a difference of two rates; otherwise the two periods' variances added, which errs "
        "towards noise because the periods share customers) and it is larger than report.min_change "
        "(default 1%% relative, 0.5 percentage points for rates). Other changes are shown in grey with ≈ "
        "and never make a finding.")),
]


def definitions(window_days: int = 365, aov_basis: str | None = None) -> str:
    """The appendix definitions, in the current language. ``aov_basis`` (metrics.json's): "AOV per
    order" is defined only when the report shows it (``order``)."""
    items = "".join(
        f"<dt>{esc(_(t) % {})}</dt><dd>{esc(_(d) % {'days': fmt_count(window_days)})}</dd>"
        for t, d in DEFINITIONS
        if t != AOV_SPECS["order"].label or aov_basis == "order"
    )
    return f"<dl class='rr-definitions'>{items}</dl>"


# the values of the settings Run details shows, as words for a reader of another language (the
# English report shows the config value itself, which is an English word)
SETTING_WORDS = {
    "purchase": N_("by purchase"), "customer": N_("by customer"),
    "month": N_("monthly"), "week": N_("weekly"),
    "churn": N_("from the churn rate"), "observed": N_("observed"),
    "error": N_("stop with an error"), "drop": N_("leave out and count"),
    "guest": N_("guest payments: revenue without a customer"),
}


def _setting(value: object, *, with_value: bool = True) -> str:
    """A config value as Run details shows it: ``purchase`` in English, ``по покупкам (purchase)``
    in another language (the value stays: it is what the config file says), or only
    ``по покупкам`` (``with_value=False``)."""
    text = str(value)
    if get_language() == "en" or text not in SETTING_WORDS:
        return text
    return f"{_(SETTING_WORDS[text])} ({text})" if with_value else _(SETTING_WORDS[text])


def run_details(settings_public: Mapping[str, Any], version: str, generated_at: str = "") -> str:
    """Config summary without secrets (values are escaped)."""
    src = settings_public.get("source", {})
    m = settings_public.get("metrics", {})
    window, lookback, cohorts = m.get("activity_window_days"), m.get("lookback_months"), m.get("cohort_count")
    rows = [
        (_("Package version"), f"retention-report {version}"),
        (_("Generated"), generated_at),
        (_("Data source"), source_label(src.get("name") or src.get("path") or src.get("url") or SAMPLE_SOURCE_SHORT)),
        (_("Time zone"), settings_public.get("timezone", "")),
        (_("Activity window"), ngettext("%(count)s day", "%(count)s days", window or 0) % {"count": window}),
        # the values of settings (purchase, month, churn, drop …): the config's word, explained
        # in the reader's language (_setting)
        (_("New/returning basis"), _setting(m.get("split_basis"))),
        (_("Cohort grain"), ngettext("%(grain)s (%(count)s cohort)", "%(grain)s (%(count)s cohorts)", cohorts or 0)
         % {"grain": _setting(m.get("cohort_grain"), with_value=False), "count": cohorts}),
        (_("Frequency lookback"), ngettext("%(count)s month", "%(count)s months", lookback or 0) % {"count": lookback}),
        (_("Lifetime method"), _setting(m.get("lifetime_method"))),
        (_("Invalid rows"), _setting(settings_public.get("validation", {}).get("on_invalid"))),
        (_("Empty customer ids"), _setting(settings_public.get("validation", {}).get("empty_customer_id"))),
    ]
    body = "".join(f"<tr><th scope='row' class='rr-label'>{esc(a)}</th><td>{esc(str(b))}</td></tr>"
                   for a, b in rows if b)
    return f"<table class='rr-table rr-narrow'><tbody>{body}</tbody></table>"
