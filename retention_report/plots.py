"""Charts of the report: one project theme, a colour-blind-safe palette, titles that state the finding.

Every function takes the small pandas result of a metric function (never raw payments), draws on
``ax`` (a new figure when ``None``) and returns the Axes, so tests can check titles, labels and bar
heights and analysts can compose charts in their own figures. Empty inputs draw a labelled empty chart
instead of failing. Names that come from data are drawn as plain text (mathtext is off, so a channel
called ``$$$`` or ``<script>`` is shown verbatim) and shortened to 40 characters with an ellipsis
(``formatting.shorten_all``: distinct names stay distinct), so a long value cannot widen a chart.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from .formatting import (
    doc_change,
    fmt_compact,
    fmt_count,
    fmt_money,
    fmt_month,
    fmt_pct,
    movement_phrase,
    period_title,
    segment_label,
    shorten_all,
)
from .i18n import _, ngettext
from .metrics.cohorts import MIN_GROUP_SIZE, OTHER_SEGMENT, headline_average, weakest_group
from .periods import PeriodError, parse_period

__all__ = [
    "PALETTE",
    "alt_text",
    "installed_families",
    "cohort_heatmap",
    "cumulative_revenue_curves",
    "customer_bridge_waterfall",
    "new_vs_returning_bars",
    "revenue_bridge_waterfall",
    "revenue_trend",
    "second_purchase_histogram",
    "segment_mix",
    "segment_retention_curves",
    "set_theme",
]

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000"]
PALETTE = {
    "new": "#E69F00",        # orange
    "returning": "#0072B2",  # blue
    "guest": "#999999",      # grey: revenue without a customer (guest payments)
    "good": "#009E73",       # bluish green
    "bad": "#D55E00",        # vermillion
    "total": "#5F6B7A",      # slate
    "muted": "#B8C2CC",
    "text": "#1F2933",
}
HEATMAP_CMAP = "YlGnBu"  # sequential, colour-blind safe, prints well in grey
FIGSIZE = (8.6, 3.9)


def installed_families(*families: str) -> list[str]:
    """The font ``families`` matplotlib can find (its font cache, and the generic names such as
    ``sans-serif``), in the order given; DejaVu Sans — shipped with matplotlib — when none is.
    A family the cache does not know would make matplotlib log "findfont: Font family … not found"
    for every piece of text it draws (a cache built before the font was installed)."""
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist} | set(font_manager.font_family_aliases)
    return [f for f in families if f in known] or ["DejaVu Sans"]


def set_theme() -> None:
    """Apply the project style to matplotlib/seaborn (idempotent)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette=OKABE_ITO, font="DejaVu Sans")
    mpl.rcParams.update({
        "figure.figsize": FIGSIZE,
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "figure.autolayout": False,
        "figure.constrained_layout.use": True,
        "axes.titlesize": 12.5,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.titlepad": 10,
        "axes.labelsize": 10,
        "axes.labelcolor": PALETTE["text"],
        "axes.edgecolor": "#CBD2D9",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "grid.color": "#E4E7EB",
        "grid.linewidth": 0.8,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "text.color": PALETTE["text"],
        "text.parse_math": False,
        "axes.formatter.use_mathtext": False,
    })


# --------------------------------------------------------------------------------------------- helpers

def alt_text(fig: Any) -> str:
    """A chart's alt text: what its title says — the finding (every chart here states one) —
    from the figure's suptitle and its axes' titles; without any title, what the axes show
    ("Chart of <y label> by <x label>"); '' for a figure with neither."""
    parts = []
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text().strip():
        parts.append(sup.get_text())
    for ax in fig.axes:
        parts += [ax.get_title(loc) for loc in ("left", "center", "right") if ax.get_title(loc).strip()]
    if not parts:
        for ax in fig.axes:
            y, x = ax.get_ylabel().strip(), ax.get_xlabel().strip()
            if y or x:
                # TRANSLATORS: a chart's alt text from its axes: "Chart of <y axis> by <x axis>"
                what = _("%(y)s by %(x)s") % {"y": y, "x": x} if y and x else y or x
                parts.append(_("Chart of %(what)s") % {"what": what})
                break
    return " — ".join(" ".join(p.split()) for p in dict.fromkeys(parts))


