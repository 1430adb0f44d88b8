"""Charts of the section "Predicted customer value" (issue 17), in the project theme of
:mod:`retention_report.plots`: each takes a small frame of
:class:`~retention_report.metrics.predictive.PredictedValue`, draws on ``ax`` (a new figure when
None), returns the Axes, titles it with the finding, and draws a labelled empty chart for empty
input. Names from data are shortened to 40 characters and drawn as plain text.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, PercentFormatter

from .formatting import fmt_count, fmt_date, fmt_money, fmt_month, fmt_pct, shorten_all
from .i18n import _, get_language, ngettext
from .plots import (
    FIGSIZE,
    OKABE_ITO,
    PALETTE,
    axes_or_new,
    cap_first,
    compact_money,
    empty_chart,
    is_finite,
)

__all__ = ["backtest_chart", "clv_by_cohort", "clv_by_segment", "clv_deciles"]


def _money_axis(ax: Axes, top: float, currency: str, axis: str = "y") -> None:
    fmt = compact_money(currency) if top >= 1000 else FuncFormatter(lambda v, _p: fmt_money(v, currency, 0))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _day(d: Any) -> str:
    return fmt_date(pd.Timestamp(d))


def _day_month(v: Any, _pos: Any = None) -> str:
    """A date axis tick: ``5 Jan`` (``5 янв.``, ``5. Jan.``)."""
    d = mdates.num2date(v)  # type: ignore[no-untyped-call]  # matplotlib.dates has no annotations
    if get_language() == "en":
        return str(d.strftime("%-d %b"))
    from babel.dates import format_skeleton

    from .i18n import locale

    return format_skeleton("MMMd", d.date(), locale=locale())


def backtest_chart(backtest: pd.DataFrame | None, period_title: str = "the period",
                   calibration_end: date | None = None, ax: Axes | None = None) -> Axes:
    """Cumulative purchases in the period by the customers acquired before it: what the model
    fitted on the data up to the day before the period predicted, week by week, against what they
    bought (the holdout chart of Fader, Hardie & Lee 2005, Figure 3).

    ``backtest``: ``PredictedValue.backtest`` (week, days, date, predicted, actual; cumulative).
    """
    ax = axes_or_new(ax)
    title = _("Backtest: predicted and actual purchases")
    if backtest is None or backtest.empty:
        return empty_chart(ax, title, _("No history before the period to test the model on"))
    b = backtest
    x = pd.to_datetime(b["date"])
    ax.plot(x, b["actual"], color=PALETTE["returning"], lw=2.4, marker="o", ms=3.5, label=_("Actual"))
    ax.plot(x, b["predicted"], color=PALETTE["new"], lw=2.2, ls="--", label=_("Predicted by the model"))
    pred, act = float(b["predicted"].iloc[-1]), float(b["actual"].iloc[-1])
    # the end values, pushed apart so that close ones do not overlap
    low, high = sorted([(act, PALETTE["returning"]), (pred, PALETTE["new"])], key=lambda t: t[0])
    for (value, color), dy in ((low, -5), (high, 5)):
        ax.annotate(fmt_count(value), (x.iloc[-1], value), xytext=(6, dy), textcoords="offset points",
                    ha="left", va="center", fontsize=9, color=color, fontweight="bold")
    ax.set_xlim(x.iloc[0] - pd.Timedelta(days=3), x.iloc[-1] + pd.Timedelta(days=12))
    ax.set_ylim(0, max(pred, act, 1) * 1.12)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_count(v)))
    ax.xaxis.set_major_formatter(FuncFormatter(_day_month))
    ax.set_ylabel(_("Purchases since the period start"))
    if calibration_end is not None:
        ax.set_xlabel(_("Week ending (customers acquired up to %(day)s; the model saw no data after that day)")
                      % {"day": _day(calibration_end)})
    else:
        ax.set_xlabel(_("Week ending (customers acquired before the period; the model saw no data after that day)"))
    ax.legend(loc="upper left")
    if act > 0:
        err = pred / act - 1.0
        words = {"predicted": fmt_count(pred), "period": period_title, "actual": fmt_count(act),
                 "error": fmt_pct(abs(err), 0)}
        # TRANSLATORS: %(period)s is a period name ("Q1 2024"); %(error)s a percentage
        title = (_("Backtest: %(predicted)s purchases predicted for %(period)s, %(actual)s made (%(error)s too high)")
                 if err > 0 else
                 _("Backtest: %(predicted)s purchases predicted for %(period)s, %(actual)s made (%(error)s too low)")
                 ) % words
    ax.set_title(title)
    return ax


def _decile_labels() -> list[str]:
    """``Top 10%``, ``10–20%`` … ``Bottom 10%`` (the percentages in the current language)."""
    pct = [fmt_pct(p / 10, 0) for p in range(11)]
    low = [p.replace("%", "") if get_language() == "en" else p for p in pct]  # "10–20%" in English
    middle = [f"{low[i]}–{pct[i + 1]}" for i in range(1, 9)]
    return [_("Top %(share)s") % {"share": pct[1]}, *middle, _("Bottom %(share)s") % {"share": pct[1]}]


def clv_deciles(deciles: pd.DataFrame | None, currency: str = "EUR", ax: Axes | None = None) -> Axes:
    """How the base's predicted value is spread: customers ranked by predicted CLV in ten equal
    groups, bars = each group's share of the total, labels = its mean CLV per customer.

    ``deciles``: ``PredictedValue.deciles`` (decile 1 = highest, customers, clv, share).
    """
    ax = axes_or_new(ax)
    title = _("Predicted value by customer decile")
    if deciles is None or deciles.empty or not np.isfinite(deciles["share"]).any():
        return empty_chart(ax, title, _("No prediction for this period"))
    d = deciles.sort_values("decile").reset_index(drop=True)
    xs = np.arange(len(d))
    colors = [PALETTE["returning"] if i == 0 else PALETTE["muted"] for i in range(len(d))]
    ax.bar(xs, d["share"], color=colors, width=0.7)
    for xi, (share, clv, n) in enumerate(zip(d["share"], d["clv"], d["customers"], strict=True)):
        mean = clv / n if n else None
        # TRANSLATORS: under a bar: its share, a line break, then the mean per customer ("€120 each")
        ax.text(xi, share, _("%(share)s\n%(amount)s each") % {"share": fmt_pct(share, 0),
                                                             "amount": fmt_money(mean, currency, 0)},
                ha="center", va="bottom",
                fontsize=8, color=PALETTE["text"], linespacing=1.1)
    labels = _decile_labels() if len(d) == 10 else [str(v) for v in d["decile"]]
    ax.set_xticks(xs, labels)
    ax.tick_params(axis="x", labelsize=8.5)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, float(d["share"].max()) * 1.3)
    ax.set_ylabel(_("Share of the predicted value"))
    ax.set_xlabel(_("Customers ranked by predicted value over the horizon, in tenths"))
    ax.grid(axis="x", visible=False)
    top = float(d["share"].iloc[0])
    bottom_half = float(d["share"].iloc[len(d) // 2:].sum())
    ax.set_title(_("The top %(tenth)s of customers hold %(top)s of the predicted value; the bottom half %(bottom)s")
                 % {"tenth": fmt_pct(0.1, 0), "top": fmt_pct(top, 0), "bottom": fmt_pct(bottom_half, 0)})
    return ax


# groups smaller than this are shown but never named in a title (issue 26; ``metrics.min_group_size``)
MIN_GROUP_SIZE = 30


def _small_note(ax: Axes, min_size: int, y: float = -0.3) -> None:
    ax.text(1.0, y, ngettext("light bars: fewer than %(count)s customer, not compared in the title",
                                "light bars: fewer than %(count)s customers, not compared in the title", min_size)
            % {"count": min_size}, transform=ax.transAxes, ha="right", fontsize=8, color="#52606D")


def clv_by_cohort(cohorts: pd.DataFrame | None, currency: str = "EUR", overall: float | None = None,
                  ax: Axes | None = None, min_size: int = MIN_GROUP_SIZE) -> Axes:
    """Mean predicted CLV per customer of each acquisition month (the most recent months), with
    the mean over all customers as a reference line.

    ``cohorts``: ``PredictedValue.cohorts`` (cohort = month start, customers, clv_mean). Months with
    fewer than ``min_size`` customers are drawn light and never named in the title, which says the
    values are the model's expectation.
    """
    ax = axes_or_new(ax)
    title = _("Predicted value per customer by month of first purchase")
    if cohorts is None or cohorts.empty:
        return empty_chart(ax, title, _("No prediction for this period"))
    c = cohorts.reset_index(drop=True)
    xs = np.arange(len(c))
    labels = [fmt_month(pd.Timestamp(v)) for v in c["cohort"]]
    big = (c["customers"] >= min_size).to_numpy() if "customers" in c else np.ones(len(c), bool)
    ax.bar(xs, c["clv_mean"], color=[PALETTE["returning"] if b else PALETTE["muted"] for b in big], width=0.66)
    top = float(c["clv_mean"].max())
    for xi, v in zip(xs, c["clv_mean"], strict=True):
        ax.text(float(xi), v, fmt_money(v, currency, 0), ha="center", va="bottom", fontsize=8.5, color=PALETTE["text"])
    if overall is not None and is_finite(overall):
        ax.axhline(float(overall), color=PALETTE["new"], lw=1.6, ls="--",
                   label=_("All customers: %(amount)s each") % {"amount": fmt_money(overall, currency, 0)})
        ax.legend(loc="upper left")
        top = max(top, float(overall))
    ax.set_xticks(xs, labels)
    if len(c) > 8:
        ax.tick_params(axis="x", labelrotation=45)
    _money_axis(ax, top, currency)
    ax.set_ylim(0, top * 1.25)
    ax.set_ylabel(_("Predicted CLV per customer (%(currency)s)") % {"currency": currency})
    ax.set_xlabel(_("Month of first purchase"))
    ax.grid(axis="x", visible=False)
    if not big.all():
        _small_note(ax, min_size)
    shown = c[big]
    if len(shown) >= 2:
        best, worst = int(shown["clv_mean"].idxmax()), int(shown["clv_mean"].idxmin())
        # TRANSLATORS: %(best)s and %(worst)s are months ("Mar 2024")
        title = _("The model expects customers first buying in %(best)s to be worth most: %(best_value)s each "
                  "(%(worst)s: %(worst_value)s)") % {"best": labels[best], "best_value": fmt_money(c["clv_mean"].iloc[best], currency, 0),
                                         "worst": labels[worst],
                                         "worst_value": fmt_money(c["clv_mean"].iloc[worst], currency, 0)}
    ax.set_title(title)
    return ax


def clv_by_segment(segments: pd.DataFrame | None, segment: str = "segment", currency: str = "EUR",
                   ax: Axes | None = None, top: int = 8, min_size: int = MIN_GROUP_SIZE) -> Axes:
    """Mean predicted CLV per customer for each value of a segment column (the customer's first
    purchase's), largest first, with each value's share of the customers.

    ``segments``: ``PredictedValue.segments`` (segment, customers, clv_mean, customer_share). Values
    with fewer than ``min_size`` customers are drawn light and never named in the title, which says
    the values are the model's expectation.
    """
    n = 0 if segments is None else min(len(segments), top)
    ax = axes_or_new(ax, (FIGSIZE[0], max(2.6, 0.42 * n + 1.5)))
    name = shorten_all([segment])[0]
    # TRANSLATORS: %(segment)s is the name of a column of the data ("channel")
    title = _("Predicted value per customer by first-purchase %(segment)s") % {"segment": name}
    if segments is None or segments.empty:
        return empty_chart(ax, title, _("No segment column to break the prediction down by"))
    # the largest values (by customers), ordered by their value per customer
    s = (segments.sort_values("customers", ascending=False).head(top)
         .sort_values("clv_mean", ascending=False).reset_index(drop=True))
    names = shorten_all([str(v) for v in s["segment"]])
    ys = np.arange(len(s))[::-1]
    big = (s["customers"] >= min_size).to_numpy()
    first_big = int(np.argmax(big)) if big.any() else -1
    colors = [OKABE_ITO[0] if i == first_big else "#DDE3EA" if not big[i] else PALETTE["muted"] for i in range(len(s))]
    ax.barh(ys, s["clv_mean"], color=colors, height=0.62)
    hi = float(s["clv_mean"].max())
    for yi, (v, share) in zip(ys, zip(s["clv_mean"], s["customer_share"], strict=True), strict=True):
        ax.text(v + hi * 0.01, yi, _("%(amount)s  (%(share)s of customers)")
                % {"amount": fmt_money(v, currency, 0), "share": fmt_pct(share, 0)},
                va="center", fontsize=8.5, color=PALETTE["text"])
    ax.set_yticks(ys, names)
    ax.set_xlim(0, hi * 1.45)
    _money_axis(ax, hi, currency, axis="x")
    ax.set_xlabel(_("Predicted CLV per customer (%(currency)s)") % {"currency": currency})
    ax.grid(axis="y", visible=False)
    if not big.all():
        _small_note(ax, min_size, -0.36)
    idx = np.flatnonzero(big)
    if len(idx) >= 2:
        best, worst = s.iloc[idx[0]], s.iloc[idx[-1]]
        gap = best["clv_mean"] / worst["clv_mean"] - 1 if worst["clv_mean"] else None
        words = {"segment": name, "best": cap_first(names[idx[0]]), "worst": names[idx[-1]],
                 "low": fmt_money(worst["clv_mean"], currency, 0), "high": fmt_money(best["clv_mean"], currency, 0)}
        if gap is not None and gap < 0.10:
            title = _("The model expects value per customer to hardly depend on the first-purchase %(segment)s "
                      "(%(low)s to %(high)s)") % words
        else:
            # TRANSLATORS: %(best)s and %(worst)s are values from the data (a channel: "Email")
            title = _("The model expects %(best)s customers to be worth most: %(high)s each (vs %(low)s for "
                      "%(worst)s)") % words
    if segments is not None and len(segments) > len(s):
        hidden = len(segments) - len(s)
        ax.text(1.0, -0.25, ngettext("%(count)s value with fewer customers not shown",
                                     "%(count)s values with fewer customers not shown", hidden) % {"count": hidden},
                transform=ax.transAxes, ha="right", fontsize=8, color="#52606D")
    ax.set_title(title)
    return ax
