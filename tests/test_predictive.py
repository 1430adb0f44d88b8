"""Predicted customer value of a report period (retention_report.metrics.predictive, issue 17): the
engine-side compression on a hand-counted log, the fast BG/NBD fit against the reference fit of
retention_report.clv, the per-history sums against per-customer predictions, the null block with
its reason, the backtest (on data simulated from the BG/NBD model itself and on the shop sample),
the section's aggregates, the charts and tables, and the ``scores`` CSV export."""

from __future__ import annotations

import csv
import math
import os
from datetime import date

import clv_reference
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from helpers import NOW, make_dataset
from typer.testing import CliRunner

from retention_report import clv, plots_clv, tables_clv
from retention_report.cli import app
from retention_report.config import ClvSettings, load_settings
from retention_report.data import dataset_from_frame
from retention_report.metrics import predictive as pv_mod
from retention_report.metrics.predictive import (
    clv_block,
    clv_options,
    compress_histories,
    customer_scores,
    fit_purchases,
    fitting,
    predicted_value,
    prediction,
    report,
)
from retention_report.metrics.predictive.fitcache import FitCache, fit_key
from retention_report.periods import parse_period

BLOCK_KEYS = {"model", "time_unit", "calibration_end", "customers", "repeat_customers", "params", "log_likelihood",
              "horizon_days", "expected_purchases", "expected_revenue", "clv_mean", "at_risk_customers", "backtest"}


# --------------------------------------------------------------------------------------------
# the engine side, counted by hand

HAND = [
    # A: 1 Jan, 8 Jan (two payments: one purchase of 25), 5 Feb; a refund is no purchase
    ("A", "2024-01-01 10:00", 10.0), ("A", "2024-01-08 09:00", 20.0), ("A", "2024-01-08 18:00", 5.0),
    ("A", "2024-02-05 10:00", 30.0), ("A", "2024-02-20 10:00", -10.0),
    ("B", "2024-01-15 10:00", 40.0),
    ("F", "2024-01-15 12:00", 35.0),  # same history as B
    # C: acquired in February; a zero payment is no purchase
    ("C", "2024-02-10 10:00", 15.0), ("C", "2024-02-12 10:00", 0.0), ("C", "2024-02-25 10:00", 45.0),
    ("D", "2024-03-05 10:00", 100.0),  # after the period: not in the base
    # E: acquired 31 Dec; the last minutes of 31 Jan belong to the backtest's calibration; 29 Feb counts
    ("E", "2023-12-31 10:00", 20.0), ("E", "2024-01-31 23:00", 30.0), ("E", "2024-02-29 23:59", 50.0),
]


def test_compression_counted_by_hand():
    ds = make_dataset(HAND)
    c = compress_histories(ds.daily, date(2024, 2, 29), date(2024, 1, 31))
    h = c.histories
    # (x, t_x days, T days) to 29 Feb: B and F (0, 0, 45); C 10 -> 25 Feb (1, 15, 19);
    # A 1 Jan, 8 Jan, 5 Feb (2, 35, 59); E 31 Dec, 31 Jan, 29 Feb (2, 60, 60) — ordered by x, T, t_x
    assert h[["x", "t_x_days", "T_days", "n"]].values.tolist() == [
        [0, 0, 45, 2], [1, 15, 19, 1], [2, 35, 59, 1], [2, 60, 60, 1]]
    # mean repeat value m (first purchase excluded): C 45, A (25 + 30) / 2 = 27.5, E (30 + 50) / 2 = 40
    assert h.n_m.tolist() == [0, 1, 1, 1]
    assert h.sum_m.tolist() == [0.0, 45.0, 27.5, 40.0]
    # gross to date: B + F 75; C 60; A 65 (the refund is not a purchase); E 100
    assert h.value.tolist() == [75.0, 60.0, 65.0, 100.0]
    assert c.spend.values.tolist() == [[1, 45.0, 1], [2, 27.5, 1], [2, 40.0, 1]]
    # as of 31 Jan, the customers acquired by then (A, B, E, F): B, F (0, 0, 16); A 1 -> 8 Jan (1, 7, 30);
    # E 31 Dec -> 31 Jan (1, 31, 31); purchases after 31 Jan: A 1 (5 Feb), E 1 (29 Feb)
    assert c.backtest[["x", "t_x_days", "T_days", "n", "actual"]].values.tolist() == [
        [0, 0, 16, 2, 0], [1, 7, 30, 1, 1], [1, 31, 31, 1, 1]]


