"""Tables and notes of the section "Predicted customer value" (issue 17): HTML strings in the style
of :mod:`retention_report.tables` (escaped text, right-aligned numbers, ``data-kpi`` attributes
naming the metrics.json value a cell shows: ``clv.<key>``), and the plain-language sentences
under them. Aggregates only: nothing here ever shows a customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from .formatting import (
    aov_label,
    fmt_count,
    fmt_date,
    fmt_money,
    fmt_number,
    fmt_pct,
    is_missing,
)
from .i18n import _, ngettext
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
    return fmt_date(d) if d is not None else _("the period end")


def horizon_text(days: int) -> str:
    """``365`` → ``12 months``; ``730`` → ``24 months``; ``90`` → ``90 days``."""
    if days % 365 == 0:
        months = days // 365 * 12
        return ngettext("%(count)s month", "%(count)s months", months) % {"count": months}
    if days % 30 == 0 and days >= 60:
        return ngettext("%(count)s month", "%(count)s months", days // 30) % {"count": days // 30}
    return ngettext("%(count)s day", "%(count)s days", days) % {"count": days}


def reason_text(reason: Any) -> str:
    """Why there is no prediction or backtest, in the reader's language: a
    :class:`~retention_report.metrics.predictive.Reason` is translated with its counts and days
    formatted for the locale; any other text is shown as it is."""
    from .metrics.predictive import Reason

    if isinstance(reason, Reason):
        params = {k: fmt_date(v) if isinstance(v, date) else fmt_count(v) if isinstance(v, int) else v
                  for k, v in reason.params.items()}
        return _(reason.template) % params if params else _(reason.template)
    return str(reason or "")


def unavailable(pv: Any) -> str:
    """A banner saying why there is no prediction for the period ('' when there is one)."""
    if pv.available:
        return ""
    # TRANSLATORS: %(reason)s is one of the model's reasons ("no purchases on or before the period end")
    return banner(_("No prediction for this period: %(reason)s.") % {"reason": reason_text(pv.reason)}, kind="info")


def _row(label: str, value: str, how: str, key: str = "") -> str:
    attr = f' data-kpi="clv.{esc(key)}" data-period="current"' if key else ""
    return (f"<tr><th scope='row' class='rr-label'>{esc(label)}</th><td class='num'{attr}>{esc(value)}</td>"
            f"<td class='rr-muted'>{esc(how)}</td></tr>")


def _table(rows: list[str], first: str | None = None) -> str:
    first = _("Prediction") if first is None else first
    value, how = esc(_("Value")), esc(_("How"))
    return ("<table class='rr-table'><thead><tr><th scope='col' class='rr-label'>" + esc(first) + "</th>"
            f"<th scope='col' class='num'>{value}</th><th scope='col'>{how}</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def clv_summary_table(pv: Any, currency: str = "EUR") -> str:
    """The headline of the prediction: the base, its expected purchases, revenue and value over the
    horizon, and the repeat customers at risk — or the banner saying why there is none."""
    if not pv.available:
        return unavailable(pv)
    b, s = pv.block, pv.summary
    h = horizon_text(pv.horizon_days)
    end = _day(pv.calibration_end)
    # TRANSLATORS: in this table %(horizon)s is "12 months" (or "90 days"), %(day)s a date
    rows = [
        _row(_("Customers in the base"), fmt_count(b["customers"]),
             _("everyone with a purchase by %(day)s") % {"day": end}, "customers"),
        _row(_("of them repeat customers"), fmt_count(b["repeat_customers"]), _("bought on two or more days"),
             "repeat_customers"),
        _row(_("Expected purchases, next %(horizon)s") % {"horizon": h}, fmt_count(b["expected_purchases"]),
             _("sum over the customers of the model's expectation"), "expected_purchases"),
        _row(_("Expected revenue, next %(horizon)s") % {"horizon": h}, fmt_money(b["expected_revenue"], currency),
             _("expected purchases × expected spend per purchase"), "expected_revenue"),
        _row(_("Predicted value per customer (CLV)"), fmt_money(b["clv_mean"], currency),
             _("expected revenue over the next %(horizon)s, discounted at %(rate)s a year; mean")
             % {"horizon": h, "rate": fmt_pct(pv.annual_discount, 0)}, "clv_mean"),
        _row(_("Median customer's predicted value"), fmt_money(s.get("clv_median"), currency),
             _("half of the customers are worth less"), ""),
    ]
    if not getattr(pv, "p_alive_shown", True):
        # the no-dropout NBD predicts: nobody is "at risk" by construction, so that is not shown
        # TRANSLATORS: %(reason)s says why ("the data do not identify when customers stop buying …")
        note = banner(_("Predictions from the model without dropout: %(reason)s.")
                      % {"reason": reason_text(pv.fallback)}, kind="info")
        return note + _table(rows)
    rows += [
        _row(_("Repeat customers at risk (P(alive) < %(threshold)s)") % {"threshold": fmt_pct(pv.at_risk_threshold, 0)},
             fmt_count(b["at_risk_customers"]),
             _("%(share)s of the repeat customers are more likely gone than not")
             % {"share": fmt_pct(s.get("at_risk_share"), 0)}, "at_risk_customers"),
        _row(_("Their share of revenue to date"), fmt_pct(b.get("at_risk_revenue_share"), 0),
             _("of all customers' gross revenue up to %(day)s") % {"day": end}, "at_risk_revenue_share"),
    ]
    return _table(rows)


def backtest_note(pv: Any) -> str:
    """The backtest in one or two sentences (what was fitted, what it predicted, the error)."""
    bt = (pv.block or {}).get("backtest") if pv.available else None
    if not bt:
        return _("No backtest for this period: %(reason)s.") % {"reason": reason_text(pv.backtest_reason or pv.reason)}
    pred, act = bt["predicted_purchases"], bt["actual_purchases"]
    err = pred / act - 1 if act else None
    end = _day(date.fromisoformat(bt["calibration_end"]))
    judged = ""
    if err is not None:
        size = abs(err)
        judged = " — " + (_("close enough to plan with") if size <= 0.10 else
                          _("use the predictions as a direction, not an exact figure") if size <= 0.25 else
                          _("treat the predictions with caution"))
    # TRANSLATORS: %(judged)s is empty or " — close enough to plan with" (starting with its dash)
    return _("How far to trust the prediction: the same model fitted only on the data up to %(day)s predicted "
             "%(predicted)s purchases in the period by the customers it knew; they made %(actual)s "
             "(error %(error)s)%(judged)s. Seasonality, promotions and new products are outside the model: a "
             "period unlike the year before it is predicted less well.") % {
        "day": end, "predicted": fmt_count(pred), "actual": fmt_count(act),
        "error": ("+" if (err or 0) > 0 else "") + fmt_pct(err, 1), "judged": judged}


def ltv_vs_clv_table(doc: Mapping[str, Any], pv: Any, currency: str = "EUR") -> str:
    """The commissioned LTV (AOV × AF × AL) next to the model's CLV, each with what it measures."""
    k = doc.get("kpis") or {}
    extra = doc.get("extra") or {}
    years = k.get("avg_lifetime_years")
    lifetime = _("%(value)s years") % {"value": fmt_number(years)} if not is_missing(years) else _("n/a")
    # TRANSLATORS: %(aov)s is "AOV per purchase", %(lifetime)s e.g. "2.50 years"
    how = _("%(aov)s × purchases per year × average lifetime (%(lifetime)s); from this period, the same for "
            "everyone") % {"aov": aov_label("purchase"), "lifetime": lifetime}
    label = esc(_("LTV (commissioned formula)"))
    rows = [
        f"<tr><th scope='row' class='rr-label'>{label}</th>"
        f"<td class='num' data-kpi='ltv' data-period='current'>{esc(fmt_money(k.get('ltv'), currency))}</td>"
        f"<td class='rr-muted'>{esc(how)}</td></tr>",
        _row(_("Empirical 12-month revenue per new customer"), fmt_money(extra.get("ltv_empirical_12m"), currency),
             _("what recent cohorts spent in their first 12 months")),
    ]
    if pv.available:
        h = horizon_text(pv.horizon_days)
        rows.append(_row(_("Predicted CLV per customer (model)"), fmt_money(pv.block["clv_mean"], currency),
                         _("next %(horizon)s, discounted, all customers in the base") % {"horizon": h}, "clv_mean"))
        new_mean = pv.summary.get("new_clv_mean")
        if not is_missing(new_mean):
            new = pv.summary.get("new_customers")
            rows.append(_row(_("Predicted CLV of the period's new customers"), fmt_money(new_mean, currency),
                             ngettext("next %(horizon)s, the %(count)s customer acquired in the period",
                                      "next %(horizon)s, the %(count)s customers acquired in the period",
                                      int(new or 0)) % {"horizon": h, "count": fmt_count(new)}))
    return _table(rows, _("Measure"))