def axes_or_new(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> Axes:
    if ax is not None:
        return ax
    _fig, ax = plt.subplots(figsize=figsize)
    return ax


def empty_chart(ax: Axes, title: str, message: str | None = None) -> Axes:
    message = _("No data for this period") if message is None else message
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#7B8794",
            fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax


def compact_money(currency: str) -> FuncFormatter:
    """Axis and bar labels of amounts: ``€3.1M``, ``€310k`` (:func:`retention_report.formatting.fmt_compact`)."""
    return FuncFormatter(lambda v, _pos=None: fmt_compact(v, currency))


def is_finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _pct_change(now: float, before: float) -> float | None:
    if not is_finite(now) or not is_finite(before) or before == 0:
        return None
    return now / before - 1.0


def cap_first(text: Any) -> str:
    text = str(text)
    return text[:1].upper() + text[1:]


def _bucket_label(value: Any, grain: str) -> str:
    ts = pd.Timestamp(value)
    if grain == "week":
        iso = ts.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return fmt_month(ts)


# ----------------------------------------------------------------------------------- new vs returning

def new_vs_returning_bars(nvr: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None) -> Axes:
    """100 %-stacked bars: the share of new vs returning in revenue, purchases and customers.

    ``nvr`` is :func:`retention_report.metrics.new_vs_returning` (index ``new``, ``returning``,
    ``total``; columns ``revenue``, ``purchases``, ``customers`` …).
    """
    ax = axes_or_new(ax, (8.6, 2.9))
    title = _("New vs returning customers")
    if nvr is None or nvr.empty or "new" not in nvr.index or not nvr.loc[["new", "returning"], "revenue"].sum():
        return empty_chart(ax, title)
    measures = [("revenue", _("Revenue")), ("purchases", _("Purchases")), ("customers", _("Customers"))]
    rows = []
    for col, label in measures:
        new, ret = float(nvr.loc["new", col]), float(nvr.loc["returning", col])
        total = new + ret
        rows.append((label, new / total if total else 0.0, ret / total if total else 0.0, new, ret, col))
    y = np.arange(len(rows))[::-1]
    new_share = np.array([r[1] for r in rows])
    ret_share = np.array([r[2] for r in rows])
    ax.barh(y, ret_share, color=PALETTE["returning"], label=_("Returning"), height=0.62)
    ax.barh(y, new_share, left=ret_share, color=PALETTE["new"], label=_("New"), height=0.62)
    for yi, (_label, ns, rs, nv, rv, col) in zip(y, rows, strict=False):
        fmt = (lambda v: fmt_money(v, currency)) if col == "revenue" else fmt_count
        if rs > 0.12:
            ax.text(rs / 2, yi, f"{fmt_pct(rs, 0)}  ({fmt(rv)})", ha="center", va="center", color="white", fontsize=9)
        if ns > 0.12:
            ax.text(rs + ns / 2, yi, f"{fmt_pct(ns, 0)}  ({fmt(nv)})", ha="center", va="center",
                    color=PALETTE["text"], fontsize=9)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(_("Share of the period's total"))
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False, fontsize=9,
              borderaxespad=0.2)
    rev_share = rows[0][2]
    cust_share = rows[2][2]
    ax.set_title(_("Returning customers bring %(revenue)s of revenue while making up %(buyers)s of buyers")
                 % {"revenue": fmt_pct(rev_share, 0), "buyers": fmt_pct(cust_share, 0)}, pad=24)
    return ax


def _period_name(label: Any) -> str:
    """A period label of the trend (``2024-Q1``) as the reader names it ("Q1 2024", "1-й кв. 2024 г.")."""
    try:
        return period_title(parse_period(str(label)))
    except PeriodError:
        return str(label)


def revenue_trend(trend: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None,
                  doc: Mapping[str, Any] | None = None) -> Axes:
    """Stacked bars of gross revenue from new and returning purchases for the trailing periods.

    ``trend`` is :func:`retention_report.metrics.kpi_trend` (one row per period, oldest first, with
    ``period``, ``revenue_new``, ``revenue_returning`` and ``new_revenue_share``; a ``revenue_guest``
    with values adds guest payments on top, so the bars add up to the gross revenue). Periods the data
    do not reach (``coverage`` ``"none"``: before the first payment) are left out rather than drawn
    as empty bars that read as zero revenue: the trend starts at the data. With the metrics
    document ``doc``, the title's movements are judged as the KPI table judges them (SPEC §4.6): a
    change that is not real reads "within noise of …", and a comparison the document has no verdict
    for (not its previous or year-ago period) is left out.
    """
    ax = axes_or_new(ax)
    title = _("Revenue trend")
    if trend is not None and "coverage" in trend:
        trend = trend[trend["coverage"] != "none"]
    if trend is None or trend.empty:
        return empty_chart(ax, title)
    t = trend.reset_index(drop=True)
    x = np.arange(len(t))
    new = t["revenue_new"].astype(float).fillna(0).to_numpy()
    ret = t["revenue_returning"].astype(float).fillna(0).to_numpy()
    ax.bar(x, ret, color=PALETTE["returning"], label=_("Returning"), width=0.66)
    ax.bar(x, new, bottom=ret, color=PALETTE["new"], label=_("New"), width=0.66)
    gross = new + ret
    if "revenue_guest" in t.columns and t["revenue_guest"].notna().any():  # SPEC §2: guest payments
        guest = t["revenue_guest"].astype(float).fillna(0).to_numpy()
        ax.bar(x, guest, bottom=gross, color=PALETTE["guest"], label=_("Guest / unidentified"), width=0.66)
        gross = gross + guest
    for xi, g in zip(x, gross, strict=False):
        if g > 0:
            ax.text(xi, g, compact_money(currency)(g), ha="center", va="bottom", fontsize=8.5,
                    color=PALETTE["text"])
    ax.set_xticks(x, t["period"].astype(str).tolist())
    if len(t) > 10:
        ax.tick_params(axis="x", labelrotation=45)
    ax.yaxis.set_major_formatter(compact_money(currency))
    # TRANSLATORS: an axis label; %(currency)s is the currency's code (EUR)
    ax.set_ylabel(_("Gross revenue (%(currency)s)") % {"currency": currency})
    # headroom above the tallest bar's label for the legend: a longer word ("Wiederkehrend") must
    # not run into a total
    ax.set_ylim(0, max(gross.max(), 1) * 1.3)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper left", ncols=3, frameon=False)
    last = t.iloc[-1]
    title = _("Revenue in %(period)s: %(amount)s") % {"period": _period_name(last["period"]),
                                                        "amount": fmt_money(gross[-1], currency)}
    moves = []
    for back in (2, 5):
        if len(t) < back:
            continue
        name = _period_name(t.iloc[-back]["period"])
        move = movement_phrase(gross[-1], gross[-back], name, decimals=0)
        if move and doc is not None:
            block = next((b for b in ("previous", "year_ago")
                          if str((doc.get(f"{b}_period") or {}).get("period")) == str(t.iloc[-back]["period"])), None)
            if block is None:
                continue
            if not doc_change(doc, "gross_revenue", block, currency).real:
                move = _("within noise of %(period)s") % {"period": name}
        if move:
            moves.append(move)
    if moves:
        title += ", " + (_("%(first)s and %(second)s") % {"first": moves[0], "second": moves[1]}
                         if len(moves) == 2 else moves[0])
    ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------------------- segments