def test_histories_agree_with_the_clv_module():
    """The one-pass history (value minus the first day's gross, no join) is clv_reference.customer_rfm's."""
    ds = make_dataset(HAND)
    end = date(2024, 2, 29)
    ours = pv_mod.customer_histories(ds.daily, end).to_pandas().set_index("customer_id").sort_index()
    ref = clv_reference.customer_rfm(ds.daily, ds.customers, end).to_pandas().set_index("customer_id").sort_index()
    assert list(ours.index) == list(ref.index) == ["A", "B", "C", "E", "F"]
    for col in ("acquired", "x", "t_x_days", "T_days"):
        assert ours[col].tolist() == ref[col].tolist(), col
    m_ref = np.where(ref.x > 0, ref.repeat_value / ref.x.clip(lower=1), 0.0)
    np.testing.assert_allclose(ours.m, m_ref, rtol=1e-12)


def test_too_few_customers_give_a_null_block_with_the_reason():
    ds = make_dataset(HAND)
    out = clv_block(ds, parse_period("2024-02"))
    assert out.block is None
    assert out.reason == "only 5 customers had bought by 29 Feb 2024; the model needs at least 50 (clv.min_customers)"
    pv = predicted_value(ds, parse_period("2024-02"))
    assert not pv.available and pv.reason == out.reason
    with pytest.raises(ValueError, match="only 5 customers"):
        customer_scores(ds, parse_period("2024-02"))


def test_no_repeat_buyer_gives_a_null_block_with_the_reason():
    rows = [(f"C{i:03d}", f"2024-01-{1 + i % 28:02d} 10:00", 10.0 + i) for i in range(60)]
    out = clv_block(make_dataset(rows), parse_period("2024-01"))
    assert out.block is None
    assert out.reason == "no customer had bought twice by 28 Jan 2024: the purchase model needs repeat buyers"  # the last day


def test_switched_off():
    ds = make_dataset(HAND)
    out = clv_block(ds, parse_period("2024-02"), ClvSettings(enabled=False))
    assert out == (None, "the prediction is switched off in the configuration (clv.enabled = false)")


def test_options_from_settings_section_mapping_or_dataset():
    s = load_settings(None, **{"clv.horizon_days": 180, "clv.model": "pareto_nbd"})
    for given in (s, s.clv, s.clv.model_dump()):
        o = clv_options(given)
        assert (o.horizon_days, o.model, o.annual_discount, o.min_customers) == (180, "pareto_nbd", 0.10, 50)
    assert clv_options(None).model == "bg_nbd"
    ds = make_dataset(HAND, clv__at_risk_threshold=0.3)
    assert clv_options(ds).at_risk_threshold == 0.3


# --------------------------------------------------------------------------------------------
# the fast BG/NBD fit


def _simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, start: date, end: date, seed: int) -> pd.DataFrame:
    """Payments of customers following the BG/NBD story exactly: acquired uniformly in [start, end],
    purchases at rate lambda ~ Gamma(r, alpha) a week, after each repeat purchase inactive with
    probability p ~ Beta(a, b); spend ~ Gamma(6, 10 / Gamma(3, 1)) (Gamma-Gamma)."""
    rng = np.random.default_rng(seed)
    days = (end - start).days + 1
    acq = rng.integers(0, days, n)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    nu = rng.gamma(3.0, 1.0, n) / 10.0
    cust, day = [], []
    for i in range(n):
        cust.append(i)
        day.append(acq[i])
        t = float(acq[i])
        while True:
            t += rng.exponential(7.0 / lam[i])
            if t >= days:
                break
            cust.append(i)
            day.append(int(t))
            if rng.random() < p[i]:
                break
    c = np.array(cust)
    amount = np.round(rng.gamma(6.0, 1.0 / nu[c]), 2)
    paid = pd.Timestamp(start) + pd.to_timedelta(np.array(day), unit="D") + pd.Timedelta(hours=12)
    return pd.DataFrame({"customer_id": [f"S{i:06d}" for i in c], "paid_at": paid, "amount": amount})


@pytest.fixture(scope="module")
def bgnbd_log() -> pd.DataFrame:
    return _simulate_bgnbd(12_000, r=0.5, alpha=5.0, a=1.5, b=8.0, start=date(2022, 1, 1),
                           end=date(2024, 6, 30), seed=11)


@pytest.fixture(scope="module")
def bgnbd_ds(bgnbd_log):
    return dataset_from_frame(bgnbd_log, load_settings(None), now=NOW)


@pytest.fixture(scope="module")
def rows(bgnbd_ds):
    return compress_histories(bgnbd_ds.daily, date(2024, 3, 31), date(2023, 12, 31))


def test_day_lookup_likelihood_equals_the_reference(rows):
    h = rows.histories
    d = fitting.DayRows(h.x, h.t_x_days, h.T_days, h.n)
    for params in [(0.5, 5.0, 1.5, 8.0), (0.11, 2.24, 0.31, 0.50), (2.0, 30.0, 0.9, 3.0)]:
        ll, g = d.ll(params)
        ref, gref = clv.bgnbd_log_likelihood(params, h.x, h.t_x_days / 7, h.T_days / 7, h.n, gradient=True)
        assert math.isclose(ll, ref, rel_tol=1e-12)
        np.testing.assert_allclose(g, gref, rtol=1e-9, atol=1e-9 * np.abs(gref).max())