def ltv_vs_clv_note(doc: Mapping[str, Any], pv: Any, currency: str = "EUR") -> str:
    """One sentence on why the commissioned LTV and the model's CLV differ."""
    h = horizon_text(pv.horizon_days)
    ltv = (doc.get("kpis") or {}).get("ltv")
    if not pv.available:
        return _("The model's CLV is not available for this period; the commissioned LTV multiplies the "
                 "period's averages (AOV × AF × AL) and is the same for every customer.")
    clv = pv.block["clv_mean"]
    why = _("it multiplies this period's averages over a whole average lifetime, undiscounted, as if every "
            "customer were still buying, while the model's CLV counts only the next %(horizon)s, discounts it, and "
            "gives less to the customers who have probably already left.") % {"horizon": h}
    if not getattr(pv, "p_alive_shown", True):  # the NBD without dropout: nobody is taken to have left
        why = _("it multiplies this period's averages over a whole average lifetime, undiscounted, while the "
                "model's CLV counts only the next %(horizon)s and discounts it.") % {"horizon": h}
    if not is_missing(ltv) and ltv and clv:
        # TRANSLATORS: %(why)s is the sentence "it multiplies this period's averages …"
        return _("The commissioned LTV (%(ltv)s) is %(times)s times the model's CLV (%(clv)s) because %(why)s") % {
            "ltv": fmt_money(ltv, currency), "times": fmt_number(ltv / clv, 1), "clv": fmt_money(clv, currency),
            "why": why}
    return _("The commissioned LTV differs from the model's CLV because %(why)s") % {"why": why}


