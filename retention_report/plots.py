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
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from .formatting import _symbol, fmt_count, fmt_money, fmt_pct, movement_phrase, shorten_all
from .metrics.segments import SEGMENT_LABELS

__all__ = [
    "PALETTE",
    "alt_text",
    "cohort_heatmap",
    "cumulative_revenue_curves",
    "customer_bridge_waterfall",
    "new_vs_returning_bars",
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
    "good": "#009E73",       # bluish green
    "bad": "#D55E00",        # vermillion
    "total": "#5F6B7A",      # slate
    "muted": "#B8C2CC",
    "text": "#1F2933",
}
HEATMAP_CMAP = "YlGnBu"  # sequential, colour-blind safe, prints well in grey
FIGSIZE = (8.6, 3.9)


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
                parts.append("Chart of " + " by ".join(t for t in (y, x) if t))
                break
    return " — ".join(" ".join(p.split()) for p in dict.fromkeys(parts))


def _axes(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _empty(ax: Axes, title: str, message: str = "No data for this period") -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#7B8794",
            fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax


def _compact_money(currency: str) -> FuncFormatter:
    sym = _symbol(currency)

    def fmt(v: float, _pos: Any = None) -> str:
        a = abs(v)
        if a >= 1e9:
            s = f"{v / 1e9:.1f}B"
        elif a >= 1e6:
            s = f"{v / 1e6:.1f}M"
        elif a >= 1e3:
            s = f"{v / 1e3:.0f}k"
        else:
            s = f"{v:.0f}"
        s = s.replace(".0B", "B").replace(".0M", "M")
        return f"{sym}{s}" if len(sym) == 1 else f"{s} {sym}"

    return FuncFormatter(fmt)


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _pct_change(now: float, before: float) -> float | None:
    if not _finite(now) or not _finite(before) or before == 0:
        return None
    return now / before - 1.0


def _cap(text: Any) -> str:
    text = str(text)
    return text[:1].upper() + text[1:]


def _bucket_label(value: Any, grain: str) -> str:
    ts = pd.Timestamp(value)
    if grain == "week":
        iso = ts.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return ts.strftime("%b %Y")


# ----------------------------------------------------------------------------------- new vs returning

def new_vs_returning_bars(nvr: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None) -> Axes:
    """100 %-stacked bars: the share of new vs returning in revenue, purchases and customers.

    ``nvr`` is :func:`retention_report.metrics.new_vs_returning` (index ``new``, ``returning``,
    ``total``; columns ``revenue``, ``purchases``, ``customers`` …).
    """
    ax = _axes(ax, (8.6, 2.9))
    title = "New vs returning customers"
    if nvr is None or nvr.empty or "new" not in nvr.index or not nvr.loc[["new", "returning"], "revenue"].sum():
        return _empty(ax, title)
    measures = [("revenue", "Revenue"), ("purchases", "Purchases"), ("customers", "Customers")]
    rows = []
    for col, label in measures:
        new, ret = float(nvr.loc["new", col]), float(nvr.loc["returning", col])
        total = new + ret
        rows.append((label, new / total if total else 0.0, ret / total if total else 0.0, new, ret, col))
    y = np.arange(len(rows))[::-1]
    new_share = np.array([r[1] for r in rows])
    ret_share = np.array([r[2] for r in rows])
    ax.barh(y, ret_share, color=PALETTE["returning"], label="Returning", height=0.62)
    ax.barh(y, new_share, left=ret_share, color=PALETTE["new"], label="New", height=0.62)
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
    ax.set_xlabel("Share of the period's total")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False, fontsize=9,
              borderaxespad=0.2)
    rev_share = rows[0][2]
    cust_share = rows[2][2]
    ax.set_title(f"Returning customers bring {fmt_pct(rev_share, 0)} of revenue "
                 f"while making up {fmt_pct(cust_share, 0)} of buyers", pad=24)
    return ax