def segment_mix(table: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None,
                min_size: int = MIN_GROUP_SIZE) -> Axes:
    """Share of customers vs share of revenue per frequency segment, with each segment's AOV.

    ``table`` is ``FrequencySegments.table`` (index = segment; ``customers``, ``customer_share``,
    ``revenue_share``, ``aov``). The gap between the two bars answers "big-but-rare or
    small-but-frequent?". A segment with fewer than ``min_size`` customers is never the title's.
    """
    ax = axes_or_new(ax, (8.6, 3.7))
    title = _("Customers and revenue by segment")
    if table is None or table.empty or not table["revenue_share"].fillna(0).any():
        return empty_chart(ax, title)
    t = table.copy()
    names = [segment_label(s) for s in t.index]
    y = np.arange(len(t))[::-1]
    h = 0.38
    ax.barh(y + h / 2, t["customer_share"].fillna(0), height=h, color=PALETTE["muted"], label=_("Share of customers"))
    ax.barh(y - h / 2, t["revenue_share"].fillna(0), height=h, color=PALETTE["returning"],
            label=_("Share of revenue"))
    top = float(max(t["customer_share"].max(), t["revenue_share"].max()))
    for yi, (_seg, r) in zip(y, t.iterrows(), strict=False):
        ax.text(r["customer_share"] + top * 0.01, yi + h / 2, fmt_pct(r["customer_share"], 0), va="center", fontsize=8.5)
        ax.text(r["revenue_share"] + top * 0.01, yi - h / 2, fmt_pct(r["revenue_share"], 0), va="center", fontsize=8.5,
                color=PALETTE["returning"])
        aov = r.get("aov")
        ax.text(1.0, yi, _("AOV per purchase %(amount)s") % {"amount": fmt_money(aov, currency)} if is_finite(aov)
                else _("no purchases"),
                transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=8.5, color="#52606D")
    ax.set_yticks(y, names)
    right = top * 1.45  # room on the right for the AOV labels
    ax.set_xlim(0, right)
    # a share never passes 100%: no tick or axis line beyond it in that room
    ticks = [v for v in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(0, min(top, 1.0)) if 0 <= v <= 1.0]
    ax.set_xticks(ticks)
    ax.spines["bottom"].set_bounds(0, min(max(ticks[-1], top), 1.0))
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(_("Share of all customers in the base / of the period's gross revenue"))
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.2)
    ratio = (t["revenue_share"] / t["customer_share"]).replace([np.inf, -np.inf], np.nan)
    big = [s for s in ("frequent", "medium", "rare") if s in ratio.index
           and ("customers" not in t.columns or float(t.loc[s, "customers"]) >= min_size)]
    regular = ratio.reindex(big).dropna()
    if not regular.empty:
        best = regular.idxmax()
        # TRANSLATORS: %(segment)s is a segment's name without its letter ("Frequent")
        title = (_("%(segment)s customers: %(customers)s of customers, %(revenue)s of revenue")
                 % {"segment": segment_label(best).split(" (")[0], "customers": fmt_pct(t.loc[best, "customer_share"], 0),
                    "revenue": fmt_pct(t.loc[best, "revenue_share"], 0)})
    ax.set_title(title, pad=22)
    return ax


# ------------------------------------------------------------------------------------- customer base