def model_note(pv: Any) -> str:
    """What the prediction rests on, for the analyst: models, parameters, assumptions and their check."""
    if not pv.available:
        return ""
    b = pv.block
    p = b["params"]
    # TRANSLATORS: "weeks" is the unit of the model's parameters α and β
    weeks = _("weeks")
    from babel.numbers import get_decimal_symbol

    from .i18n import locale

    sep = "; " if get_decimal_symbol(locale()) == "," else ", "  # "r = 0,243; α = 4,56" with a decimal comma
    if "a" not in p and "s" not in p:
        purchase = f"NBD (r = {fmt_number(p['r'], 3)}{sep}α = {fmt_number(p['alpha'], 2)} {weeks})"
    elif "s" in p:
        purchase = (f"Pareto/NBD (r = {fmt_number(p['r'], 3)}{sep}α = {fmt_number(p['alpha'], 2)} {weeks}{sep}"
                    f"s = {fmt_number(p['s'], 3)}{sep}β = {fmt_number(p['beta'], 2)} {weeks})")
    else:
        purchase = (f"BG/NBD (r = {fmt_number(p['r'], 3)}{sep}α = {fmt_number(p['alpha'], 2)} {weeks}{sep}"
                    f"a = {fmt_number(p['a'], 3)}{sep}b = {fmt_number(p['b'], 3)})")
    gamma = (f"Gamma-Gamma (p = {fmt_number(p['p'], 2)}{sep}q = {fmt_number(p['q'], 2)}{sep}"
             f"γ = {fmt_number(p['gamma'], 2)})")
    corr = pv.correlation
    check = ""
    if not is_missing(corr):
        strength = _("weak") if abs(corr) < 0.3 else _("moderate") if abs(corr) < 0.5 else _("strong")
        # TRANSLATORS: %(strength)s is "weak", "moderate" or "strong"
        check = " " + _("Check of that assumption: the correlation between repeat purchases and mean spend per "
                        "purchase is %(correlation)s (%(strength)s; Fader, Hardie & Lee report 0.11 for their "
                        "data).") % {"correlation": fmt_number(corr, 2), "strength": strength}
    if not getattr(pv, "p_alive_shown", True):
        # TRANSLATORS: %(purchase_model)s and %(spend_model)s are model names with their parameters
        return _("Model: %(purchase_model)s for when customers buy — without dropout, since nobody has been seen "
                 "to stop buying yet — and %(spend_model)s for how much they spend per purchase, fitted by maximum "
                 "likelihood on the purchase histories of %(customers)s customers up to %(day)s. It assumes every "
                 "customer keeps buying at their own steady rate, so its predictions are an upper bound once some "
                 "customers do stop, and that how much a customer spends does not depend on how often they "
                 "buy.%(check)s") % {"purchase_model": purchase, "spend_model": gamma,
                                     "customers": fmt_count(b["customers"]), "day": _day(pv.calibration_end),
                                     "check": check}
    # TRANSLATORS: %(purchase_model)s and %(spend_model)s are model names with their parameters
    return _("Model: %(purchase_model)s for when customers buy and stop buying, %(spend_model)s for how much they "
             "spend per purchase, fitted by maximum likelihood on the purchase histories of %(customers)s customers "
             "up to %(day)s. It assumes customers buy at their own steady rate until they stop for good (no "
             "subscriptions or contracts) and that how much a customer spends does not depend on how often they "
             "buy.%(check)s P(alive) is shown for repeat customers only: for one-time buyers the model sets it "
             "to 1.") % {"purchase_model": purchase, "spend_model": gamma, "customers": fmt_count(b["customers"]),
                         "day": _day(pv.calibration_end), "check": check}