def revenue_trend(trend: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None) -> Axes:
    """Stacked bars of gross revenue from new and returning purchases for the trailing periods.

    ``trend`` is :func:`retention_report.metrics.kpi_trend` (one row per period, oldest first, with
    ``period``, ``revenue_new``, ``revenue_returning`` and ``new_revenue_share``).
    """
    ax = _axes(ax)
    title = "Revenue trend"
    if trend is None or trend.empty:
        return _empty(ax, title)
    t = trend.reset_index(drop=True)
    x = np.arange(len(t))
    new = t["revenue_new"].astype(float).fillna(0).to_numpy()
    ret = t["revenue_returning"].astype(float).fillna(0).to_numpy()
    ax.bar(x, ret, color=PALETTE["returning"], label="Returning", width=0.66)
    ax.bar(x, new, bottom=ret, color=PALETTE["new"], label="New", width=0.66)
    gross = new + ret
    for xi, g in zip(x, gross, strict=False):
        if g > 0:
            ax.text(xi, g, _compact_money(currency)(g), ha="center", va="bottom", fontsize=8.5,
                    color=PALETTE["text"])
    ax.set_xticks(x, t["period"].astype(str).tolist())
    if len(t) > 10:
        ax.tick_params(axis="x", labelrotation=45)
    ax.yaxis.set_major_formatter(_compact_money(currency))
    ax.set_ylabel(f"Gross revenue ({currency})")
    ax.set_ylim(0, max(gross.max(), 1) * 1.14)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper left", ncols=2)
    last = t.iloc[-1]
    title = f"Revenue in {last['period']}: {fmt_money(gross[-1], currency)}"
    if len(t) >= 2 and (move := movement_phrase(gross[-1], gross[-2], t.iloc[-2]["period"], decimals=0)):
        title += f", {move}"
    if len(t) >= 5 and (move := movement_phrase(gross[-1], gross[-5], t.iloc[-5]["period"], decimals=0)):
        title += f" and {move}"
    ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------------------- segments

def segment_mix(table: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None) -> Axes:
    """Share of customers vs share of revenue per frequency segment, with each segment's AOV.

    ``table`` is ``FrequencySegments.table`` (index = segment; ``customer_share``, ``revenue_share``,
    ``aov``). The gap between the two bars answers "big-but-rare or small-but-frequent?".
    """
    ax = _axes(ax, (8.6, 3.7))
    title = "Customers and revenue by segment"
    if table is None or table.empty or not table["revenue_share"].fillna(0).any():
        return _empty(ax, title)
    t = table.copy()
    names = [SEGMENT_LABELS.get(str(s), str(s)) for s in t.index]
    y = np.arange(len(t))[::-1]
    h = 0.38
    ax.barh(y + h / 2, t["customer_share"].fillna(0), height=h, color=PALETTE["muted"], label="Share of customers")
    ax.barh(y - h / 2, t["revenue_share"].fillna(0), height=h, color=PALETTE["returning"], label="Share of revenue")
    top = float(max(t["customer_share"].max(), t["revenue_share"].max()))
    for yi, (_, r) in zip(y, t.iterrows(), strict=False):
        ax.text(r["customer_share"] + top * 0.01, yi + h / 2, fmt_pct(r["customer_share"], 0), va="center", fontsize=8.5)
        ax.text(r["revenue_share"] + top * 0.01, yi - h / 2, fmt_pct(r["revenue_share"], 0), va="center", fontsize=8.5,
                color=PALETTE["returning"])
        aov = r.get("aov")
        ax.text(1.0, yi, f"AOV per purchase {fmt_money(aov, currency)}" if _finite(aov) else "no purchases",
                transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=8.5, color="#52606D")
    ax.set_yticks(y, names)
    ax.set_xlim(0, top * 1.45)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("Share of all customers in the base / of the period's gross revenue")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.2)
    ratio = (t["revenue_share"] / t["customer_share"]).replace([np.inf, -np.inf], np.nan)
    regular = ratio.reindex([s for s in ("frequent", "medium", "rare") if s in ratio.index]).dropna()
    if not regular.empty:
        best = regular.idxmax()
        title = (f"{SEGMENT_LABELS.get(best, best).split(' (')[0]} customers: "
                 f"{fmt_pct(t.loc[best, 'customer_share'], 0)} of customers, "
                 f"{fmt_pct(t.loc[best, 'revenue_share'], 0)} of revenue")
    ax.set_title(title, pad=22)
    return ax