def customer_bridge_waterfall(bridge: Any, ax: Axes | None = None, unobservable: bool = False) -> Axes:
    """Waterfall of the active customer base: start → −churned → +new → −new lapsed → +reactivated → end.

    ``bridge`` is a :class:`retention_report.metrics.CustomerBridge` (or a mapping with ``start``,
    ``churned``, ``new``, ``new_lapsed``, ``reactivated``, ``end``). The bars add up exactly
    (CS − CL + CN − NL + RE = CE). ``unobservable``: the data are shorter than the activity window
    before the period end (SPEC §4.3), so churned and reactivated are 0 by construction: they get
    no bar and the title does not count them.
    """
    ax = axes_or_new(ax)
    get = (lambda k: int(bridge[k])) if isinstance(bridge, dict) else (lambda k: int(getattr(bridge, k)))
    cs, cl, cn, nl, re_, ce = (get(k) for k in ("start", "churned", "new", "new_lapsed", "reactivated", "end"))
    title = _("Active customer base")
    if cs == 0 and ce == 0 and cn == 0:
        return empty_chart(ax, title, _("No active customers in this period"))
    if unobservable:
        steps: list[tuple[str, int, str]] = [(_("Active at start"), cs, "total"), (_("New"), cn, "good"),
                                             (_("Active at end"), ce, "total")]
    else:
        steps = [(_("Active at start"), cs, "total"), (_("Churned"), -cl, "bad"), (_("New"), cn, "good")]
        if nl:
            steps.append((_("New, lapsed"), -nl, "bad"))
        steps += [(_("Reactivated"), re_, "good"), (_("Active at end"), ce, "total")]
    _waterfall(ax, steps, fmt_count)
    ax.set_xticks(range(len(steps)), [label for label, _v, _k in steps])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_count(v)))
    ax.set_ylabel(_("Active customers"))
    ax.set_ylim(0, max(cs, ce, 1) * 1.15)
    ax.grid(axis="x", visible=False)
    ch = _pct_change(ce, cs)
    if unobservable:
        ax.set_title(ngettext("%(count)s active customers at the end, %(new)s new; nobody can have lapsed yet",
                              "%(count)s active customers at the end, %(new)s new; nobody can have lapsed yet",
                              ce) % {"count": fmt_count(ce), "new": fmt_count(cn)})
    elif ch is None:
        ax.set_title(ngettext("%(count)s active customer at the end of the period",
                              "%(count)s active customers at the end of the period", ce) % {"count": fmt_count(ce)})
    else:
        words = {"change": fmt_pct(abs(ch), 1), "end": fmt_count(ce), "won": fmt_count(cn + re_),
                 "lost": fmt_count(cl + nl)}
        if ch > 0:
            text = _("The active customer base grew %(change)s to %(end)s: %(won)s won, %(lost)s lost")
        elif ch < 0:
            text = _("The active customer base shrank %(change)s to %(end)s: %(won)s won, %(lost)s lost")
        else:
            text = _("The active customer base held steady to %(end)s: %(won)s won, %(lost)s lost")
        ax.set_title(text % words)
    return ax


def _waterfall(ax: Axes, steps: Sequence[tuple[str, float, str]], fmt: Callable[[Any], str]) -> None:
    """Draw waterfall bars: ``(label, value, kind)`` steps, ``kind`` ``total`` (a bar from zero that
    sets the level) or ``good``/``bad`` (a step up or down from the level), each labelled by ``fmt``,
    with dotted connectors between the bars (the customer bridge and the revenue bridge)."""
    level = 0.0
    for i, (_label, value, kind) in enumerate(steps):
        if kind == "total":
            bottom, height = 0.0, value
            level = value
            text = fmt(value)
        else:
            bottom = level if value >= 0 else level + value
            height = abs(value)
            level += value
            text = ("+" if value >= 0 else "−") + fmt(abs(value))
        ax.bar(i, height, bottom=bottom, color=PALETTE[kind], width=0.62)
        ax.text(i, bottom + height, text, ha="center", va="bottom", fontsize=9, color=PALETTE["text"])
        if i < len(steps) - 1:
            ax.plot([i + 0.31, i + 0.69], [level, level], color="#9AA5B1", lw=0.8, ls=":")


