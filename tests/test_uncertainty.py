"""95% intervals of the KPIs and verdicts on their changes (SPEC §4.6, issue 26).

Hand-computed Wilson / Newcombe / Poisson values; coverage by simulation (1,000 seeded draws of logs
from a known process: the 95% interval must cover the true value in 93–97% of them; the seed is
fixed, never tuned); the engine's intervals against the same functions on a hand-made log.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import SALES, make_dataset

from retention_report.document import changes_block, intervals_block, metrics_document
from retention_report.kpis import HEADLINE_KPIS, KPI_SPECS
from retention_report.metrics import KPI_KEYS, period_kpis
from retention_report.metrics.uncertainty import (
    Z95,
    Estimate,
    change_interval,
    newcombe,
    poisson_score,
    ratio_se,
    wilson,
)
from retention_report.periods import parse_period

approx = pytest.approx
Z = 1.959963984540054
DRAWS = 1000
SEED = 20261205


# ------------------------------------------------------------------------------ hand-computed

def test_wilson_of_8_of_10_by_hand():
    # centre (8 + z²/2) / (10 + z²), half-width z / (10 + z²) · √(8·2/10 + z²/4)
    z2 = Z * Z
    centre = (8 + z2 / 2) / (10 + z2)
    half = Z / (10 + z2) * math.sqrt(8 * 2 / 10 + z2 / 4)
    lo, hi = wilson(8, 10)
    assert (lo, hi) == approx((centre - half, centre + half))
    assert (lo, hi) == approx((0.4902, 0.9433), abs=5e-5)  # the published value


def test_wilson_at_the_edges_stays_inside_0_1():
    lo, hi = wilson(0, 10)
    assert lo == approx(0, abs=1e-12) and hi == approx(0.2775, abs=5e-5)
    lo, hi = wilson(10, 10)
    assert lo == approx(0.7225, abs=5e-5) and hi == approx(1, abs=1e-12)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), [
    # Newcombe (1998), Table II, method 10 (hybrid score): examples (a) and (c)
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
])
def test_newcombe_matches_the_paper(x1, n1, x2, n2, low, high):
    lo, hi = newcombe(x1, n1, x2, n2)
    assert (float(lo), float(hi)) == approx((low, high), abs=5e-5)


def test_newcombe_by_hand_from_two_wilson_intervals():
    # 8/10 − 5/10: Wilson(8/10) = [0.49016, 0.94332], Wilson(5/10) = [0.23659, 0.76341]
    l1, u1 = 0.4901625, 0.9433178
    l2, u2 = 0.2365931, 0.7634069
    lo, hi = newcombe(8, 10, 5, 10)
    assert float(lo) == approx(0.3 - math.sqrt((0.8 - l1) ** 2 + (u2 - 0.5) ** 2), abs=1e-6)
    assert float(hi) == approx(0.3 + math.sqrt((u1 - 0.8) ** 2 + (0.5 - l2) ** 2), abs=1e-6)


def test_poisson_score_interval_by_hand():
    # 100 customers: 100 + z²/2 ± z·√(100 + z²/4)
    lo, hi = poisson_score(100)
    half = Z * math.sqrt(100 + Z * Z / 4)
    assert (float(lo), float(hi)) == approx((100 + Z * Z / 2 - half, 100 + Z * Z / 2 + half))
    assert float(lo) == approx(82.23, abs=0.01) and float(hi) == approx(121.61, abs=0.01)


def test_ratio_standard_error_by_hand():
    # y = (10, 20, 60), x = (1, 2, 3): R = 90 / 6 = 15; residuals y − 15x = (−5, −10, 15)
    y, x = np.array([10.0, 20, 60]), np.array([1.0, 2, 3])
    se = ratio_se(3, y.sum(), x.sum(), (y * y).sum(), (x * x).sum(), (x * y).sum())
    assert float(se) == approx(math.sqrt(3 / 2 * (25 + 100 + 225)) / 6)


def test_a_difference_of_counts_and_of_means_adds_the_variances():
    d, lo, hi = change_interval(Estimate("poisson", x=120), Estimate("poisson", x=100))
    assert d == 20 and (lo, hi) == approx((20 - Z * math.sqrt(220), 20 + Z * math.sqrt(220)))
    d, lo, hi = change_interval(Estimate("normal", 50.0, 3.0), Estimate("normal", 40.0, 4.0))
    assert d == 10 and (lo, hi) == approx((10 - Z * 5, 10 + Z * 5))
    assert Z95 == approx(1.959963984540054)


# ------------------------------------------------------------------------ coverage by simulation

def _coverage(lo, hi, truth) -> float:
    return float(np.mean((lo <= truth) & (truth <= hi)))


def test_wilson_covers_a_retention_rate_95_percent_of_the_time():
    rng = np.random.default_rng(SEED)
    x = rng.binomial(300, 0.3, DRAWS)  # 300 customers at start, true churn 30%
    assert 0.93 <= _coverage(*wilson(x, 300), 0.3) <= 0.97


def test_newcombe_covers_a_change_of_rates_95_percent_of_the_time():
    rng = np.random.default_rng(SEED)
    x1, x2 = rng.binomial(300, 0.30, DRAWS), rng.binomial(250, 0.25, DRAWS)
    assert 0.93 <= _coverage(*newcombe(x1, 300, x2, 250), 0.05) <= 0.97


def _shop(rng, lam=400, draws=DRAWS):
    """``draws`` periods of a shop: a Poisson(``lam``) number of customers, each with 1 + Poisson(1.5)
    purchases of Gamma(2, 30) each (mean 60): per customer purchases p, gross g (a mask for the
    customers that exist)."""
    n = rng.poisson(lam, draws)
    width = int(n.max())
    mask = np.arange(width)[None, :] < n[:, None]
    p = (1 + rng.poisson(1.5, (draws, width))) * mask
    g = rng.gamma(2.0 * np.maximum(p, 1), 30.0) * mask  # a sum of p Gamma(2, 30) amounts
    return n, p, g


def test_revenue_interval_covers_the_expected_revenue():
    rng = np.random.default_rng(SEED)
    n, _p, g = _shop(rng)
    se = np.sqrt((g * g).sum(axis=1))  # compound Poisson: Var(Σg) = E[N]·E[g²], estimated by Σg²
    total = g.sum(axis=1)
    truth = 400 * 2.5 * 60  # E[N] · E[p] · E[amount]
    assert 0.93 <= _coverage(total - Z * se, total + Z * se, truth) <= 0.97


def test_aov_and_purchase_frequency_intervals_cover_their_true_values():
    rng = np.random.default_rng(SEED)
    n, p, g = _shop(rng)
    one = (p > 0).astype(float)
    aov = g.sum(axis=1) / p.sum(axis=1)
    se = ratio_se(n, g.sum(axis=1), p.sum(axis=1), (g * g).sum(axis=1), (p * p).sum(axis=1), (g * p).sum(axis=1))
    assert 0.93 <= _coverage(aov - Z * se, aov + Z * se, 60.0) <= 0.97
    af = p.sum(axis=1) / n
    se = ratio_se(n, p.sum(axis=1), one.sum(axis=1), (p * p).sum(axis=1), one.sum(axis=1), p.sum(axis=1))
    assert 0.93 <= _coverage(af - Z * se, af + Z * se, 2.5) <= 0.97


def test_customer_count_interval_covers_the_expected_count():
    rng = np.random.default_rng(SEED)
    n = rng.poisson(400, DRAWS)
    assert 0.93 <= _coverage(*poisson_score(n), 400) <= 0.97


# ------------------------------------------------------------------------- the engine's numbers

Q1 = parse_period("2024-Q1")


def test_the_engine_gives_the_intervals_of_the_functions_on_a_hand_made_log():
    # SALES (tests/helpers.py), Q1 2024 per customer: a g=80 p=1 first-purchase gross 0;
    # b g=220 p=2 first 200; d g=5 p=1 first 5; e only a refund (not a customer). Refunds 25.
    # Bridge: CS = {a, c}, CL = {c}, CE = {a, b, d}, CN = {b, d}
    doc = metrics_document(make_dataset(SALES), Q1)
    iv = doc["intervals"]
    g, p, a = np.array([80.0, 220, 5]), np.array([1.0, 2, 1]), np.array([0.0, 200, 5])
    se = math.sqrt(80**2 + 220**2 + 5**2)
    assert iv["revenue"] == approx([280 - Z * se, 280 + Z * se])
    # gross revenue cannot be negative: the normal interval is cut at 0 (coverage is kept)
    assert 305 - Z * se < 0 and iv["gross_revenue"] == approx([0, 305 + Z * se])
    resid = (80 - 76.25) ** 2 + (220 - 2 * 76.25) ** 2 + (5 - 76.25) ** 2  # g − AOV·p, AOV = 305/4
    se_aov = math.sqrt(3 / 2 * resid) / 4
    assert iv["aov"] == approx([76.25 - Z * se_aov, 76.25 + Z * se_aov])
    share = 205 / 305
    se_share = math.sqrt(3 / 2 * float(((a - share * g) ** 2).sum())) / 305
    assert share + Z * se_share > 1  # a share lies in [0, 1]: cut there
    assert iv["new_revenue_share"] == approx([share - Z * se_share, 1.0])
    assert iv["repeat_purchase_rate"] == approx(list(wilson(1, 3)))
    assert iv["churn_rate"] == approx(list(wilson(1, 2)))
    assert iv["crr"] == approx(list(wilson(1, 2)))  # (CE − CN) / CS = (3 − 2) / 2
    assert iv["customers"] == approx(list(poisson_score(3)))
    assert iv["customers_new"] == approx(list(poisson_score(2)))
    assert float(p.sum()) == 4
    # purchases: a total over customers, se = √Σp² = √(1 + 4 + 1), cut at 0
    assert iv["purchases"] == approx([max(0.0, 4 - Z * math.sqrt(6)), 4 + Z * math.sqrt(6)])


def test_every_kpi_with_a_declared_method_gets_an_estimate_and_every_headline_kpi_an_interval():
    k = period_kpis(make_dataset(SALES), Q1)
    declared = {key for key, spec in KPI_SPECS.items() if spec.uncertainty != "none"}
    assert set(HEADLINE_KPIS) <= declared and declared <= set(KPI_KEYS)
    assert set(k.estimates) == declared - {"ltv"} or set(k.estimates) == declared
    iv = intervals_block(k)
    assert set(iv) == declared


def test_changes_say_delta_interval_and_significance():
    cur = {"churn_rate": 0.8, "customers": 120}
    cur_e = {"churn_rate": Estimate.proportion(8, 10), "customers": Estimate("poisson", x=120)}
    ref = {"churn_rate": 0.5, "customers": 100}
    ref_e = {"churn_rate": Estimate.proportion(5, 10), "customers": Estimate("poisson", x=100)}

    class K(dict):
        def __init__(self, v, e):
            super().__init__(v)
            self.estimates = e

    out = changes_block(K(cur, cur_e), K(ref, ref_e))
    c = out["churn_rate"]
    lo, hi = newcombe(8, 10, 5, 10)
    assert c["delta"] == approx(0.3) and (c["low"], c["high"]) == approx((float(lo), float(hi)))
    assert c["significant"] is False and c["real"] is False  # 8/10 vs 5/10: the interval holds 0
    n = out["customers"]
    assert n["delta"] == 20 and n["significant"] is False  # 20 ± 1.96·√220 = ±29
    assert out["revenue"] is None  # no value, no change


# -------------------------------------------------------------------- verdicts shown to people

def test_a_change_that_rounds_to_nothing_is_grey_not_a_red_minus_zero():
    from retention_report.formatting import change

    # the case: 38.2% vs 38.3% read "▼ −0.0 pp" in red
    c = change("repeat_purchase_rate", 0.3824, 0.3828)
    assert c.text == "≈ 0.0 pp" and c.tone == "neutral" and not c.real


@pytest.mark.parametrize(("key", "cur", "ref", "significant", "text", "tone"), [
    ("churn_rate", 0.12, 0.10, True, "▲ +2.0 pp", "bad"),  # significant and > 0.5 pp
    ("churn_rate", 0.12, 0.10, False, "≈ +2.0 pp", "neutral"),  # large but within noise
    ("churn_rate", 0.104, 0.10, True, "≈ +0.4 pp", "neutral"),  # significant but < 0.5 pp
    ("revenue", 103.0, 100.0, True, "▲ +3.0%", "good"),
    ("revenue", 100.5, 100.0, True, "≈ +0.5%", "neutral"),  # < 1% relative
    ("customers", 90, 100, False, "≈ −10.0%", "neutral"),
])
def test_only_a_significant_change_larger_than_min_change_gets_an_arrow_and_a_colour(
        key, cur, ref, significant, text, tone):
    from retention_report.formatting import change

    c = change(key, cur, ref, significant=significant)
    assert (c.text, c.tone) == (text, tone)


def test_min_change_comes_from_the_document_and_an_interval_due_but_missing_is_not_real():
    from retention_report.formatting import doc_change

    doc = {"kpis": {"churn_rate": 0.12, "aov": 50.0}, "previous": {"churn_rate": 0.10, "aov": 20.0},
           "changes": {"previous": {"churn_rate": {"delta": 0.02, "low": 0.01, "high": 0.03, "significant": True},
                                    "aov": None}},
           "settings": {"min_change": {"relative": 0.01, "rate_points": 0.5}}}
    assert doc_change(doc, "churn_rate", "previous").text == "▲ +2.0 pp"
    doc["settings"]["min_change"]["rate_points"] = 5  # report.min_change.rate_points = 5
    assert doc_change(doc, "churn_rate", "previous").text == "≈ +2.0 pp"
    assert doc_change(doc, "aov", "previous").tone == "neutral"  # too few customers for an interval
    old = {k: v for k, v in doc.items() if k != "changes"}  # a document from before intervals
    assert doc_change(old, "aov", "previous").text == "▲ +150.0%"


def test_findings_report_only_real_changes():
    from retention_report.findings import findings

    base = {"kpis": {"churn_rate": 0.30, "crr": 0.70, "customers_new": 500},
            "previous": {"churn_rate": 0.20, "crr": 0.80, "customers_new": 400},
            "year_ago": {}, "previous_period": {"period": "2023-Q4", "coverage": "full"},
            "year_ago_period": {"period": "2023-Q1", "coverage": "none"}}
    noise = {"significant": False, "delta": 0.1, "low": -0.01, "high": 0.2}
    doc = {**base, "changes": {"previous": {"churn_rate": noise, "crr": noise, "customers_new": noise}}}
    assert not any("largest movement" in f for f in findings(doc))
    doc["changes"]["previous"]["customers_new"] = {**noise, "significant": True}
    assert any(f.startswith("The largest movement: new customers rose 25.0%") for f in findings(doc))


def test_a_config_sets_min_change(tmp_path):
    from retention_report.config import load_settings

    s = load_settings(None, **{"report.min_change.rate_points": 1.0})
    assert s.report.min_change.rate_points == 1.0 and s.report.min_change.relative == 0.01
    with pytest.raises(Exception, match="rate_points"):
        load_settings(None, **{"report.min_change.rate_points": -1})


def test_the_appendix_table_shows_intervals_and_verdicts():
    from retention_report.tables import interval_table

    doc = {"kpis": {"churn_rate": 0.12, "revenue": 1000.0}, "previous": {"churn_rate": 0.10, "revenue": 990.0},
           "year_ago": {}, "previous_period": {"period": "2023-Q4", "coverage": "full"},
           "year_ago_period": {"period": "2023-Q1", "coverage": "none"},
           "intervals": {"churn_rate": [0.11, 0.13], "revenue": [900.0, 1100.0]},
           "changes": {"previous": {"churn_rate": {"delta": 0.02, "low": 0.01, "high": 0.03, "significant": True},
                                    "revenue": {"delta": 10.0, "low": -50.0, "high": 70.0, "significant": False}}}}
    html = interval_table(doc, ["churn_rate", "revenue"])
    assert "11.0% – 13.0%" in html and "€900.00 – €1,100" in html
    assert "▲ +2.0 pp<br><span class='rr-muted'>1.0 to 3.0 pp;<br>real</span>" in html
    assert "≈ +1.0%<br><span class='rr-muted'>−€50.00 to €70.00;<br>within noise</span>" in html


def test_cohort_cells_get_wilson_intervals():
    from retention_report.document import cohort_intervals

    low, high = cohort_intervals({"size": [10, 0, 4], "retention": [[1.0, 0.8, None], [None, None, None],
                                                                    [1.0, 0.25, 0.0]]})
    assert [low[0][1], high[0][1]] == approx(list(wilson(8, 10)))  # 8 of 10 bought at age 1
    assert low[0][2] is None and low[1] == [None, None, None]
    assert [low[2][1], high[2][1]] == approx(list(wilson(1, 4))) and low[2][2] == approx(0, abs=1e-12)
    doc = metrics_document(make_dataset(SALES), Q1)
    co = doc["cohorts"]
    assert len(co["retention_low"]) == len(co["retention"]) == len(co["retention_high"])
    for size, row, lo, hi in zip(co["size"], co["retention"], co["retention_low"], co["retention_high"], strict=True):
        for v, a, b in zip(row, lo, hi, strict=True):
            assert (v is None) == (a is None) == (b is None)
            if v is not None and size:
                assert a <= v <= b


def test_a_kpi_without_an_interval_method_is_shown_without_a_verdict():
    from retention_report.formatting import doc_change

    doc = {"kpis": {"refunds": 138.0, "crr": 0.9}, "previous": {"refunds": 100.0, "crr": 0.8},
           "changes": {"previous": {"crr": None}}}
    c = doc_change(doc, "refunds", "previous")  # refunds are not attributed to customers: no interval
    assert (c.text, c.tone, c.real) == ("+38.0%", "neutral", False)
    c = doc_change(doc, "crr", "previous")  # an interval was due, too few customers for one
    assert (c.text, c.tone) == ("≈ +10.0 pp", "neutral")
