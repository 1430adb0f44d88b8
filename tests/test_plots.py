"""Charts are tested on their Axes: bar heights, labels and the finding stated in the title."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from retention_report import plots
from retention_report.metrics.flow import CustomerBridge


@pytest.fixture(autouse=True)
def _theme():
    plots.set_theme()
    yield
    plt.close("all")


def title(ax):
    """The theme puts titles on the left."""
    return ax.get_title(loc="left")


def bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_height() > 0]


def test_theme_is_colour_blind_safe_and_shows_dollar_signs_verbatim():
    assert matplotlib.rcParams["text.parse_math"] is False
    cycle = [matplotlib.colors.to_hex(c).upper() for c in matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]]
    assert cycle[:3] == ["#0072B2", "#E69F00", "#009E73"]
    _, ax = plt.subplots()
    t = ax.set_title("$$$ channel <script>")
    ax.figure.canvas.draw()
    assert t.get_text() == "$$$ channel <script>"


def nvr_frame(new_rev=250.0, ret_rev=750.0, new_c=10, ret_c=30):
    return pd.DataFrame(
        {"revenue": [new_rev, ret_rev, new_rev + ret_rev], "purchases": [10, 40, 50],
         "customers": [new_c, ret_c, new_c + ret_c]},
        index=pd.Index(["new", "returning", "total"], name="group"),
    )


def test_new_vs_returning_bars_are_shares_and_title_states_the_split():
    ax = plots.new_vs_returning_bars(nvr_frame(), currency="EUR")
    widths = sorted(round(p.get_width(), 4) for p in bars(ax))
    # revenue 25/75, purchases 20/80, customers 25/75
    assert widths == [0.2, 0.25, 0.25, 0.75, 0.75, 0.8]
    assert title(ax) == "Returning customers bring 75% of revenue while making up 75% of buyers"
    top_down = sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])
    assert [t.get_text() for t in top_down] == ["Revenue", "Purchases", "Customers"]
    assert ax.get_xlabel() == "Share of the period's total"


def test_revenue_trend_starts_at_the_data():
    """Issue 22: quarters before the data's first payment were drawn as empty bars that read as zero
    revenue. The trend (metrics.kpi_trend says each period's coverage) starts at the data."""
    from helpers import make_dataset

    from retention_report.metrics import kpi_trend
    from retention_report.periods import parse_period

    ds = make_dataset([("a", "2023-08-10 10:00", 100.0), ("b", "2023-11-05 10:00", 50.0),
                       ("a", "2024-02-01 10:00", 70.0)])
    trend = kpi_trend(ds, parse_period("2024-Q1"), 8)
    assert trend["period"].tolist()[0] == "2022-Q2"
    assert trend["coverage"].tolist() == ["none"] * 5 + ["partial", "full", "partial"]
    ax = plots.revenue_trend(trend, currency="EUR")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2023-Q3", "2023-Q4", "2024-Q1"]
    assert [len(c) for c in ax.containers] == [3, 3]  # returning and new, three periods
    # no comparison with a year ago the data do not reach
    assert title(ax) == "Revenue in Q1 2024: €70.00, up 40% on Q4 2023"


def test_new_vs_returning_bars_empty_period():
    ax = plots.new_vs_returning_bars(nvr_frame(0.0, 0.0, 0, 0))
    assert "No data" in " ".join(t.get_text() for t in ax.texts)


def test_revenue_trend_stacks_new_on_returning_and_compares_in_title():
    trend = pd.DataFrame({
        "period": ["2023-Q1", "2023-Q2", "2023-Q3", "2023-Q4", "2024-Q1"],
        "revenue_new": [100.0, 100.0, 100.0, 200.0, 150.0],
        "revenue_returning": [300.0, 300.0, 300.0, 600.0, 450.0],
    })
    ax = plots.revenue_trend(trend, currency="EUR")
    tops = sorted({round(p.get_y() + p.get_height(), 2) for p in bars(ax)})
    assert tops == [300.0, 400.0, 450.0, 600.0, 800.0]
    # 600 vs 800 on the previous quarter (−25%), vs 400 a year ago (+50%)
    assert title(ax) == "Revenue in Q1 2024: €600.00, down 25% on Q4 2023 and up 50% on Q1 2023"
    assert ax.get_ylabel() == "Gross revenue (EUR)"


def test_revenue_trend_title_claims_only_real_changes():
    trend = pd.DataFrame({
        "period": ["2023-Q1", "2023-Q2", "2023-Q3", "2023-Q4", "2024-Q1"],
        "revenue_new": [100.0, 100.0, 100.0, 200.0, 150.0],
        "revenue_returning": [300.0, 300.0, 300.0, 600.0, 450.0],
    })
    doc = {"kpis": {"gross_revenue": 600.0}, "previous": {"gross_revenue": 800.0}, "year_ago": {"gross_revenue": 400.0},
           "previous_period": {"period": "2023-Q4", "coverage": "full"},
           "year_ago_period": {"period": "2023-Q1", "coverage": "full"},
           "changes": {"previous": {"gross_revenue": {"delta": -200.0, "low": -450.0, "high": 50.0, "significant": False}},
                       "year_ago": {"gross_revenue": {"delta": 200.0, "low": 50.0, "high": 350.0, "significant": True}}}}
    ax = plots.revenue_trend(trend, currency="EUR", doc=doc)
    assert title(ax) == "Revenue in Q1 2024: €600.00, within noise of Q4 2023 and up 50% on Q1 2023"
    # months: four periods back is no reference period of the document: no verdict, no claim
    months = trend.assign(period=["2023-11", "2023-12", "2024-01", "2024-02", "2024-03"])
    doc = {**doc, "previous_period": {"period": "2024-02", "coverage": "full"},
           "year_ago_period": {"period": "2023-03", "coverage": "full"}}
    ax = plots.revenue_trend(months, currency="EUR", doc=doc)
    assert title(ax) == "Revenue in March 2024: €600.00, within noise of February 2024"


def test_segment_mix_compares_customer_and_revenue_shares():
    table = pd.DataFrame(
        {"customer_share": [0.1, 0.2, 0.3, 0.1, 0.3], "revenue_share": [0.5, 0.2, 0.1, 0.2, 0.0],
         "aov": [20.0, 40.0, 80.0, 30.0, np.nan]},
        index=pd.Index(["frequent", "medium", "rare", "new", "lapsed"], name="segment"),
    )
    ax = plots.segment_mix(table, currency="EUR")
    widths = sorted(round(p.get_width(), 3) for p in bars(ax))
    assert widths == sorted([0.1, 0.2, 0.3, 0.1, 0.3, 0.5, 0.2, 0.1, 0.2])  # the zero bar has no width
    assert title(ax) == "Frequent customers: 10% of customers, 50% of revenue"
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "AOV per purchase €80.00" in texts and "no purchases" in texts


@pytest.mark.parametrize("top", [0.85, 0.3, 1.0])
def test_segment_mix_shares_axis_ends_at_100_percent(top):
    """Issue 22: the room kept for the AOV labels made the share axis run to 120%."""
    table = pd.DataFrame(
        {"customer_share": [0.05, top, 0.95 - top], "revenue_share": [top, 0.1, 0.9 - top],
         "aov": [20.0, 40.0, 80.0]},
        index=pd.Index(["frequent", "rare", "lapsed"], name="segment"),
    )
    ax = plots.segment_mix(table, currency="EUR")
    ax.figure.canvas.draw()
    shown = [t.get_position()[0] for t in ax.get_xticklabels() if t.get_text()]
    lo, hi = ax.get_xlim()
    visible = [x for x in shown if lo <= x <= hi]
    assert visible and max(visible) <= 1.0 + 1e-9, visible
    assert ax.spines["bottom"].get_bounds()[1] <= 1.0 + 1e-9


def test_bridge_waterfall_adds_up_and_names_the_change():
    b = CustomerBridge(start=100, churned=30, new=25, new_lapsed=5, reactivated=10, end=100)
    ax = plots.customer_bridge_waterfall(b)
    spans = [(round(p.get_y()), round(p.get_y() + p.get_height())) for p in bars(ax)]
    # start 0–100, churned 70–100, new 70–95, new lapsed 90–95, reactivated 90–100, end 0–100
    assert spans == [(0, 100), (70, 100), (70, 95), (90, 95), (90, 100), (0, 100)]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["Active at start", "Churned", "New", "New, lapsed", "Reactivated", "Active at end"]
    assert title(ax) == "The active customer base held steady to 100: 35 won, 35 lost"
    b2 = CustomerBridge(start=200, churned=20, new=30, new_lapsed=0, reactivated=0, end=210)
    ax2 = plots.customer_bridge_waterfall(b2)
    assert title(ax2).startswith("The active customer base grew 5.0% to 210")
    assert "New, lapsed" not in [t.get_text() for t in ax2.get_xticklabels()]


def test_revenue_bridge_waterfall_adds_up_and_states_the_change():
    b = {"previous": 440.0, "new": 150.0, "reactivated": 70.0, "expansion": 50.0, "contraction": 120.0,
         "lost": 90.0, "current": 500.0}
    ax = plots.revenue_bridge_waterfall(b, "EUR", period="2024-Q1", previous="2023-Q4")
    spans = [(round(p.get_y()), round(p.get_y() + p.get_height())) for p in bars(ax)]
    # previous 0–440, +new 440–590, +reactivated 590–660, +expansion 660–710, −contraction 590–710,
    # −lost 500–590, current 0–500
    assert spans == [(0, 440), (440, 590), (590, 660), (660, 710), (590, 710), (500, 590), (0, 500)]
    labels = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
    assert labels == ["Q4 2023", "New customers, all purchases", "Reactivated", "Bought more", "Bought less", "Lost", "Q1 2024"]
    assert title(ax) == ("Gross revenue rose 13.6% on Q4 2023: new customers brought €150.00, customers lost took "
                         "€90.00")
    fell = dict(b, new=10.0, current=360.0)
    assert title(plots.revenue_bridge_waterfall(fell, "EUR", "2024-Q1", "2023-Q4")).startswith(
        "Gross revenue fell 18.2% on Q4 2023: customers lost took €90.00")
    first = {k: 0.0 for k in b} | {"new": 25.0, "current": 25.0}
    assert "all from customers who did not buy in" in title(plots.revenue_bridge_waterfall(first, "EUR"))
    assert plots.revenue_bridge_waterfall(None).texts[0].get_text() == "No revenue bridge for this period"
    # a previous period the data cover only partly: no change is stated
    partial = plots.revenue_bridge_waterfall(b, "EUR", "2024-Q1", "2023-Q4", coverage="partial")
    assert title(partial) == "Why gross revenue changed (the data cover Q4 2023 only partly)"
    # with the metrics document: a change of gross revenue that is not real is no rise (SPEC §4.6)
    doc = {"kpis": {"gross_revenue": 500.0}, "previous": {"gross_revenue": 440.0},
           "changes": {"previous": {"gross_revenue": {"delta": 60.0, "low": -5.0, "high": 125.0,
                                                      "significant": False, "real": False}}}}
    noise = plots.revenue_bridge_waterfall(b, "EUR", "2024-Q1", "2023-Q4", doc=doc)
    assert title(noise) == ("Gross revenue €500.00, within noise of Q4 2023: new customers brought €150.00, "
                            "customers lost took €90.00")
    doc["changes"]["previous"]["gross_revenue"].update(low=20.0, significant=True, real=True)
    assert title(plots.revenue_bridge_waterfall(b, "EUR", "2024-Q1", "2023-Q4", doc=doc)).startswith(
        "Gross revenue rose 13.6% on Q4 2023")


def test_cohort_heatmap_percent_labels_blank_missing_and_hatched_partial():
    idx = pd.Index([pd.Timestamp("2024-01-01").date(), pd.Timestamp("2024-02-01").date(),
                    pd.Timestamp("2024-03-01").date()], name="cohort")
    m = pd.DataFrame([[1.0, 0.3, 0.2], [1.0, 0.25, np.nan], [1.0, np.nan, np.nan]], index=idx,
                     columns=pd.Index([0, 1, 2], name="age"))
    partial = pd.DataFrame(False, index=idx, columns=m.columns)
    partial.iloc[2, 0] = True
    ax = plots.cohort_heatmap(m, partial, kind="retention", grain="month")
    annotations = sorted(t.get_text() for t in ax.texts if t.get_text())
    assert annotations == sorted(["100", "30", "20", "100", "25", "100"])  # NaN cells have no label
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_xy() == (0, 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Jan 2024", "Feb 2024", "Mar 2024"]
    assert "28%" in title(ax) and "Feb 2024 (25%)" in title(ax)
    assert "hatched = partial month" in ax.get_xlabel()


def test_cohort_heatmap_week_labels_and_empty():
    idx = pd.Index([pd.Timestamp("2024-01-29").date()], name="cohort")
    m = pd.DataFrame([[1.0]], index=idx, columns=pd.Index([0], name="age"))
    ax = plots.cohort_heatmap(m, None, grain="week")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2024-W05"]
    ax = plots.cohort_heatmap(pd.DataFrame(), None)
    assert "No cohorts" in " ".join(t.get_text() for t in ax.texts)


def test_cumulative_curves_average_line_and_title():
    idx = pd.Index(["2024-01-01", "2024-02-01", "2024-03-01"], name="cohort")
    m = pd.DataFrame([[10.0, 15.0, 18.0], [12.0, 16.0, np.nan], [14.0, np.nan, np.nan]], index=idx,
                     columns=[0, 1, 2])
    ax = plots.cumulative_revenue_curves(m, currency="EUR")
    avg = [ln for ln in ax.get_lines() if ln.get_label() == "Average of the cohorts observed"][0]
    # only ages observed in >= 3 cohorts are averaged: age 0 -> 12
    assert list(avg.get_ydata()) == [12.0]
    assert title(ax) == "A new customer brings €12.00 in the first month and €12.00 by month 0"


def test_segment_retention_curves_name_best_and_worst():
    curves = pd.DataFrame({
        "segment": ["email"] * 4 + ["social"] * 4,
        "age": [0, 1, 2, 3] * 2,
        "customers": [100, 90, 80, 70, 300, 280, 260, 240],
        "retention": [1.0, 0.4, 0.35, 0.3, 1.0, 0.2, 0.15, 0.1],
    })
    ax = plots.segment_retention_curves(curves)
    assert [ln.get_label() for ln in ax.get_lines()] == ["social", "email"]  # biggest first
    assert all(min(ln.get_xdata()) == 1 for ln in ax.get_lines())        # age 0 (always 100%) left out
    assert title(ax) == ("Email customers are retained best: 30% buy 3 months after their first "
                              "purchase (vs 10% for social)")


def test_second_purchase_histogram_weights_and_median():
    dist = pd.DataFrame({"days": [1, 2, 10, 400], "customers": [2, 2, 4, 2]})
    ax = plots.second_purchase_histogram(dist, median_days=6)
    heights = [round(p.get_height(), 3) for p in bars(ax)]
    assert heights == [0.4, 0.4]  # days 1–2 in the first weekly bin, day 10 in the second; 400 > 365
    assert title(ax) == "Half of repeat customers buy again within 6 days; 80% within 30"
    assert "20% return after more than 365 days" in " ".join(t.get_text() for t in ax.texts)
    ax = plots.second_purchase_histogram(pd.DataFrame(columns=["days", "customers"]))
    assert "No customer" in " ".join(t.get_text() for t in ax.texts)


def test_draws_on_a_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    assert plots.new_vs_returning_bars(nvr_frame(), ax=a) is a
    assert plots.customer_bridge_waterfall({"start": 1, "churned": 0, "new": 1, "new_lapsed": 0,
                                            "reactivated": 0, "end": 2}, ax=b) is b


def test_long_segment_values_are_shortened_in_legend_and_title():
    """A 3,000-character channel once made a 43,822-pixel-wide chart: names are cut to 40 characters
    with an ellipsis, and two names that only differ after the cut stay apart."""
    long_a, long_b = "x" * 3000 + "-a", "x" * 3000 + "-b"
    curves = pd.DataFrame({
        "segment": [long_a] * 3 + [long_b] * 3 + ["email"] * 3,
        "age": [0, 1, 2] * 3,
        "customers": [300, 280, 260, 200, 180, 160, 100, 90, 80],
        "retention": [1.0, 0.2, 0.1, 1.0, 0.3, 0.25, 1.0, 0.4, 0.35],
    })
    ax = plots.segment_retention_curves(curves)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 3 and len(set(labels)) == 3
    assert all(len(t) <= 40 for t in labels) and labels[2] == "email"
    assert labels[0].startswith("x" * 20) and "…" in labels[0]
    assert len(title(ax)) < 200 and "x" * 41 not in title(ax)
    fig = ax.figure
    fig.canvas.draw()
    width = fig.get_tightbbox(fig.canvas.get_renderer()).width  # inches
    assert width < 12


def test_the_other_segments_curve_is_drawn_last_and_never_named_best_or_worst():
    """The values outside metrics.cohort_segment_top are one "(other)" curve (issue 21 item 8): often
    the biggest, it is still drawn last, and best/worst name real segment values only."""
    curves = pd.DataFrame({
        "segment": ["(other)"] * 4 + ["email"] * 4 + ["social"] * 4,
        "age": [0, 1, 2, 3] * 3,
        "customers": [900, 800, 700, 600, 100, 90, 80, 70, 300, 280, 260, 240],
        "retention": [1.0, 0.6, 0.55, 0.5, 1.0, 0.4, 0.35, 0.3, 1.0, 0.2, 0.15, 0.1],
    })
    ax = plots.segment_retention_curves(curves)
    assert [ln.get_label() for ln in ax.get_lines()] == ["social", "email", "(other)"]
    assert title(ax) == ("Email customers are retained best: 30% buy 3 months after their first "
                         "purchase (vs 10% for social)")


# ------------------------------------------------------------------ fonts: no findfont warnings

_STALE_FONT_CACHE = """
import os
import matplotlib as mpl
import matplotlib.font_manager as fm

m = fm.fontManager  # built now, in the empty MPLCONFIGDIR
# as if the cache predated the fonts installed since: no Liberation family in it
m.ttflist = [f for f in m.ttflist if not f.name.startswith("Liberation")]
fm.json_dump(m, os.path.join(mpl.get_cachedir(), f"fontlist-v{fm.FontManager.__version__}.json"))
"""


@pytest.mark.slow
def test_a_report_run_prints_no_font_or_other_warnings(tmp_path):
    """Issue 22: with a matplotlib font cache older than a font the charts asked for, every run that
    drew the archive printed "findfont: Font family 'Liberation Sans' not found." hundreds of times.
    The charts ask only for families matplotlib has (DejaVu Sans ships with it): two reports (so the
    archive draws its trend chart) from a fresh MPLCONFIGDIR write no warning at all to stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    subprocess.run([sys.executable, "-c", _STALE_FONT_CACHE], env=env, check=True, capture_output=True)
    rows = ["customer_id,paid_at,amount"] + [
        f"{c},2024-{m:02d}-{d:02d} 10:00:00,{10 + i}"
        for i, (c, m, d) in enumerate([("a", 1, 5), ("a", 2, 7), ("b", 1, 9), ("b", 4, 3), ("c", 3, 1),
                                       ("c", 5, 2), ("d", 4, 20), ("e", 6, 11), ("a", 6, 12)])]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "c.toml").write_text(f'[report]\noutput_dir = "{tmp_path / "reports"}"\n')
    cli = Path(sys.executable).with_name("retention-report")
    r = subprocess.run([str(cli), "run", "--period", "2024-Q1", "--period", "2024-Q2", "--data", "p.csv",
                        "--config", "c.toml"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "<svg" in (tmp_path / "reports" / "index.html").read_text()  # the archive drew its chart
    assert "findfont" not in r.stderr and "Liberation" not in r.stderr, r.stderr[-2000:]
    noise = [line for line in r.stderr.splitlines() if "warn" in line.lower()]
    assert not noise, noise[:10]