def revenue_bridge_waterfall(bridge: Any, currency: str = "EUR", period: Any = None, previous: Any = None,
                             ax: Axes | None = None, coverage: str = "full", doc: Any = None) -> Axes:
    """Waterfall of gross revenue from the previous period to this one, by customer (SPEC §4.7):
    previous → +new → +reactivated → +expansion → −contraction → −lost → this period.

    ``bridge`` is metrics.json's ``revenue_bridge`` (or a
    :class:`retention_report.metrics.revenue.RevenueBridge`); ``period`` / ``previous`` are the
    period labels (``2024-Q1``) naming the two total bars. The bars add up exactly. ``coverage``: how
    much of the previous period the data cover (metrics.json's ``previous_period.coverage``); when
    not ``full`` the title states no change (its customers' "new" or "reactivated" partly only mean
    the data begin late) and says so. With the metrics document ``doc``, a change of gross revenue
    that is not real (SPEC §4.6: within noise, or below ``report.min_change``) is not called a rise or
    a fall: the title says "within noise of …", as the findings do.
    """
    ax = axes_or_new(ax)
    keys = ("previous", "new", "reactivated", "expansion", "contraction", "lost", "current")
    get = (lambda k: bridge.get(k)) if isinstance(bridge, dict) else (lambda k: getattr(bridge, k, None))
    values = {k: get(k) for k in keys}
    title = _("Why gross revenue changed")
    if not bridge or not all(is_finite(v) for v in values.values()):
        return empty_chart(ax, title, _("No revenue bridge for this period"))
    v = {k: float(x) for k, x in values.items()}
    if v["previous"] == 0 and v["current"] == 0:
        return empty_chart(ax, title, _("No revenue in this period or the one before"))
    prev_name = _period_name(previous) if previous else _("Previous period")
    this_name = _period_name(period) if period else _("This period")
    steps: list[tuple[str, float, str]] = [
        (prev_name, v["previous"], "total"),
        (_("New customers, all purchases"), v["new"], "good"),
        (_("Reactivated"), v["reactivated"], "good"),
        (_("Bought more"), v["expansion"], "good"),
        (_("Bought less"), -v["contraction"], "bad"),
        (_("Lost"), -v["lost"], "bad"),
        (this_name, v["current"], "total"),
    ]
    money = compact_money(currency)
    _waterfall(ax, steps, money)
    ax.set_xticks(range(len(steps)), ["\n".join(textwrap.wrap(s[0], 14)) for s in steps])
    ax.yaxis.set_major_formatter(money)
    ax.set_ylabel(_("Gross revenue (%(currency)s)") % {"currency": currency})
    top = max(v["previous"], v["current"], v["previous"] + v["new"] + v["reactivated"] + v["expansion"], 1.0)
    ax.set_ylim(0, top * 1.15)
    ax.grid(axis="x", visible=False)
    ch = _pct_change(v["current"], v["previous"])
    if coverage != "full":
        # TRANSLATORS: %(previous)s is a period's name ("Q4 2023")
        ax.set_title(_("Why gross revenue changed (the data cover %(previous)s only partly)") % {"previous": prev_name})
        return ax
    # amounts as the findings write them (the same number reads the same everywhere)
    won, lost = fmt_money(v["new"], currency), fmt_money(v["lost"], currency)
    if ch is None:
        ax.set_title(_("Gross revenue %(amount)s, all from customers who did not buy in %(previous)s")
                     % {"amount": fmt_money(v["current"], currency), "previous": prev_name})
    else:
        words = {"change": fmt_pct(abs(ch), 1), "previous": prev_name, "lost": lost, "new": won,
                 "amount": fmt_money(v["current"], currency)}
        if doc is not None and not doc_change(doc, "gross_revenue", "previous", currency).real:
            # TRANSLATORS: %(amount)s is this period's gross revenue, %(previous)s the previous period
            text = _("Gross revenue %(amount)s, within noise of %(previous)s: new customers brought %(new)s, "
                     "customers lost took %(lost)s")
        elif ch > 0:
            text = _("Gross revenue rose %(change)s on %(previous)s: new customers brought %(new)s, "
                     "customers lost took %(lost)s")
        elif ch < 0:
            text = _("Gross revenue fell %(change)s on %(previous)s: customers lost took %(lost)s, "
                     "new customers brought %(new)s")
        else:
            text = _("Gross revenue held steady on %(previous)s: new customers brought %(new)s, "
                     "customers lost took %(lost)s")
        ax.set_title(text % words)
    return ax


# ------------------------------------------------------------------------------------------- cohorts

def _heatmap_text(kind: str, grain: str) -> tuple[str, str]:
    """(colour bar label, short title) of a cohort heatmap."""
    if kind == "retention":
        return _("Share of each cohort buying again"), _("Customer retention")
    if kind == "revenue_retention":
        first = _("Cohort revenue relative to its first month") if grain == "month" else \
            _("Cohort revenue relative to its first week")
        return first, _("Revenue retention")
    return kind, kind


def _small_mask(index: pd.Index, size: pd.Series | None, min_size: int) -> pd.Series:
    """Per row of a cohort frame: fewer than ``min_size`` customers (all False without sizes)."""
    if size is None:
        return pd.Series(False, index=index)
    return (size.reindex(index).fillna(0) < min_size)


def _sizes(index: pd.Index, size: pd.Series | None) -> pd.Series:
    """Cohort sizes aligned with ``index``; equal weights without sizes."""
    return pd.Series(1.0, index=index) if size is None else size.reindex(index).fillna(0).astype(float)


def _cohort_ticks(index: pd.Index, grain: str, small: pd.Series, size: pd.Series | None) -> list[str]:
    """Row labels; a small cohort's says so, with its size ("Nov 1997 · 2, small")."""
    out = []
    for c in index:
        label = _bucket_label(c, grain)
        if bool(small.loc[c]) and size is not None:
            # TRANSLATORS: a cohort too small to be headlined: "Nov 1997 · 2, small"
            label = _("%(cohort)s · %(count)s, small") % {"cohort": label, "count": fmt_count(size.loc[c])}
        out.append(label)
    return out


