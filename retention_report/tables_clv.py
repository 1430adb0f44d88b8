"""Tables and notes of the section "Predicted customer value" (issue 17): HTML strings in the style
of :mod:`retention_report.tables` (escaped text, right-aligned numbers, ``data-kpi`` attributes
naming the metrics.json value a cell shows: ``clv.<key>``), and the plain-language sentences
under them. Aggregates only: nothing here ever shows a customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from .formatting import fmt_count, fmt_money, fmt_number, fmt_pct, is_missing
from .tables import banner, esc

__all__ = [
    "backtest_note",
    "clv_summary_table",
    "horizon_text",
    "ltv_vs_clv_note",
    "ltv_vs_clv_table",
    "model_note",
    "unavailable",
]


def _day(d: Any) -> str:
    return f"{d.day} {d:%b %Y}" if d is not None else "the period end"


def horizon_text(days: int) -> str:
    """``365`` → ``12 months``; ``730`` → ``24 months``; ``90`` → ``90 days``."""
    if days % 365 == 0:
        return f"{days // 365 * 12} months"
    if days % 30 == 0 and days >= 60:
        return f"{days // 30} months"
    return f"{days} days"


def unavailable(pv: Any) -> str:
    """A banner saying why there is no prediction for the period ('' when there is one)."""
    if pv.available:
        return ""
    return banner(f"No prediction for this period: {pv.reason}.", kind="info")


def _row(label: str, value: str, how: str, key: str = "") -> str:
    attr = f' data-kpi="clv.{esc(key)}" data-period="current"' if key else ""
    return (f"<tr><th scope='row' class='rr-label'>{esc(label)}</th><td class='num'{attr}>{esc(value)}</td>"
            f"<td class='rr-muted'>{esc(how)}</td></tr>")


def _table(rows: list[str], first: str = "Prediction") -> str:
    return ("<table class='rr-table'><thead><tr><th scope='col' class='rr-label'>" + esc(first) + "</th>"
            "<th scope='col' class='num'>Value</th><th scope='col'>How</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def clv_summary_table(pv: Any, currency: str = "EUR") -> str:
    """The headline of the prediction: the base, its expected purchases, revenue and value over the
    horizon, and the repeat customers at risk — or the banner saying why there is none."""
    if not pv.available:
        return unavailable(pv)
    b, s = pv.block, pv.summary
    h = horizon_text(pv.horizon_days)
    end = _day(pv.calibration_end)
    rows = [
        _row("Customers in the base", fmt_count(b["customers"]), f"everyone with a purchase by {end}", "customers"),
        _row("of them repeat customers", fmt_count(b["repeat_customers"]), "bought on two or more days",
             "repeat_customers"),
        _row(f"Expected purchases, next {h}", fmt_count(b["expected_purchases"]),
             "sum over the customers of the model's expectation", "expected_purchases"),
        _row(f"Expected revenue, next {h}", fmt_money(b["expected_revenue"], currency),
             "expected purchases × expected spend per purchase", "expected_revenue"),
        _row("Predicted value per customer (CLV)", fmt_money(b["clv_mean"], currency),
             f"expected revenue over the next {h}, discounted at {fmt_pct(pv.annual_discount, 0)} a year; mean",
             "clv_mean"),
        _row("Median customer's predicted value", fmt_money(s.get("clv_median"), currency),
             "half of the customers are worth less", ""),
        _row(f"Repeat customers at risk (P(alive) < {fmt_pct(pv.at_risk_threshold, 0)})",
             fmt_count(b["at_risk_customers"]),
             f"{fmt_pct(s.get('at_risk_share'), 0)} of the repeat customers are more likely gone than not",
             "at_risk_customers"),
        _row("Their share of revenue to date", fmt_pct(b.get("at_risk_revenue_share"), 0),
             "of all customers' gross revenue up to " + end, "at_risk_revenue_share"),
    ]
    return _table(rows)


def backtest_note(pv: Any) -> str:
    """The backtest in one or two sentences (what was fitted, what it predicted, the error)."""
    bt = (pv.block or {}).get("backtest") if pv.available else None
    if not bt:
        return f"No backtest for this period: {pv.backtest_reason or pv.reason}."
    pred, act = bt["predicted_purchases"], bt["actual_purchases"]
    err = pred / act - 1 if act else None
    end = _day(date.fromisoformat(bt["calibration_end"]))
    judged = ""
    if err is not None:
        size = abs(err)
        judged = (" — close enough to plan with" if size <= 0.10 else
                  " — use the predictions as a direction, not an exact figure" if size <= 0.25 else
                  " — treat the predictions with caution")
    return (f"How far to trust the prediction: the same model fitted only on the data up to {end} predicted "
            f"{fmt_count(pred)} purchases in the period by the customers it knew; they made {fmt_count(act)} "
            f"(error {'+' if (err or 0) > 0 else ''}{fmt_pct(err, 1)}){judged}. Seasonality, promotions and "
            "new products are outside the model: a period unlike the year before it is predicted less well.")


def ltv_vs_clv_table(doc: Mapping[str, Any], pv: Any, currency: str = "EUR") -> str:
    """The commissioned LTV (AOV × AF × AL) next to the model's CLV, each with what it measures."""
    k = doc.get("kpis") or {}
    extra = doc.get("extra") or {}
    years = k.get("avg_lifetime_years")
    rows = [
        "<tr><th scope='row' class='rr-label'>LTV (commissioned formula)</th>"
        f"<td class='num' data-kpi='ltv' data-period='current'>{esc(fmt_money(k.get('ltv'), currency))}</td>"
        f"<td class='rr-muted'>{esc('AOV per purchase × purchases per year × average lifetime (' + (fmt_number(years) + ' years' if not is_missing(years) else 'n/a') + '); from this period, the same for everyone')}</td></tr>",
        _row("Empirical 12-month revenue per new customer", fmt_money(extra.get("ltv_empirical_12m"), currency),
             "what recent cohorts spent in their first 12 months"),
    ]
    if pv.available:
        h = horizon_text(pv.horizon_days)
        rows.append(_row("Predicted CLV per customer (model)", fmt_money(pv.block["clv_mean"], currency),
                         f"next {h}, discounted, all customers in the base", "clv_mean"))
        new_mean = pv.summary.get("new_clv_mean")
        if not is_missing(new_mean):
            rows.append(_row("Predicted CLV of the period's new customers", fmt_money(new_mean, currency),
                             f"next {h}, the {fmt_count(pv.summary.get('new_customers'))} customers acquired in the period"))
    return _table(rows, "Measure")