# ------------------------------------------------------------------------------------- customer base

def customer_bridge_waterfall(bridge: Any, ax: Axes | None = None) -> Axes:
    """Waterfall of the active customer base: start → −churned → +new → −new lapsed → +reactivated → end.

    ``bridge`` is a :class:`retention_report.metrics.CustomerBridge` (or a mapping with ``start``,
    ``churned``, ``new``, ``new_lapsed``, ``reactivated``, ``end``). The bars add up exactly
    (CS − CL + CN − NL + RE = CE).
    """
    ax = _axes(ax)
    get = (lambda k: int(bridge[k])) if isinstance(bridge, dict) else (lambda k: int(getattr(bridge, k)))
    cs, cl, cn, nl, re_, ce = (get(k) for k in ("start", "churned", "new", "new_lapsed", "reactivated", "end"))
    title = "Active customer base"
    if cs == 0 and ce == 0 and cn == 0:
        return _empty(ax, title, "No active customers in this period")
    steps: list[tuple[str, int, str]] = [("Active at start", cs, "total"), ("Churned", -cl, "bad"),
                                         ("New", cn, "good")]
    if nl:
        steps.append(("New, lapsed", -nl, "bad"))
    steps += [("Reactivated", re_, "good"), ("Active at end", ce, "total")]
    level = 0
    labels = []
    for i, (label, value, kind) in enumerate(steps):
        if kind == "total":
            bottom, height = 0, value
            level = value
            text = fmt_count(value)
        else:
            bottom = level if value >= 0 else level + value
            height = abs(value)
            level += value
            text = ("+" if value >= 0 else "−") + fmt_count(abs(value))
        ax.bar(i, height, bottom=bottom, color=PALETTE[kind], width=0.62)
        ax.text(i, bottom + height, text, ha="center", va="bottom", fontsize=9, color=PALETTE["text"])
        if i < len(steps) - 1:
            ax.plot([i + 0.31, i + 0.69], [level, level], color="#9AA5B1", lw=0.8, ls=":")
        labels.append(label)
    ax.set_xticks(range(len(steps)), labels)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_count(v)))
    ax.set_ylabel("Active customers")
    ax.set_ylim(0, max(cs, ce, level, 1) * 1.15)
    ax.grid(axis="x", visible=False)
    ch = _pct_change(ce, cs)
    if ch is None:
        ax.set_title(f"{fmt_count(ce)} active customers at the end of the period")
    else:
        verb = "grew" if ch > 0 else ("shrank" if ch < 0 else "held steady")
        ax.set_title(f"The active customer base {verb} {fmt_pct(abs(ch), 1) + ' ' if ch else ''}"
                     f"to {fmt_count(ce)}: {fmt_count(cn + re_)} won, {fmt_count(cl + nl)} lost")
    return ax


# ------------------------------------------------------------------------------------------- cohorts

_HEATMAP_TEXT = {
    "retention": ("Share of each cohort buying again", "Customer retention"),
    "revenue_retention": ("Cohort revenue relative to its first {grain}", "Revenue retention"),
}


