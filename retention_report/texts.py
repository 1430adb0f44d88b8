"""The report's reading guide: one short lead per section and chart — what it answers and how to
read it — shown in the rendered report and in the notebook opened in JupyterLab alike.

The section notebooks display a lead with ``rr.lead("cohorts")`` (a Markdown output,
:func:`retention_report.notebook.lead`), so the words live here once: edit them here, not in a
notebook. Keys are a section's name in the registry (:mod:`retention_report.sections`), or
``"<section>.<chart>"`` for a chart further down the section. Markdown is allowed.

The headings work the same way: ``rr.heading("cohorts")`` shows the section's title (the registry's,
:mod:`retention_report.sections`) as a ``##`` heading, ``rr.heading("cohorts.revenue_retention")``
a sub-heading of :data:`HEADINGS` as ``###``. Both are in the reader's language
(:mod:`retention_report.i18n`): the texts here are gettext msgids, translated when shown.

This module imports nothing from the package but :mod:`retention_report.i18n`: every layer may
read it.
"""

from __future__ import annotations

from .i18n import N_, _

__all__ = ["LEADS", "HEADINGS", "lead_text", "heading_text"]

LEADS: dict[str, str] = {
    "summary": N_(
        "**What happened in the period?** Each row is one headline number for the period, next to "
        "the previous period and the same period a year ago; the change columns say how far it moved "
        "(green is good for the business, red is not). The findings below put the largest moves into "
        "words."
    ),
    "new_vs_returning": N_(
        "**Where did the revenue come from?** New customers bought for the first time in the period; "
        "returning customers had bought before. The table splits revenue, purchases and customers "
        "between the two; each bar shows the two groups' shares of revenue, purchases and customers. "
        "When returning customers' share of revenue is larger than their share of buyers, each of "
        "them is worth more than a new one."
    ),
    "new_vs_returning.trend": N_(
        "**Is this period better than the ones before it?** One bar per period, the current one "
        "last, split into new and returning revenue: read the height for the total and the colours "
        "for where it came from."
    ),
    "segments": N_(
        "**How often do the customers buy?** Every customer acquired before the period and still "
        "active at its end (a purchase within the activity window) is grouped by purchases per month "
        "over the lookback window — frequent, medium, rare — whether or not they bought in the period: "
        "rare also holds those who bought once, earlier, and made no purchase in the period. New "
        "customers (first purchase in the period) and lapsed ones (no purchase within the activity "
        "window) are groups of their own. Compare each group's share of customers with its share of "
        "revenue: a group whose revenue share is larger than its customer share is worth more than its "
        "size; the right-hand column gives each group's average purchase value."
    ),
    "customer_base": N_(
        "**Did the active customer base grow or shrink, and why?** The waterfall starts from the "
        "customers active at the start of the period, takes away those who churned, adds new customers "
        "(less the new ones who already lapsed) and reactivated ones, and lands on the customers "
        "active at the end: green bars win customers, red bars lose them. The formulas below give the "
        "same flows as rates (retention, churn, reactivation)."
    ),
    "cohorts": N_(
        "**Do new customers come back?** Each row is a cohort — the customers whose first purchase "
        "fell in that month (or week) — and each column the months since. A cell is the share of the "
        "cohort that bought in that month: read along a row to follow one cohort, down a column to "
        "compare cohorts at the same age. Darker is better; blank cells are not observable yet."
    ),
    "cohorts.revenue_retention": N_(
        "**Do the customers who stay keep spending?** The same cohorts in money: a cell is the "
        "cohort's revenue in that month as a share of its revenue in its first month, so it also "
        "counts how much the customers who come back spend."
    ),
    "cohorts.cumulative_revenue": N_(
        "**What is a new customer worth over time?** Each thin line is one cohort's revenue per "
        "customer added up month by month since the first purchase; the bold line is their average. "
        "Where the average flattens, customers have stopped adding value."
    ),
    "cohorts.segment_retention": N_(
        "**Which first-purchase segment brings customers who stay?** One retention curve per value "
        "of the segment (e.g. the channel of the first purchase): the higher the curve, the larger "
        "the share of those customers still buying that many months later."
    ),
    "behaviour": N_(
        "**How soon do customers buy a second time?** Each bar is one week after the first purchase; "
        "its height the share of repeat customers whose second purchase came then, and the line "
        "marks the median. The table below gives "
        "purchase frequency, repeat rate, order value and refunds for the period."
    ),
    "behaviour.ltv": N_(
        "**What is a customer worth?** The lifetime value as commissioned: average order value × "
        "purchases per customer × expected lifetime, with the margin version when costs are known. "
        "It is a rule of thumb from the period's averages; the next section's model predicts it per "
        "customer."
    ),
    "predicted_value": N_(
        "**What will today's customers still buy?** Models fitted on each customer's own history "
        "(BG/NBD for when they buy and stop, Gamma-Gamma for how much) predict purchases and value "
        "over the horizon. Start with the backtest: it shows how close the same model came on the "
        "period just past."
    ),
    "appendix": N_(
        "**How were these numbers made?** The definitions of every metric, the checks the data went "
        "through (and the rows they set aside), and the settings of this run."
    ),
}


# The sub-headings (``###``) of the sections, by ``"<section>.<part>"``; ``%(segment)s`` is the
# name of a column of the data (never translated).
HEADINGS: dict[str, str] = {
    "summary.findings": N_("Findings"),
    "new_vs_returning.trend": N_("Trend over the last periods"),
    "cohorts.revenue_retention": N_("Revenue retention"),
    "cohorts.cumulative_revenue": N_("Cumulative revenue per customer"),
    # TRANSLATORS: %(segment)s is the name of a column of the data, e.g. "channel"
    "cohorts.segment_retention": N_("Retention by first-purchase %(segment)s"),
    "behaviour.ltv": N_("Lifetime value"),
    "predicted_value.backtest": N_("How far to trust it: the backtest"),
    "predicted_value.where": N_("Where the value is"),
    "predicted_value.ltv_vs_clv": N_("Commissioned LTV and the model's CLV"),
    "appendix.definitions": N_("Definitions"),
    "appendix.intervals": N_("Is the change real?"),
    "appendix.data_quality": N_("Data quality"),
    "appendix.run_details": N_("Run details"),
}


def lead_text(key: str) -> str:
    """The lead called ``key`` in the current language (KeyError naming the known keys otherwise)."""
    try:
        return _(LEADS[key])
    except KeyError:
        raise KeyError(f"no lead {key!r}; known: {sorted(LEADS)}") from None


def heading_text(key: str, **values: str) -> str:
    """The heading called ``key`` in the current language: a section's title (its name in the
    registry) or a sub-heading of :data:`HEADINGS`, its ``%(name)s`` fields filled from ``values``
    (KeyError naming the known keys otherwise)."""
    from .sections import SECTION_NAMES, section

    if key in SECTION_NAMES:
        return _(section(key).title)
    try:
        text = _(HEADINGS[key])
    except KeyError:
        raise KeyError(f"no heading {key!r}; known: {sorted([*SECTION_NAMES, *HEADINGS])}") from None
    return text % values if values else text