def ltv_vs_clv_note(doc: Mapping[str, Any], pv: Any, currency: str = "EUR") -> str:
    """One sentence on why the commissioned LTV and the model's CLV differ."""
    h = horizon_text(pv.horizon_days)
    ltv = (doc.get("kpis") or {}).get("ltv")
    if not pv.available:
        return ("The model's CLV is not available for this period; the commissioned LTV multiplies the "
                "period's averages (AOV × AF × AL) and is the same for every customer.")
    clv = pv.block["clv_mean"]
    why = (f"it multiplies this period's averages over a whole average lifetime, undiscounted, as if every "
           f"customer were still buying, while the model's CLV counts only the next {h}, discounts it, and gives "
           "less to the customers who have probably already left.")
    if not is_missing(ltv) and ltv and clv:
        return (f"The commissioned LTV ({fmt_money(ltv, currency)}) is {fmt_number(ltv / clv, 1)} times the "
                f"model's CLV ({fmt_money(clv, currency)}) because {why}")
    return f"The commissioned LTV differs from the model's CLV because {why}"


def model_note(pv: Any) -> str:
    """What the prediction rests on, for the analyst: models, parameters, assumptions and their check."""
    if not pv.available:
        return ""
    b = pv.block
    p = b["params"]
    if "s" in p:
        purchase = (f"Pareto/NBD (r = {p['r']:.3f}, α = {p['alpha']:.2f} weeks, s = {p['s']:.3f}, "
                    f"β = {p['beta']:.2f} weeks)")
    else:
        purchase = f"BG/NBD (r = {p['r']:.3f}, α = {p['alpha']:.2f} weeks, a = {p['a']:.3f}, b = {p['b']:.3f})"
    corr = pv.correlation
    check = ""
    if not is_missing(corr):
        strength = "weak" if abs(corr) < 0.3 else "moderate" if abs(corr) < 0.5 else "strong"
        check = (f" Check of that assumption: the correlation between repeat purchases and mean spend per purchase "
                 f"is {fmt_number(corr, 2)} ({strength}; Fader, Hardie & Lee report 0.11 for their data).")
    return (f"Model: {purchase} for when customers buy and stop buying, Gamma-Gamma (p = {p['p']:.2f}, "
            f"q = {p['q']:.2f}, γ = {p['gamma']:.2f}) for how much they spend per purchase, fitted by maximum "
            f"likelihood on the purchase histories of {fmt_count(b['customers'])} customers up to "
            f"{_day(pv.calibration_end)}. It assumes customers buy at their own steady rate until they stop for good "
            "(no subscriptions or contracts) and that how much a customer spends does not depend on how often they "
            f"buy.{check} P(alive) is shown for repeat customers only: for one-time buyers the model sets it to 1.")