def cohort_heatmap(
    matrix: pd.DataFrame,
    partial: pd.DataFrame | None = None,
    kind: str = "retention",
    grain: str = "month",
    ax: Axes | None = None,
    size: pd.Series | None = None,
    min_size: int = MIN_GROUP_SIZE,
) -> Axes:
    """Cohort × age heatmap in percent; unobservable cells blank, the partial bucket hatched.

    ``matrix`` is a ``CohortMatrices`` frame (index = cohort start date, columns = age 0, 1, …, values
    fractions, NaN = not observable); ``partial`` a boolean frame of the same shape; ``size`` the
    cohorts' sizes: cohorts below ``min_size`` are marked in their label and left out of the title's
    average and weakest cohort (SPEC §4.4), the average being weighted by size — the findings' one.
    """
    import seaborn as sns

    n_rows = 0 if matrix is None else len(matrix)
    n_cols = 0 if matrix is None else matrix.shape[1]
    ax = axes_or_new(ax, (8.6, max(3.2, 0.34 * n_rows + 1.4)))
    heading, short = _heatmap_text(kind, grain)
    if matrix is None or matrix.empty or matrix.isna().all().all():
        return empty_chart(ax, short, _("No cohorts to show for this period"))
    m = matrix.astype(float)
    # colour scale from ages ≥ 1: age 0 is 100 % by definition and would wash out the gradient
    later = m.iloc[:, 1:] if n_cols > 1 else m
    vmax = float(np.nanpercentile(later.to_numpy(), 98)) if later.notna().any().any() else 1.0
    vmax = max(vmax, 0.05)
    annot = m.map(lambda v: "" if pd.isna(v) else f"{100 * v:.0f}")
    fontsize = 8 if n_cols <= 13 else (7 if n_cols <= 20 else 6)
    sns.heatmap(m, ax=ax, cmap=HEATMAP_CMAP, vmin=0, vmax=vmax, mask=m.isna(), annot=annot.to_numpy(), fmt="",
                annot_kws={"fontsize": fontsize}, linewidths=0.6, linecolor="white", cbar=True,
                cbar_kws={"format": PercentFormatter(1.0, decimals=0), "shrink": 0.8, "pad": 0.015,
                          "label": heading})
    if partial is not None and partial.to_numpy().any():
        p = partial.reindex(index=m.index, columns=m.columns).fillna(False).astype(bool).to_numpy()
        for i, j in zip(*np.nonzero(p), strict=False):
            ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="#52606D", lw=0))
    small = _small_mask(m.index, size, min_size)
    weights = _sizes(m.index, size)
    ax.set_yticks(np.arange(n_rows) + 0.5, _cohort_ticks(m.index, grain, small, size), rotation=0)
    for tick, is_small in zip(ax.get_yticklabels(), small.to_numpy(), strict=False):
        if is_small:
            tick.set_color("#9AA5B1")
            tick.set_fontstyle("italic")
    ax.set_xticks(np.arange(n_cols) + 0.5, [str(c) for c in m.columns], rotation=0)
    hatched = partial is not None and bool(partial.to_numpy().any())
    week = grain == "week"
    xlabel = (_("Weeks since first purchase (0 = the first week)") if week
              else _("Months since first purchase (0 = the first month)"))
    if hatched:
        xlabel += "; " + (_("hatched = partial week") if week else _("hatched = partial month"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_("Cohort (first purchase week)") if week else _("Cohort (first purchase month)"))
    ax.tick_params(length=0)
    ax.grid(False)
    big = m[~small.to_numpy()]
    # only cohorts of sufficient size are quoted: average weighted by size, as the findings'
    lim = 0 if size is None else min_size

    def average(col: Any) -> float | None:
        return headline_average(big.iloc[:, col].to_numpy(), weights[big.index].to_numpy(), lim)

    if n_cols > 1 and big.iloc[:, 1].notna().any():
        col1 = big.iloc[:, 1].dropna()
        if kind == "retention":
            # the weakest cohort is named only when below the average beyond noise, as in the findings
            weak = weakest_group(col1.to_numpy(), weights[col1.index].to_numpy(), lim) if size is not None else None
            worst = col1.index[weak[0]] if weak is not None else col1.idxmin()
            words = {"average": fmt_pct(average(1), 0), "cohort": _bucket_label(worst, grain),
                     "weakest": fmt_pct(col1[worst], 0)}
            if size is not None and weak is None:
                title = (_("On average %(average)s of a cohort buys again in the week after its first") if week else
                         _("On average %(average)s of a cohort buys again in the month after its first")) % words
            else:
                title = (_("On average %(average)s of a cohort buys again in the week after its first; weakest: "
                           "%(cohort)s (%(weakest)s)") if week else
                         _("On average %(average)s of a cohort buys again in the month after its first; weakest: "
                           "%(cohort)s (%(weakest)s)")) % words
        else:
            last_age = max(k for k in range(n_cols) if big.iloc[:, k].notna().sum() >= 1)
            age = int(m.columns[last_age])
            words = {"first": fmt_pct(average(1), 0), "age": age, "last": fmt_pct(average(last_age), 0)}
            if week:
                title = ngettext("A cohort's revenue week 1 after its first is %(first)s of its first-week revenue; "
                                 "%(age)s week after, %(last)s",
                                 "A cohort's revenue week 1 after its first is %(first)s of its first-week revenue; "
                                 "%(age)s weeks after, %(last)s", age) % words
            else:
                title = ngettext("A cohort's revenue month 1 after its first is %(first)s of its first-month "
                                 "revenue; %(age)s month after, %(last)s",
                                 "A cohort's revenue month 1 after its first is %(first)s of its first-month "
                                 "revenue; %(age)s months after, %(last)s", age) % words
    elif n_cols > 1 and m.iloc[:, 1].notna().any():
        # TRANSLATORS: %(chart)s is "Customer retention" or "Revenue retention"; %(count)s the minimum size
        title = _("%(chart)s: every cohort has fewer than %(count)s customers, too few to quote") % {
            "chart": short, "count": fmt_count(min_size)}
    else:
        # TRANSLATORS: %(chart)s is "Customer retention" or "Revenue retention"
        title = (_("%(chart)s: too early to see a second week") if week
                 else _("%(chart)s: too early to see a second month")) % {"chart": short}
    ax.set_title(title)
    return ax


def cumulative_revenue_curves(matrix: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None,
                              grain: str = "month", size: pd.Series | None = None,
                              min_size: int = MIN_GROUP_SIZE) -> Axes:
    """Cumulative gross revenue per customer by cohort age (the empirical LTV curve) for each cohort,
    with the average over the cohorts observed at each age in bold: weighted by ``size``, over the
    cohorts of at least ``min_size`` customers (SPEC §4.4; small cohorts are drawn dashed)."""
    ax = axes_or_new(ax)
    title = _("Cumulative revenue per customer")
    if matrix is None or matrix.empty or matrix.isna().all().all():
        return empty_chart(ax, title, _("No cohorts to show for this period"))
    m = matrix.astype(float)
    ages = np.array([int(c) for c in m.columns])
    colors = sns_blues(len(m))
    small = _small_mask(m.index, size, min_size)
    weights = _sizes(m.index, size)
    for color, (cohort, row) in zip(colors, m.iterrows(), strict=False):
        ax.plot(ages, row.to_numpy(), color=color, lw=1.1, alpha=0.9, ls="--" if small.loc[cohort] else "-")
    big = m[~small.to_numpy()]
    lim = 0 if size is None else min_size
    mean = pd.Series([headline_average(big[c].to_numpy(), weights[big.index].to_numpy(), lim) for c in m.columns],
                     index=m.columns, dtype="float64")
    count = big.notna().sum(axis=0)
    ok = (count >= max(1, min(3, len(big)))) & mean.notna()
    ax.plot(ages[ok.to_numpy()], mean[ok].to_numpy(), color=PALETTE["new"], lw=2.6,
            label=_("Average of the cohorts observed") if size is None else
            _("Average of the cohorts of %(count)s+ customers, weighted by size") % {"count": fmt_count(min_size)})
    first, last = m.index[0], m.index[-1]
    ax.plot([], [], color=colors[0], lw=1.1, label=_("Each cohort, %(first)s (light) to %(last)s (dark)")
            % {"first": _bucket_label(first, grain), "last": _bucket_label(last, grain)})
    if small.any():
        ax.plot([], [], color=colors[0], lw=1.1, ls="--",
                label=_("Dashed: fewer than %(count)s customers (not averaged)") % {"count": fmt_count(min_size)})
    ax.yaxis.set_major_formatter(compact_money(currency) if m.max().max() >= 1000 else
                                 FuncFormatter(lambda v, _p: fmt_money(v, currency, 0)))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    week = grain == "week"
    ax.set_xlabel(_("Weeks since first purchase") if week else _("Months since first purchase"))
    ax.set_ylabel(_("Gross revenue per customer (%(currency)s)") % {"currency": currency})
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    valid = [a for a in ages if ok.iloc[list(ages).index(a)]]
    if valid:
        a_last = max(valid)
        words = {"first": fmt_money(mean.iloc[0], currency),
                 "later": fmt_money(mean.loc[m.columns[list(ages).index(a_last)]], currency), "age": a_last}
        title = (_("A new customer brings %(first)s in the first week and %(later)s by week %(age)s") if week else
                 _("A new customer brings %(first)s in the first month and %(later)s by month %(age)s")) % words
    ax.set_title(title)
    return ax


def sns_blues(n: int) -> list[Any]:
    """``n`` blues from light (oldest) to dark (newest)."""
    cmap = mpl.colormaps["Blues"]
    return [cmap(x) for x in np.linspace(0.35, 0.9, max(n, 1))]


def segment_retention_curves(curves: pd.DataFrame, ax: Axes | None = None, grain: str = "month",
                             min_size: int = MIN_GROUP_SIZE) -> Axes:
    """Retention by age for each value of a segment column (long frame ``segment, age, customers,
    retention``). Values with fewer than ``min_size`` customers (at age 0) are drawn dashed, marked
    in the legend and never named in the title (SPEC §4.4)."""
    ax = axes_or_new(ax)
    title = _("Retention by segment")
    if curves is None or curves.empty:
        return empty_chart(ax, title, _("No cohorts to show for this period"))
    order = (curves[curves.age == 0].sort_values("customers", ascending=False).segment.tolist()
             or sorted(curves.segment.unique().tolist()))
    # the values outside the top (metrics.cohort_segment_top) are one curve: drawn last, never named
    # best or worst
    order = [s for s in order if s != OTHER_SEGMENT] + [s for s in order if s == OTHER_SEGMENT]
    shown = order[:8]
    name = dict(zip(shown, shorten_all(shown), strict=True))  # data values: at most 40 characters
    sizes = curves[curves.age == 0].set_index("segment")["customers"]
    small = {seg for seg in shown if float(sizes.get(seg, 0)) < min_size}
    for color, seg in zip(OKABE_ITO, shown, strict=False):
        c = curves[(curves.segment == seg) & (curves.age >= 1)].sort_values("age")
        # TRANSLATORS: a legend entry of a group too small to compare: "email (12, small)"
        label = (_("%(segment)s (%(count)s, small)") % {"segment": name[seg], "count": fmt_count(sizes.get(seg, 0))}
                 if seg in small else name[seg])
        ax.plot(c.age, c.retention, marker="o", ms=3, lw=1.6, color=color, label=label,
                ls="--" if seg in small else "-")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    week = grain == "week"
    ax.set_xlabel(_("Weeks since first purchase") if week else _("Months since first purchase"))
    ax.set_ylabel(_("Cohort customers buying that week") if week else _("Cohort customers buying that month"))
    later = curves.loc[curves.age >= 1, "retention"]
    ax.set_ylim(0, min(1.0, float(later.max()) * 1.25) if later.notna().any() else 1.0)
    ax.legend(loc="upper right", ncols=2 if len(shown) > 4 else 1)
    probe = curves[(curves.age >= 1) & curves.segment.isin([seg for seg in shown if seg not in small])
                   & (curves.segment != OTHER_SEGMENT)]
    if not probe.empty:
        age = 3 if (probe.age == 3).any() else int(probe.age.max())
        at = probe[probe.age == age].set_index("segment").retention.dropna()
        if len(at) >= 2:
            best, worst = at.idxmax(), at.idxmin()
            # TRANSLATORS: %(best)s and %(worst)s are values from the data (a channel: "email")
            words = {"best": cap_first(name[best]), "share": fmt_pct(at[best], 0), "age": age,
                     "other": fmt_pct(at[worst], 0), "worst": name[worst]}
            title = (ngettext("%(best)s customers are retained best: %(share)s buy %(age)s week after their first "
                              "purchase (vs %(other)s for %(worst)s)",
                              "%(best)s customers are retained best: %(share)s buy %(age)s weeks after their first "
                              "purchase (vs %(other)s for %(worst)s)", age) if week else
                     ngettext("%(best)s customers are retained best: %(share)s buy %(age)s month after their first "
                              "purchase (vs %(other)s for %(worst)s)",
                              "%(best)s customers are retained best: %(share)s buy %(age)s months after their first "
                              "purchase (vs %(other)s for %(worst)s)", age)) % words
        elif len(at) == 1:
            words = {"share": fmt_pct(at.iloc[0], 0), "segment": name[at.index[0]], "age": age}
            title = (ngettext("%(share)s of %(segment)s customers buy %(age)s week after their first purchase",
                              "%(share)s of %(segment)s customers buy %(age)s weeks after their first purchase",
                              age) if week else
                     ngettext("%(share)s of %(segment)s customers buy %(age)s month after their first purchase",
                              "%(share)s of %(segment)s customers buy %(age)s months after their first purchase",
                              age)) % words
    if len(order) > len(shown):
        hidden = len(order) - len(shown)
        ax.text(1.0, -0.2, ngettext("%(count)s smaller segment not shown", "%(count)s smaller segments not shown",
                                    hidden) % {"count": hidden}, transform=ax.transAxes,
                ha="right", fontsize=8, color="#52606D")
    # two long (shortened) names can still make the title wider than the chart: wrap it
    ax.set_title(textwrap.fill(title, 110))
    return ax


# ------------------------------------------------------------------------------------------ behaviour

def second_purchase_histogram(distribution: pd.DataFrame, median_days: float | None = None,
                              ax: Axes | None = None, max_days: int = 365) -> Axes:
    """Days from first to second purchase (frame ``days, customers``), weekly bins up to ``max_days``;
    later second purchases are summarised in a note, the median is marked."""
    ax = axes_or_new(ax)
    title = _("Time to second purchase")
    if distribution is None or distribution.empty or not distribution["customers"].sum():
        return empty_chart(ax, title, _("No customer has a second purchase yet"))
    d = distribution
    total = float(d["customers"].sum())
    inside = d[d["days"] <= max_days]
    bins = np.arange(0, max_days + 7, 7)
    ax.hist(inside["days"], bins=bins, weights=inside["customers"] / total, color=PALETTE["returning"],
            edgecolor="white", linewidth=0.4)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_xlim(0, max_days)
    ax.set_xlabel(_("Days from first to second purchase (weekly bins)"))
    ax.set_ylabel(_("Share of repeat customers"))
    ax.grid(axis="x", visible=False)
    beyond = 1.0 - float(inside["customers"].sum()) / total
    if beyond > 0:
        ax.text(0.99, 0.95, _("%(share)s return after more than %(days)s days (not shown)")
                % {"share": fmt_pct(beyond, 0), "days": max_days},
                transform=ax.transAxes, ha="right", va="top", fontsize=8.5, color="#52606D")
    within = float(d.loc[d["days"] <= 30, "customers"].sum()) / total
    if is_finite(median_days):
        ax.axvline(float(median_days), color=PALETTE["new"], lw=2)
        days = round(float(median_days))
        ax.text(float(median_days) + 4, ax.get_ylim()[1] * 0.82,
                ngettext("median %(days)s day", "median %(days)s days", days) % {"days": fmt_count(days)},
                color=PALETTE["new"], fontsize=9, fontweight="bold")
        title = ngettext("Half of repeat customers buy again within %(days)s day; %(share)s within 30",
                         "Half of repeat customers buy again within %(days)s days; %(share)s within 30",
                         days) % {"days": fmt_count(days), "share": fmt_pct(within, 0)}
    ax.set_title(title)
    return ax
