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

from .formatting import fmt_count, fmt_money, fmt_pct, shorten_all
from .plots import FIGSIZE, OKABE_ITO, PALETTE, _axes, _cap, _compact_money, _empty, _finite

__all__ = ["backtest_chart", "clv_by_cohort", "clv_by_segment", "clv_deciles"]


def _money_axis(ax: Axes, top: float, currency: str, axis: str = "y") -> None:
    fmt = _compact_money(currency) if top >= 1000 else FuncFormatter(lambda v, _p: fmt_money(v, currency, 0))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def _day(d: Any) -> str:
    d = pd.Timestamp(d)
    return f"{d.day} {d:%b %Y}"


def backtest_chart(backtest: pd.DataFrame | None, period_title: str = "the period",
                   calibration_end: date | None = None, ax: Axes | None = None) -> Axes:
    """Cumulative purchases in the period by the customers acquired before it: what the model
    fitted on the data up to the day before the period predicted, week by week, against what they
    bought (the holdout chart of Fader, Hardie & Lee 2005, Figure 3).

    ``backtest``: ``PredictedValue.backtest`` (week, days, date, predicted, actual; cumulative).
    """
    ax = _axes(ax)
    title = "Backtest: predicted and actual purchases"
    if backtest is None or backtest.empty:
        return _empty(ax, title, "No history before the period to test the model on")
    b = backtest
    x = pd.to_datetime(b["date"])
    ax.plot(x, b["actual"], color=PALETTE["returning"], lw=2.4, marker="o", ms=3.5, label="Actual")
    ax.plot(x, b["predicted"], color=PALETTE["new"], lw=2.2, ls="--", label="Predicted by the model")
    pred, act = float(b["predicted"].iloc[-1]), float(b["actual"].iloc[-1])
    # the end values, pushed apart so that close ones do not overlap
    low, high = sorted([(act, PALETTE["returning"]), (pred, PALETTE["new"])], key=lambda t: t[0])
    for (value, color), dy in ((low, -5), (high, 5)):
        ax.annotate(fmt_count(value), (x.iloc[-1], value), xytext=(6, dy), textcoords="offset points",
                    ha="left", va="center", fontsize=9, color=color, fontweight="bold")
    ax.set_xlim(x.iloc[0] - pd.Timedelta(days=3), x.iloc[-1] + pd.Timedelta(days=12))
    ax.set_ylim(0, max(pred, act, 1) * 1.12)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_count(v)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%-d %b"))
    ax.set_ylabel("Purchases since the period start")
    since = f"up to {_day(calibration_end)}" if calibration_end is not None else "before the period"
    ax.set_xlabel(f"Week ending (customers acquired {since}; the model saw no data after that day)")
    ax.legend(loc="upper left")
    if act > 0:
        err = pred / act - 1.0
        word = "too high" if err > 0 else "too low"
        title = (f"Backtest: {fmt_count(pred)} purchases predicted for {period_title}, "
                 f"{fmt_count(act)} made ({fmt_pct(abs(err), 0)} {word})")
    ax.set_title(title)
    return ax


_DECILE_LABELS = ["Top 10%", "10–20%", "20–30%", "30–40%", "40–50%", "50–60%", "60–70%", "70–80%", "80–90%",
                  "Bottom 10%"]