def test_fast_fit_is_the_maximum_likelihood_fit(rows, monkeypatch):
    """The quasi-Newton polish from a 4-week-grid fit (used above 20,000 distinct histories; forced
    here) reaches the optimum of clv.fit_bgnbd, and so does the backtest fit started from it."""
    monkeypatch.setattr(fitting, "_SMALL", 0)
    h, b = rows.histories, rows.backtest
    main = fit_purchases("bgnbd", h.x, h.t_x_days, h.T_days, h.n)
    assert main.fit.message.startswith("quasi-Newton") and main.hessian is not None
    ref = clv.fit_bgnbd(h.x, h.t_x_days / 7, h.T_days / 7, h.n)
    np.testing.assert_allclose(main.fit.values, ref.values, rtol=1e-6)
    assert main.fit.log_likelihood >= ref.log_likelihood - 1e-6
    back = fit_purchases("bgnbd", b.x, b.t_x_days, b.T_days, b.n, start=main)
    assert back.fit.message.startswith("quasi-Newton")
    bref = clv.fit_bgnbd(b.x, b.t_x_days / 7, b.T_days / 7, b.n)
    np.testing.assert_allclose(back.fit.values, bref.values, rtol=1e-6)
    # the simulated truth (r, alpha, a, b) = (0.5, 5, 1.5, 8), recovered from 12,000 customers
    np.testing.assert_allclose(ref.values, (0.5, 5.0, 1.5, 8.0), rtol=0.2)


def test_a_kept_fit_is_the_computed_one_and_another_start_is_another_fit(rows, tmp_path, monkeypatch):
    """Fits on many rows are kept (fitcache) by their exact inputs and starting point: a run with
    the same rows reads back the very fit it would compute, and computes nothing."""
    monkeypatch.setattr(fitting, "_SMALL", 0)
    h, b, sp = rows.histories, rows.backtest, rows.spend
    kept = FitCache(tmp_path)
    main = fit_purchases("bgnbd", h.x, h.t_x_days, h.T_days, h.n, cache=kept)
    back = fit_purchases("bgnbd", b.x, b.t_x_days, b.T_days, b.n, start=main, cache=kept)
    spend = pv_mod.fit_spend(sp.x, sp.m, sp.n, cache=kept)

    def no_fit(*a, **k):
        raise AssertionError("fitted again")

    monkeypatch.setattr(fitting, "_newton", no_fit)
    again = FitCache(tmp_path)  # the next run reads the file
    main2 = fit_purchases("bgnbd", h.x, h.t_x_days, h.T_days, h.n, cache=again)
    assert main2.fit == main.fit and np.array_equal(main2.hessian, main.hessian)
    assert fit_purchases("bgnbd", b.x, b.t_x_days, b.T_days, b.n, start=main2, cache=again).fit == back.fit
    assert pv_mod.fit_spend(sp.x, sp.m, sp.n, cache=again) == spend
    with pytest.raises(AssertionError, match="fitted again"):  # the backtest rows from another start
        fit_purchases("bgnbd", b.x, b.t_x_days, b.T_days, b.n, cache=again)
    assert FitCache(None).get(fit_key("bgnbd", h.x.to_numpy())) is None