def cohort_heatmap(
    matrix: pd.DataFrame,
    partial: pd.DataFrame | None = None,
    kind: str = "retention",
    grain: str = "month",
    ax: Axes | None = None,
) -> Axes:
    """Cohort × age heatmap in percent; unobservable cells blank, the partial bucket hatched.

    ``matrix`` is a ``CohortMatrices`` frame (index = cohort start date, columns = age 0, 1, …, values
    fractions, NaN = not observable); ``partial`` a boolean frame of the same shape.
    """
    import seaborn as sns

    n_rows = 0 if matrix is None else len(matrix)
    n_cols = 0 if matrix is None else matrix.shape[1]
    ax = _axes(ax, (8.6, max(3.2, 0.34 * n_rows + 1.4)))
    heading, short = _HEATMAP_TEXT.get(kind, (kind, kind))
    heading = heading.format(grain=grain)
    if matrix is None or matrix.empty or matrix.isna().all().all():
        return _empty(ax, short, "No cohorts to show for this period")
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
    ax.set_yticks(np.arange(n_rows) + 0.5, [_bucket_label(c, grain) for c in m.index], rotation=0)
    ax.set_xticks(np.arange(n_cols) + 0.5, [str(c) for c in m.columns], rotation=0)
    hatched = partial is not None and bool(partial.to_numpy().any())
    ax.set_xlabel(f"{grain.capitalize()}s since first purchase (0 = the first {grain})"
                  + (f"; hatched = partial {grain}" if hatched else ""))
    ax.set_ylabel(f"Cohort (first purchase {grain})")
    ax.tick_params(length=0)
    ax.grid(False)
    if n_cols > 1 and m.iloc[:, 1].notna().any():
        col1 = m.iloc[:, 1].dropna()
        if kind == "retention":
            worst = col1.idxmin()
            title = (f"On average {fmt_pct(col1.mean(), 0)} of a cohort buys again in the {grain} after "
                     f"its first; weakest: {_bucket_label(worst, grain)} ({fmt_pct(col1.min(), 0)})")
        else:
            last_age = max(k for k in range(n_cols) if m.iloc[:, k].notna().sum() >= 1)
            title = (f"A cohort's revenue {grain} 1 after its first is {fmt_pct(col1.mean(), 0)} of its "
                     f"first-{grain} revenue; {m.columns[last_age]} {grain}s after, "
                     f"{fmt_pct(m.iloc[:, last_age].dropna().mean(), 0)}")
    else:
        title = f"{short}: too early to see a second {grain}"
    ax.set_title(title)
    return ax


def cumulative_revenue_curves(matrix: pd.DataFrame, currency: str = "EUR", ax: Axes | None = None,
                              grain: str = "month") -> Axes:
    """Cumulative gross revenue per customer by cohort age (the empirical LTV curve) for each cohort,
    with the average over the cohorts observed at each age in bold."""
    ax = _axes(ax)
    title = "Cumulative revenue per customer"
    if matrix is None or matrix.empty or matrix.isna().all().all():
        return _empty(ax, title, "No cohorts to show for this period")
    m = matrix.astype(float)
    ages = np.array([int(c) for c in m.columns])
    colors = sns_blues(len(m))
    for color, (_cohort, row) in zip(colors, m.iterrows(), strict=False):
        ax.plot(ages, row.to_numpy(), color=color, lw=1.1, alpha=0.9)
    mean = m.mean(axis=0, skipna=True)
    count = m.notna().sum(axis=0)
    ok = count >= min(3, len(m))
    ax.plot(ages[ok.to_numpy()], mean[ok].to_numpy(), color=PALETTE["new"], lw=2.6,
            label="Average of the cohorts observed")
    first, last = m.index[0], m.index[-1]
    ax.plot([], [], color=colors[0], lw=1.1, label=f"Each cohort, {_bucket_label(first, grain)} (light) "
            f"to {_bucket_label(last, grain)} (dark)")
    ax.yaxis.set_major_formatter(_compact_money(currency) if m.max().max() >= 1000 else
                                 FuncFormatter(lambda v, _p: fmt_money(v, currency, 0)))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"{grain.capitalize()}s since first purchase")
    ax.set_ylabel(f"Gross revenue per customer ({currency})")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    valid = [a for a in ages if ok.iloc[list(ages).index(a)]]
    if valid:
        a_last = max(valid)
        title = (f"A new customer brings {fmt_money(mean.iloc[0], currency)} in the first {grain} "
                 f"and {fmt_money(mean.loc[m.columns[list(ages).index(a_last)]], currency)} "
                 f"by {grain} {a_last}")
    ax.set_title(title)
    return ax


def sns_blues(n: int) -> list[Any]:
    """``n`` blues from light (oldest) to dark (newest)."""
    cmap = mpl.colormaps["Blues"]
    return [cmap(x) for x in np.linspace(0.35, 0.9, max(n, 1))]