def clv_deciles(deciles: pd.DataFrame | None, currency: str = "EUR", ax: Axes | None = None) -> Axes:
    """How the base's predicted value is spread: customers ranked by predicted CLV in ten equal
    groups, bars = each group's share of the total, labels = its mean CLV per customer.

    ``deciles``: ``PredictedValue.deciles`` (decile 1 = highest, customers, clv, share).
    """
    ax = _axes(ax)
    title = "Predicted value by customer decile"
    if deciles is None or deciles.empty or not np.isfinite(deciles["share"]).any():
        return _empty(ax, title, "No prediction for this period")
    d = deciles.sort_values("decile").reset_index(drop=True)
    xs = np.arange(len(d))
    colors = [PALETTE["returning"] if i == 0 else PALETTE["muted"] for i in range(len(d))]
    ax.bar(xs, d["share"], color=colors, width=0.7)
    for xi, (share, clv, n) in enumerate(zip(d["share"], d["clv"], d["customers"], strict=True)):
        mean = clv / n if n else None
        ax.text(xi, share, f"{fmt_pct(share, 0)}\n{fmt_money(mean, currency, 0)} each", ha="center", va="bottom",
                fontsize=8, color=PALETTE["text"], linespacing=1.1)
    labels = _DECILE_LABELS if len(d) == 10 else [str(v) for v in d["decile"]]
    ax.set_xticks(xs, labels)
    ax.tick_params(axis="x", labelsize=8.5)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, float(d["share"].max()) * 1.3)
    ax.set_ylabel("Share of the predicted value")
    ax.set_xlabel("Customers ranked by predicted value over the horizon, in tenths")
    ax.grid(axis="x", visible=False)
    top = float(d["share"].iloc[0])
    bottom_half = float(d["share"].iloc[len(d) // 2:].sum())
    ax.set_title(f"The top 10% of customers hold {fmt_pct(top, 0)} of the predicted value; "
                 f"the bottom half {fmt_pct(bottom_half, 0)}")
    return ax


def clv_by_cohort(cohorts: pd.DataFrame | None, currency: str = "EUR", overall: float | None = None,
                  ax: Axes | None = None) -> Axes:
    """Mean predicted CLV per customer of each acquisition month (the most recent months), with
    the mean over all customers as a reference line.

    ``cohorts``: ``PredictedValue.cohorts`` (cohort = month start, customers, clv_mean).
    """
    ax = _axes(ax)
    title = "Predicted value per customer by month of first purchase"
    if cohorts is None or cohorts.empty:
        return _empty(ax, title, "No prediction for this period")
    c = cohorts.reset_index(drop=True)
    xs = np.arange(len(c))
    labels = [pd.Timestamp(v).strftime("%b %Y") for v in c["cohort"]]
    ax.bar(xs, c["clv_mean"], color=PALETTE["returning"], width=0.66)
    top = float(c["clv_mean"].max())
    for xi, v in zip(xs, c["clv_mean"], strict=True):
        ax.text(xi, v, fmt_money(v, currency, 0), ha="center", va="bottom", fontsize=8.5, color=PALETTE["text"])
    if _finite(overall):
        ax.axhline(float(overall), color=PALETTE["new"], lw=1.6, ls="--", label=f"All customers: "
                   f"{fmt_money(overall, currency, 0)} each")
        ax.legend(loc="upper left")
        top = max(top, float(overall))
    ax.set_xticks(xs, labels)
    if len(c) > 8:
        ax.tick_params(axis="x", labelrotation=45)
    _money_axis(ax, top, currency)
    ax.set_ylim(0, top * 1.25)
    ax.set_ylabel(f"Predicted CLV per customer ({currency})")
    ax.set_xlabel("Month of first purchase")
    ax.grid(axis="x", visible=False)
    if len(c) >= 2:
        best, worst = int(c["clv_mean"].idxmax()), int(c["clv_mean"].idxmin())
        title = (f"Customers first buying in {labels[best]} are worth most: "
                 f"{fmt_money(c['clv_mean'].iloc[best], currency, 0)} each ({labels[worst]}: "
                 f"{fmt_money(c['clv_mean'].iloc[worst], currency, 0)})")
    ax.set_title(title)
    return ax


def clv_by_segment(segments: pd.DataFrame | None, segment: str = "segment", currency: str = "EUR",
                   ax: Axes | None = None, top: int = 8) -> Axes:
    """Mean predicted CLV per customer for each value of a segment column (the customer's first
    purchase's), largest first, with each value's share of the customers.

    ``segments``: ``PredictedValue.segments`` (segment, customers, clv_mean, customer_share).
    """
    n = 0 if segments is None else min(len(segments), top)
    ax = _axes(ax, (FIGSIZE[0], max(2.6, 0.42 * n + 1.5)))
    name = shorten_all([segment])[0]
    title = f"Predicted value per customer by first-purchase {name}"
    if segments is None or segments.empty:
        return _empty(ax, title, "No segment column to break the prediction down by")
    # the largest values (by customers), ordered by their value per customer
    s = (segments.sort_values("customers", ascending=False).head(top)
         .sort_values("clv_mean", ascending=False).reset_index(drop=True))
    names = shorten_all([str(v) for v in s["segment"]])
    ys = np.arange(len(s))[::-1]
    colors = [OKABE_ITO[0] if i == 0 else PALETTE["muted"] for i in range(len(s))]
    ax.barh(ys, s["clv_mean"], color=colors, height=0.62)
    hi = float(s["clv_mean"].max())
    for yi, (v, share) in zip(ys, zip(s["clv_mean"], s["customer_share"], strict=True), strict=True):
        ax.text(v + hi * 0.01, yi, f"{fmt_money(v, currency, 0)}  ({fmt_pct(share, 0)} of customers)",
                va="center", fontsize=8.5, color=PALETTE["text"])
    ax.set_yticks(ys, names)
    ax.set_xlim(0, hi * 1.45)
    _money_axis(ax, hi, currency, axis="x")
    ax.set_xlabel(f"Predicted CLV per customer ({currency})")
    ax.grid(axis="y", visible=False)
    if len(s) >= 2:
        best, worst = s.iloc[0], s.iloc[-1]
        gap = best["clv_mean"] / worst["clv_mean"] - 1 if worst["clv_mean"] else None
        if gap is not None and gap < 0.10:
            title = (f"Value per customer hardly depends on the first-purchase {name} "
                     f"({fmt_money(worst['clv_mean'], currency, 0)} to {fmt_money(best['clv_mean'], currency, 0)})")
        else:
            title = (f"{_cap(names[0])} customers are worth most: {fmt_money(best['clv_mean'], currency, 0)} each "
                     f"(vs {fmt_money(worst['clv_mean'], currency, 0)} for {names[-1]})")
    if segments is not None and len(segments) > len(s):
        ax.text(1.0, -0.25, f"{len(segments) - len(s)} values with fewer customers not shown", transform=ax.transAxes,
                ha="right", fontsize=8, color="#52606D")
    ax.set_title(title)
    return ax