def test_newton_falls_back_to_the_bounded_fit_when_it_cannot_converge(rows, monkeypatch):
    monkeypatch.setattr(fitting, "_SMALL", 0)
    monkeypatch.setattr(fitting, "_newton", lambda obj, theta, H, **kw: (theta, 0.0, theta, H, 1, False))
    h = rows.histories
    got = fit_purchases("bgnbd", h.x, h.t_x_days, h.T_days, h.n)
    assert got.hessian is None and not got.fit.message.startswith("quasi-Newton")
    np.testing.assert_allclose(got.fit.values, clv.fit_bgnbd(h.x, h.t_x_days / 7, h.T_days / 7, h.n).values, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# the block


def test_block_keys_and_sums_equal_the_per_customer_predictions(bgnbd_ds):
    """Expected purchases, revenue and CLV summed per history (spend linear in m) equal the sums
    of clv_reference.predict_customers over every customer; at-risk customers and revenue likewise."""
    period = parse_period("2024-Q2")
    b = clv_block(bgnbd_ds, period).block
    assert b is not None and BLOCK_KEYS <= set(b)
    assert b["model"] == "bg_nbd+gamma_gamma" and b["time_unit"] == "week"
    assert b["calibration_end"] == "2024-06-30" and b["horizon_days"] == 365
    assert list(b["params"]) == ["r", "alpha", "a", "b", "p", "q", "gamma"]
    assert list(b["log_likelihood"]) == ["bg_nbd", "gamma_gamma"]
    core = pv_mod.clv_core(bgnbd_ds, period)
    per = clv_reference.customer_rfm(bgnbd_ds.daily, bgnbd_ds.customers, date(2024, 6, 30)).to_pandas()
    m = np.where(per.x > 0, per.repeat_value / per.x.clip(lower=1), 0.0)
    pred = clv_reference.predict_customers(core.purchases, core.spend, per.x, per.t_x_days / 7, per.T_days / 7, m)
    assert b["customers"] == len(per) and b["repeat_customers"] == int((per.x > 0).sum())
    assert math.isclose(b["expected_purchases"], pred.expected_purchases.sum(), rel_tol=1e-9)
    assert math.isclose(b["expected_revenue"], (pred.expected_purchases * pred.expected_spend).sum(), rel_tol=1e-9)
    assert math.isclose(b["clv_mean"], pred.clv.mean(), rel_tol=1e-9)
    risk = (per.x > 0) & (pred.p_alive < 0.5)
    assert b["at_risk_customers"] == int(risk.sum())
    d = bgnbd_ds.daily.to_pandas()
    value = d[d.is_purchase & (pd.to_datetime(d.day) <= pd.Timestamp("2024-06-30"))].groupby("customer_id").gross.sum()
    value = value.reindex(per.customer_id).to_numpy()
    assert math.isclose(b["at_risk_revenue_share"], value[risk.to_numpy()].sum() / value.sum(), rel_tol=1e-9)
    # the correlation of x and mean spend, over the repeat buyers
    rep = per.x > 0
    assert math.isclose(b["spend_frequency_correlation"], np.corrcoef(per.x[rep], m[rep])[0, 1], rel_tol=1e-9)


def test_scores_in_the_engine_equal_the_block(bgnbd_ds):
    period = parse_period("2024-Q2")
    b = clv_block(bgnbd_ds, period).block
    s = customer_scores(bgnbd_ds, period).to_pandas()
    assert len(s) == b["customers"] and s.customer_id.is_unique
    assert math.isclose(s.clv.mean(), b["clv_mean"], rel_tol=1e-9)
    assert math.isclose(s.expected_purchases.sum(), b["expected_purchases"], rel_tol=1e-9)
    assert math.isclose((s.expected_purchases * s.expected_spend).sum(), b["expected_revenue"], rel_tol=1e-9)
    assert s.p_alive[s.x == 0].isna().all() and s.p_alive[s.x > 0].between(0, 1).all()
    assert int(((s.x > 0) & (s.p_alive < 0.5)).sum()) == b["at_risk_customers"]


def test_backtest_on_data_following_the_model(bgnbd_ds):
    """Fitted on the data to the day before the period, the prediction of the period's purchases
    by the customers known then is within 5% of what they bought (the model is true here)."""
    for label in ("2024-Q1", "2024-Q2"):
        bt = clv_block(bgnbd_ds, parse_period(label)).block["backtest"]
        assert bt["actual_purchases"] > 1000
        assert abs(bt["predicted_purchases"] / bt["actual_purchases"] - 1) < 0.05, (label, bt)
        assert math.isclose(bt["error"], bt["predicted_purchases"] / bt["actual_purchases"] - 1)


def test_backtest_on_the_shop_sample(sample_frame):
    """The sample shop is BG/NBD-like with a Christmas peak: a quarter after Christmas is predicted
    from a calibration ending on the peak, within 20%."""
    ds = dataset_from_frame(sample_frame, load_settings(None), now=NOW)
    b = clv_block(ds, parse_period("2024-Q1")).block
    bt = b["backtest"]
    assert bt["calibration_end"] == "2023-12-31"
    assert abs(bt["error"]) < 0.20, bt
    pv = predicted_value(ds, parse_period("2024-Q1"))
    w = pv.backtest
    assert w.week.tolist() == list(range(1, 14)) and w.days.iloc[-1] == 91
    assert w.date.iloc[-1] == date(2024, 3, 31)
    assert np.all(np.diff(w.predicted) > 0) and np.all(np.diff(w.actual) >= 0)
    assert math.isclose(w.predicted.iloc[-1], bt["predicted_purchases"], rel_tol=1e-12)
    assert w.actual.iloc[-1] == bt["actual_purchases"]


def test_weekly_backtest_counted_by_hand():
    ds = make_dataset(HAND, clv__min_customers=2)
    core = pv_mod.ClvCore(pv_mod.clv_options(ds), date(2024, 2, 29), date(2024, 1, 31), observed_days=29)
    # the predicted curve needs a fit: any fixed parameters do
    core.backtest_fit = clv.FitResult("bgnbd", {"r": 0.5, "alpha": 5.0, "a": 1.5, "b": 8.0}, 0.0, True, 4, 3)
    c = compress_histories(ds.daily, date(2024, 2, 29), date(2024, 1, 31)).backtest
    c["p_alive"] = prediction.p_alive_days(core.backtest_fit, c.x.to_numpy(), c.t_x_days.to_numpy(), c.T_days.to_numpy())
    core.backtest_rows = c
    w = report._backtest_frame(ds, core, parse_period("2024-02"))
    # February by the customers acquired by 31 Jan: A on 5 Feb (week 1), E on 29 Feb (day 29, week 5)
    assert w.days.tolist() == [7, 14, 21, 28, 29]
    assert w.actual.tolist() == [1, 1, 1, 1, 2]
    expected = clv.expected_purchases(core.backtest_fit, 29 / 7, c.x, c.t_x_days / 7, c.T_days / 7) @ c.n
    assert math.isclose(w.predicted.iloc[-1], expected, rel_tol=1e-12)


def test_no_history_before_the_period_gives_no_backtest(bgnbd_ds):
    period = parse_period("2022-01-01..2022-12-31")
    out = clv_block(bgnbd_ds, period)
    assert out.block is not None and out.block["backtest"] is None
    pv = predicted_value(bgnbd_ds, period)
    assert pv.backtest is None and pv.backtest_reason == "no purchases before 1 Jan 2022: nothing to fit the backtest on"
    assert "No backtest for this period: no purchases before 1 Jan 2022" in tables_clv.backtest_note(pv)


def test_incomplete_period_calibrates_on_the_last_day(bgnbd_ds):
    b = clv_block(bgnbd_ds, parse_period("2024-06-16..2024-07-15")).block  # the data end on 30 Jun 2024
    assert b["calibration_end"] == "2024-06-30"
    bt = b["backtest"]  # fitted to 15 Jun, compared over the 15 days with data
    assert bt["calibration_end"] == "2024-06-15" and bt["actual_purchases"] > 0
    assert abs(bt["error"]) < 0.1
    w = predicted_value(bgnbd_ds, parse_period("2024-06-16..2024-07-15")).backtest
    assert w.days.tolist() == [7, 14, 15] and w.actual.iloc[-1] == bt["actual_purchases"]
    after = predicted_value(bgnbd_ds, parse_period("2024-Q3"))  # no day of the period has data
    assert after.block["calibration_end"] == "2024-06-30" and after.block["backtest"] is None
    assert after.backtest_reason == "the data end before 1 Jul 2024: nothing in the period to compare with"


def test_pareto_nbd_option(bgnbd_ds):
    b = clv_block(bgnbd_ds, parse_period("2024-Q2"), ClvSettings(model="pareto_nbd")).block
    assert b["model"] == "pareto_nbd+gamma_gamma"
    assert list(b["params"]) == ["r", "alpha", "s", "beta", "p", "q", "gamma"]
    assert list(b["log_likelihood"]) == ["pareto_nbd", "gamma_gamma"]
    assert abs(b["backtest"]["error"]) < 0.15  # the data follow BG/NBD, not Pareto/NBD


def test_discount_and_horizon(bgnbd_ds):
    period = parse_period("2024-Q2")
    base = clv_block(bgnbd_ds, period).block
    flat = clv_block(bgnbd_ds, period, ClvSettings(annual_discount=0.0)).block
    # undiscounted, CLV is expected revenue per customer
    assert math.isclose(flat["clv_mean"] * flat["customers"], flat["expected_revenue"], rel_tol=1e-9)
    assert base["clv_mean"] < flat["clv_mean"]
    half = clv_block(bgnbd_ds, period, ClvSettings(horizon_days=182)).block
    assert half["horizon_days"] == 182 and half["expected_purchases"] < base["expected_purchases"]



def title(ax):
    """The axes' title wherever the theme put it (``axes.titlelocation`` may be left)."""
    return "".join(ax.get_title(loc) for loc in ("left", "center", "right"))


# --------------------------------------------------------------------------------------------
# the section


@pytest.fixture(scope="module")
def section(sample_frame):
    s = load_settings(None, **{"columns.segments": ["channel"]})
    ds = dataset_from_frame(sample_frame, s, now=NOW)
    return predicted_value(ds, parse_period("2024-Q1"), s, segment="channel")


def test_section_aggregates_add_up(section):
    pv = section
    b, s = pv.block, pv.summary
    assert pv.available and pv.calibration_end == date(2024, 3, 31)
    d = pv.deciles
    assert d.decile.tolist() == list(range(1, 11)) and d.customers.sum() == b["customers"]
    assert math.isclose(d.clv.sum(), b["clv_mean"] * b["customers"], rel_tol=1e-9)
    assert math.isclose(d.share.sum(), 1.0) and d.clv_min.is_monotonic_decreasing
    assert d.clv_min.iloc[5] <= s["clv_median"] <= d.clv_max.iloc[4]
    c = pv.cohorts
    assert len(c) == 12 and c.cohort.iloc[-1] == pd.Timestamp("2024-03-01")
    assert c.customers.sum() + s["earlier_customers"] == b["customers"]
    assert math.isclose(c.clv.sum() + s["earlier_clv_mean"] * s["earlier_customers"], b["clv_mean"] * b["customers"],
                        rel_tol=1e-9)
    g = pv.segments
    assert set(g.segment) <= {"organic", "paid search", "social", "email", "referral", "marketplace"}
    assert g.customers.sum() == b["customers"] and math.isclose(g.customer_share.sum(), 1.0)
    assert math.isclose((g.clv_mean * g.customers).sum(), b["clv_mean"] * b["customers"], rel_tol=1e-9)
    assert s["new_customers"] == c.set_index("cohort").loc[pd.Timestamp("2024-01-01"):, "customers"].sum()
    assert 0 < s["at_risk_share"] < 1 and s["at_risk_customers"] == b["at_risk_customers"]


def test_section_result_is_small_and_has_no_customer_ids(section):
    import pickle

    blob = pickle.dumps(section)
    assert len(blob) < 100_000
    assert b"C00" not in blob  # the sample's ids look like C0048213


def test_charts_state_the_finding(section):
    pv = section
    ax = plots_clv.backtest_chart(pv.backtest, "Q1 2024", pv.backtest_end)
    bt = pv.block["backtest"]
    assert title(ax).startswith(f"Backtest: {bt['predicted_purchases']:,.0f} purchases predicted for Q1 2024, "
                                     f"{bt['actual_purchases']:,} made (")
    ax = plots_clv.clv_deciles(pv.deciles)
    assert title(ax).startswith(f"The top 10% of customers hold {100 * pv.deciles.share.iloc[0]:.0f}%")
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "Top 10%"
    ax = plots_clv.clv_by_cohort(pv.cohorts, overall=pv.block["clv_mean"])
    assert title(ax).startswith("The model expects customers first buying in ")
    ax = plots_clv.clv_by_segment(pv.segments, "channel")
    assert "channel" in title(ax) or title(ax).split()[0] in {s.capitalize() for s in pv.segments.segment}
    plt.close("all")


def test_charts_of_nothing_are_labelled():
    for ax in (plots_clv.backtest_chart(None), plots_clv.clv_deciles(None), plots_clv.clv_by_cohort(pd.DataFrame()),
               plots_clv.clv_by_segment(None, "channel")):
        assert title(ax) and ax.texts
    plt.close("all")


def test_segment_names_are_shortened_and_plain_text():
    long = "<b>$x$</b> " + "y" * 60
    f = pd.DataFrame({"segment": [long, "web"], "customers": [10, 30], "clv_mean": [50.0, 40.0],
                      "customer_share": [0.25, 0.75]})
    ax = plots_clv.clv_by_segment(f, "platform")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert all(len(t) <= 40 for t in labels) and any(t.startswith("<b>$x$</b> yyy") for t in labels)
    plt.close("all")


def test_tables_show_the_block_with_its_keys(section):
    pv = section
    html = tables_clv.clv_summary_table(pv, "EUR")
    assert 'data-kpi="clv.expected_revenue"' in html and 'data-kpi="clv.at_risk_customers"' in html
    assert f"{pv.block['customers']:,}" in html and f"{pv.block['at_risk_customers']:,}" in html
    doc = {"kpis": {"ltv": 412.5, "avg_lifetime_years": 2.5}, "extra": {"ltv_empirical_12m": 150.0}}
    table = tables_clv.ltv_vs_clv_table(doc, pv, "EUR")
    assert "€412.50" in table and "data-kpi='ltv'" in table
    note = tables_clv.ltv_vs_clv_note(doc, pv, "EUR")
    assert note.startswith("The commissioned LTV (€412.50) is ") and ". " not in note and note.endswith(".")
    assert "discounts" in note and "already left" in note
    assert "correlation between repeat purchases and mean spend" in tables_clv.model_note(pv)
    assert tables_clv.unavailable(pv) == ""


def test_tables_without_a_prediction_say_why():
    pv = pv_mod.PredictedValue("2024-02", date(2024, 2, 29), None, "only 5 customers <had> bought")
    html = tables_clv.clv_summary_table(pv)
    assert "rr-banner" in html and "only 5 customers &lt;had&gt; bought" in html
    assert tables_clv.model_note(pv) == ""
    assert "not available" in tables_clv.ltv_vs_clv_note({"kpis": {"ltv": 10.0}}, pv)
    assert tables_clv.horizon_text(365) == "12 months" and tables_clv.horizon_text(90) == "3 months"
    assert tables_clv.horizon_text(45) == "45 days"


# --------------------------------------------------------------------------------------------
# the scores CSV


def test_scores_command_writes_only_on_request_and_never_overwrites(sample_parquet, tmp_path):
    runner = CliRunner()
    out = tmp_path / "scores.csv"
    r = runner.invoke(app, ["scores", "--period", "2024-Q1", "--data", str(sample_parquet), "--out", str(out)])
    assert r.exit_code == 0, r.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["customer_id", "acquired", "x", "t_x", "T", "m", "value", "p_alive",
                             "expected_purchases", "expected_spend", "clv"]
    clvs = [float(r["clv"]) for r in rows]
    assert clvs == sorted(clvs, reverse=True) and len({r["customer_id"] for r in rows}) == len(rows)
    assert f"scores of {len(rows):,} customers for 2024-Q1 written to" in r.output
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    before = out.read_bytes()
    r = runner.invoke(app, ["scores", "--period", "2024-Q1", "--data", str(sample_parquet), "--out", str(out)])
    assert r.exit_code == 2 and "exists; use --force" in r.output and out.read_bytes() == before
    r = runner.invoke(app, ["scores", "--period", "2024-Q1", "--data", str(sample_parquet), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "is a folder" in r.output
    r = runner.invoke(app, ["scores", "--period", "2024-Q1", "--data", str(sample_parquet), "--out", str(out), "--force"])
    assert r.exit_code == 0 and out.read_bytes() == before  # the same data, the same file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_scores_of_a_period_outside_the_data_fail_with_one_line(sample_parquet, tmp_path):
    r = CliRunner().invoke(app, ["scores", "--period", "2030-Q1", "--data", str(sample_parquet),
                                 "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 1 and "no payments in 2030-Q1" in r.output
    assert not (tmp_path / "s.csv").exists()


def test_timestamps_are_whole_days():
    """Weeks are exact days / 7 from purchase days (not timestamps): the time of day never counts."""
    ds = make_dataset([("A", "2024-01-01 23:59", 10.0), ("A", "2024-01-02 00:01", 10.0)])
    h = compress_histories(ds.daily, date(2024, 1, 8)).histories
    assert h[["x", "t_x_days", "T_days"]].values.tolist() == [[1, 1, 7]]


def test_fast_spend_fit_is_the_maximum_likelihood_fit(bgnbd_ds, monkeypatch):
    monkeypatch.setattr(fitting, "_SMALL", 0)
    sp = compress_histories(bgnbd_ds.daily, date(2024, 6, 30)).spend
    got = pv_mod.fit_spend(sp.x, sp.m, sp.n)
    assert got.message.startswith("quasi-Newton") and got.converged
    ref = clv.fit_gamma_gamma(sp.x, sp.m, sp.n)
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-6)
    assert got.log_likelihood >= ref.log_likelihood - 1e-6 and got.n_customers == ref.n_customers


# --------------------------------------------------------------------------------------------
# issue 26: a prediction that degrades gracefully, and a backtest only on enough history

def _simulate_nbd(n: int, r: float, alpha: float, start: date, end: date, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Payments of customers who never stop buying (the NBD: rate lambda ~ Gamma(r, alpha) a week, for
    ever), acquired uniformly in [start, end]; spend as in :func:`_simulate_bgnbd`. Also the rates."""
    rng = np.random.default_rng(seed)
    days = (end - start).days + 1
    acq = rng.integers(0, days, n)
    lam = rng.gamma(r, 1 / alpha, n)
    nu = rng.gamma(3.0, 1.0, n) / 10.0
    cust, day = [], []
    for i in range(n):
        t = float(acq[i])
        while t < days:
            cust.append(i)
            day.append(int(t))
            t += rng.exponential(7.0 / lam[i])
    c = np.array(cust)
    amount = np.round(rng.gamma(6.0, 1.0 / nu[c]), 2)
    paid = pd.Timestamp(start) + pd.to_timedelta(np.array(day), unit="D") + pd.Timedelta(hours=12)
    frame = pd.DataFrame({"customer_id": [f"N{i:06d}" for i in c], "paid_at": paid, "amount": amount})
    return frame, lam


def test_no_dropout_in_the_data_falls_back_to_the_nbd_and_still_predicts():
    """Nobody ever stops buying: BG/NBD's dropout runs to 0 (not identified), so the nested NBD
    predicts — said so, with no P(alive) or customers at risk — and its prediction matches the
    known process: the next 365 days' purchases of customers with rates lambda are sum(lambda) x 365/7."""
    frame, lam = _simulate_nbd(4000, r=1.5, alpha=6.0, start=date(2023, 1, 1), end=date(2024, 3, 31), seed=5)
    s = load_settings(None, **{"columns.segments": []})
    ds = dataset_from_frame(frame, s, now=NOW)
    period = parse_period("2024-Q1")
    out = clv_block(ds, period, s)
    b = out.block
    assert out.reason is None and b is not None
    assert b["model"] == "nbd+gamma_gamma"
    assert b["fallback"]["from"] == "bg_nbd" and b["fallback"]["to"] == "nbd"
    assert "do not identify when customers stop buying" in b["fallback"]["reason"]
    assert b["at_risk_customers"] is None and b["at_risk_revenue_share"] is None
    assert set(b["params"]) == {"r", "alpha", "p", "q", "gamma"} and set(b["log_likelihood"]) == {"nbd", "gamma_gamma"}
    # the fitted mean rate r / alpha and the base's expected purchases, against the process
    assert b["params"]["r"] / b["params"]["alpha"] == pytest.approx(1.5 / 6.0, rel=0.05)
    assert b["expected_purchases"] == pytest.approx(lam.sum() * 365 / 7, rel=0.05)
    # the backtest (365 days of history for a 91-day holdout) uses the same fallback and runs
    assert b["backtest"] is not None and b["backtest_reason"] is None
    assert abs(b["backtest"]["error"]) < 0.10
    # the section: P(alive) and at-risk not shown; it says why; the per-customer scores have no P(alive)
    pv = predicted_value(ds, period, s)
    assert pv.available and not pv.p_alive_shown
    html = tables_clv.clv_summary_table(pv, "EUR")
    assert "clv.at_risk" not in html and "P(alive) &lt;" not in html and "model without dropout" in html
    assert "NBD (r = " in tables_clv.model_note(pv) and "P(alive)" not in tables_clv.model_note(pv)
    assert "already left" not in tables_clv.ltv_vs_clv_note({"kpis": {"ltv": 500.0}}, pv, "EUR")
    scores = customer_scores(ds, period, s).to_pandas()
    assert scores.p_alive.isna().all() and (scores.expected_purchases > 0).all()


def test_no_prediction_only_when_even_the_nbd_cannot_be_fitted():
    """Everyone buys at exactly the same rate (every 7 days): the NBD's r and alpha run to infinity
    (the Poisson limit) as well, so there is no prediction — and it says why."""
    rows = []
    for i in range(80):
        first = pd.Timestamp("2023-06-01") + pd.Timedelta(days=i % 7)
        rows += [(f"P{i:03d}", first + pd.Timedelta(days=7 * k), 20.0 + (i + k) % 5)
                 for k in range(int((pd.Timestamp("2024-03-31") - first).days // 7) + 1)]
    ds = make_dataset(rows)
    core = pv_mod.clv_core(ds, parse_period("2024-Q1"))
    # BG/NBD: nobody stops; the NBD too runs off (r, alpha -> infinity): no fallback to a degenerate fit
    assert clv.dropout_unidentified(core.purchases) and core.purchases.model == "bgnbd" and core.fallback is None
    out = clv_block(ds, parse_period("2024-Q1"), core=core)
    assert out.block is None and out.reason


def test_no_backtest_on_less_history_than_the_holdout():
    """A 13-month log (Dec 2010 – Dec 2011) and the year 2011: the backtest would fit on one month to
    predict twelve, so it does not run; the block says why."""
    frame, _lam = _simulate_nbd(1500, r=1.5, alpha=6.0, start=date(2010, 12, 1), end=date(2011, 12, 31), seed=8)
    s = load_settings(None, **{"columns.segments": []})
    ds = dataset_from_frame(frame, s, now=NOW)
    b = clv_block(ds, parse_period("2011"), s).block
    assert b is not None and b["backtest"] is None
    assert b["backtest_reason"] == ("the data before 1 Jan 2011 cover 31 days, less than the 365 days of the period "
                                    "the backtest would predict")
    pv = predicted_value(ds, parse_period("2011"), s)
    assert pv.backtest is None and "31 days" in tables_clv.backtest_note(pv)
    # a quarter of the same log has 9 months of history for 3 months: the backtest runs
    q = clv_block(ds, parse_period("2011-Q4"), s).block
    assert q["backtest"] is not None and q["backtest_reason"] is None


def test_clv_group_titles_say_model_and_skip_small_groups():
    """A title comparing groups' CLV says it is the model's expectation and never names a group
    smaller than 30 customers (shown, light, and said so under the chart)."""
    cohorts = pd.DataFrame({"cohort": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
                            "customers": [400, 2, 350, 29], "clv_mean": [80.0, 500.0, 60.0, 5.0]})
    ax = plots_clv.clv_by_cohort(cohorts)
    assert title(ax) == "The model expects customers first buying in Jan 2024 to be worth most: €80 each (Mar 2024: €60)"
    assert any("fewer than 30 customers" in t.get_text() for t in ax.texts)
    segs = pd.DataFrame({"segment": ["vip", "email", "organic", "tiny"], "customers": [10, 300, 500, 3],
                         "clv_mean": [900.0, 120.0, 60.0, 1.0], "customer_share": [0.01, 0.37, 0.62, 0.0]})
    ax = plots_clv.clv_by_segment(segs, "channel")
    assert title(ax) == "The model expects Email customers to be worth most: €120 each (vs €60 for organic)"
    one_big = segs.assign(customers=[10, 300, 5, 3])
    assert not any(w in title(plots_clv.clv_by_segment(one_big, "channel")) for w in ("vip", "Vip", "organic", "tiny"))
    plt.close("all")