def segment_retention_curves(curves: pd.DataFrame, ax: Axes | None = None, grain: str = "month") -> Axes:
    """Retention by age for each value of a segment column (long frame ``segment, age, retention``)."""
    ax = _axes(ax)
    title = "Retention by segment"
    if curves is None or curves.empty:
        return _empty(ax, title, "No cohorts to show for this period")
    order = (curves[curves.age == 0].sort_values("customers", ascending=False).segment.tolist()
             or sorted(curves.segment.unique().tolist()))
    shown = order[:8]
    name = dict(zip(shown, shorten_all(shown), strict=True))  # data values: at most 40 characters
    for color, seg in zip(OKABE_ITO, shown, strict=False):
        c = curves[(curves.segment == seg) & (curves.age >= 1)].sort_values("age")
        ax.plot(c.age, c.retention, marker="o", ms=3, lw=1.6, color=color, label=name[seg])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"{grain.capitalize()}s since first purchase")
    ax.set_ylabel(f"Cohort customers buying that {grain}")
    later = curves.loc[curves.age >= 1, "retention"]
    ax.set_ylim(0, min(1.0, float(later.max()) * 1.25) if later.notna().any() else 1.0)
    ax.legend(loc="upper right", ncols=2 if len(shown) > 4 else 1)
    probe = curves[(curves.age >= 1) & curves.segment.isin(shown)]
    if not probe.empty:
        age = 3 if (probe.age == 3).any() else int(probe.age.max())
        at = probe[probe.age == age].set_index("segment").retention.dropna()
        if len(at) >= 2:
            best, worst = at.idxmax(), at.idxmin()
            title = (f"{_cap(name[best])} customers are retained best: {fmt_pct(at[best], 0)} buy "
                     f"{age} {grain}{'s' if age != 1 else ''} after their first purchase "
                     f"(vs {fmt_pct(at[worst], 0)} for {name[worst]})")
        elif len(at) == 1:
            title = (f"{fmt_pct(at.iloc[0], 0)} of {name[at.index[0]]} customers buy {age} "
                     f"{grain}{'s' if age != 1 else ''} after their first purchase")
    if len(order) > len(shown):
        ax.text(1.0, -0.2, f"{len(order) - len(shown)} smaller segments not shown", transform=ax.transAxes,
                ha="right", fontsize=8, color="#52606D")
    # two long (shortened) names can still make the title wider than the chart: wrap it
    ax.set_title(textwrap.fill(title, 110))
    return ax


# ------------------------------------------------------------------------------------------ behaviour

def second_purchase_histogram(distribution: pd.DataFrame, median_days: float | None = None,
                              ax: Axes | None = None, max_days: int = 365) -> Axes:
    """Days from first to second purchase (frame ``days, customers``), weekly bins up to ``max_days``;
    later second purchases are summarised in a note, the median is marked."""
    ax = _axes(ax)
    title = "Time to second purchase"
    if distribution is None or distribution.empty or not distribution["customers"].sum():
        return _empty(ax, title, "No customer has a second purchase yet")
    d = distribution
    total = float(d["customers"].sum())
    inside = d[d["days"] <= max_days]
    bins = np.arange(0, max_days + 7, 7)
    ax.hist(inside["days"], bins=bins, weights=inside["customers"] / total, color=PALETTE["returning"],
            edgecolor="white", linewidth=0.4)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_xlim(0, max_days)
    ax.set_xlabel("Days from first to second purchase (weekly bins)")
    ax.set_ylabel("Share of repeat customers")
    ax.grid(axis="x", visible=False)
    beyond = 1.0 - float(inside["customers"].sum()) / total
    if beyond > 0:
        ax.text(0.99, 0.95, f"{fmt_pct(beyond, 0)} return after more than {max_days} days (not shown)",
                transform=ax.transAxes, ha="right", va="top", fontsize=8.5, color="#52606D")
    within = float(d.loc[d["days"] <= 30, "customers"].sum()) / total
    if _finite(median_days):
        ax.axvline(float(median_days), color=PALETTE["new"], lw=2)
        ax.text(float(median_days) + 4, ax.get_ylim()[1] * 0.82, f"median {float(median_days):.0f} days",
                color=PALETTE["new"], fontsize=9, fontweight="bold")
        title = (f"Half of repeat customers buy again within {float(median_days):.0f} days; "
                 f"{fmt_pct(within, 0)} within 30")
    ax.set_title(title)
    return ax
