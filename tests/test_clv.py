"""Predictive customer value (retention_report.clv): the published CDNOW estimates, special
functions against independent 40-digit mpmath evaluations, analytic gradients against finite
differences, the discounting integral, input rules, and the SQL-side compression on a hand-built
log and on the CDNOW sample.

CDNOW (tests/data, from the MIT-licensed lifetimes 0.11.3 wheel, see LICENSE-lifetimes.txt):
2,357 customers, calibration period = the 39 weeks to 1997-09-30. Published values:
BG/NBD r, alpha, a, b = 0.243, 4.414, 0.793, 2.426, LL = -9582.4 (Fader, Hardie & Lee 2005,
"Counting your customers the easy way", table 1); Gamma-Gamma p, q, gamma = 6.25, 3.74, 15.44
(Fader, Hardie & Lee 2005, "RFM and CLV"); Pareto/NBD r, alpha, s, beta = 0.553, 10.578, 0.606,
11.669 (Fader & Hardie's Pareto/NBD note, as in lifetimes' own tests).
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import clv_reference
import mpmath as mp
import numpy as np
import pandas as pd
import pytest
from helpers import make_dataset

from retention_report import clv

DATA = Path(__file__).parent / "data"
END = date(1997, 9, 30)
BGNBD_CDNOW = (0.243, 4.414, 0.793, 2.426)
PNBD_CDNOW = (0.553, 10.578, 0.606, 11.669)

mp.mp.dps = 40


# --------------------------------------------------------------------------------------------
# CDNOW data


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    """CDNOW_sample.txt: customer id, customer index (= ID of the summaries), date, CDs, dollars."""
    raw = pd.read_csv(
        DATA / "CDNOW_sample.txt", sep=r"\s+", header=None, names=["id", "ID", "date", "cds", "value"],
        dtype={"id": str, "date": str},
    )
    raw["day"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw


@pytest.fixture(scope="module")
def raw_summary(transactions) -> pd.DataFrame:
    """x, t_x, T (exact weeks) and the mean repeat value per customer, from the transactions of
    the calibration period; a purchase is a customer-day (two transactions on one day: one
    purchase of their summed value). Every CDNOW transaction counts, as in the paper (8 customers'
    only transaction is worth $0: SPEC §2 would not count those, see test_rfm_summary_on_cdnow)."""
    end = pd.Timestamp(END)
    days = transactions[transactions.day <= end].groupby(["ID", "day"], as_index=False)["value"].sum()
    first = days.groupby("ID")["day"].transform("min")
    days["repeat"] = np.where(days.day > first, days.value, 0.0)
    g = days.groupby("ID").agg(first=("day", "min"), last=("day", "max"), n=("day", "size"), repeat=("repeat", "sum"))
    out = pd.DataFrame(
        {
            "x": g.n - 1,
            "t_x": (g["last"] - g["first"]).dt.days / 7.0,
            "T": (end - g["first"]).dt.days / 7.0,
        }
    )
    out["m"] = np.where(out.x > 0, g.repeat / out.x.clip(lower=1), 0.0)
    return out


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    """The shipped calibration summary with zbar (x, t_x, T rounded to 2 decimals, zbar to cents)."""
    return pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv").set_index("ID")


def compressed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby(["x", "t_x", "T"]).size().reset_index(name="n")


def test_licence_note_names_the_source_and_holder():
    text = (DATA / "LICENSE-lifetimes.txt").read_text()
    assert "MIT License" in text and "Copyright (c) 2015, Cameron Davidson-Pilon" in text
    for name in ("CDNOW_sample.txt", "cdnow_customers_summary.csv", "cdnow_customers_summary_with_transactions.csv"):
        assert name in text and (DATA / name).exists()


def test_raw_transactions_match_the_shipped_summaries(raw_summary, summary):
    plain = pd.read_csv(DATA / "cdnow_customers_summary.csv").set_index("ID")
    assert len(raw_summary) == len(summary) == len(plain) == 2357
    assert (raw_summary.index == summary.index).all()
    assert (raw_summary.x == summary.x).all() and (plain.frequency == summary.x).all()
    # the summaries round weeks to 2 decimals and zbar to cents
    assert np.abs(raw_summary.t_x - summary.t_x).max() <= 0.005 + 1e-12
    assert np.abs(raw_summary["T"] - summary["T"]).max() <= 0.005 + 1e-12
    assert np.abs(raw_summary.m - summary.zbar).max() <= 0.005 + 1e-9
    assert np.allclose(plain.recency, summary.t_x) and np.allclose(plain["T"], summary["T"])
    # the paper's worked customer: x = 2, t_x = 30.43, T = 38.86, zbar = 22.35
    assert tuple(summary.loc[1, ["x", "t_x", "T", "zbar"]]) == (2, 30.43, 38.86, 22.35)


# --------------------------------------------------------------------------------------------
# published estimates


@pytest.mark.parametrize("source", ["summary", "raw"])
def test_bgnbd_reproduces_the_published_cdnow_fit(source, summary, raw_summary):
    frame = summary if source == "summary" else raw_summary
    rows = compressed(frame)
    assert len(rows) < 1100 and rows.n.sum() == 2357
    fit = clv.fit_bgnbd(rows.x, rows.t_x, rows["T"], rows.n)
    assert fit.converged and fit.model == "bgnbd" and fit.n_customers == 2357 and fit.n_rows == len(rows)
    assert tuple(round(v, 3) for v in fit.values) == BGNBD_CDNOW
    assert round(fit.log_likelihood, 1) == -9582.4
    assert not fit.degenerate


def test_compression_and_start_do_not_change_the_fit(summary):
    rows = compressed(summary)
    a = clv.fit_bgnbd(rows.x, rows.t_x, rows["T"], rows.n)
    b = clv.fit_bgnbd(summary.x, summary.t_x, summary["T"], start=(2.0, 10.0, 3.0, 0.5))
    np.testing.assert_allclose(a.values, b.values, rtol=2e-5)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, abs=1e-7)
    assert a.log_likelihood == pytest.approx(clv.bgnbd_log_likelihood(a.params, summary.x, summary.t_x, summary["T"]), abs=1e-8)


@pytest.mark.parametrize("source, gamma", [("summary", 15.448), ("raw", 15.444)])
def test_gamma_gamma_reproduces_the_published_cdnow_fit(source, gamma, summary, raw_summary):
    x, m = (summary.x, summary.zbar) if source == "summary" else (raw_summary.x, raw_summary.m)
    fit = clv.fit_gamma_gamma(x, m)
    assert fit.converged and fit.n_customers == 946 and fit.n_excluded == 0
    p, q, g = fit.values
    assert (round(p, 2), round(q, 2)) == (6.25, 3.74)
    assert abs(g - 15.44) <= 0.01
    assert round(g, 3) == gamma  # rounded mean spends vs the transactions' exact ones


def test_pareto_nbd_reproduces_the_published_cdnow_fit(summary):
    rows = compressed(summary)
    fit = clv.fit_pareto_nbd(rows.x, rows.t_x, rows["T"], rows.n)
    assert fit.converged
    np.testing.assert_allclose(fit.values, PNBD_CDNOW, atol=2e-3)
    assert round(fit.log_likelihood) == -9595
    # the flat direction (beta): our optimum is at least as good as the published point
    published = clv.pareto_nbd_log_likelihood(PNBD_CDNOW, rows.x, rows.t_x, rows["T"], rows.n)
    assert fit.log_likelihood >= published - 1e-9
    # and the whole log-likelihood agrees with an independent 30-digit evaluation
    with mp.workdps(30):
        ref = sum(n * mp_pnbd_ll(fit.values, x, tx, T) for x, tx, T, n in rows.itertuples(index=False))
    assert fit.log_likelihood == pytest.approx(float(ref), abs=1e-8)
    # BG/NBD fits CDNOW slightly better (FHL 2005)
    bg = clv.fit_bgnbd(rows.x, rows.t_x, rows["T"], rows.n)
    assert bg.aic < fit.aic


# --------------------------------------------------------------------------------------------
# independent references (mpmath, the published closed forms as printed)


def mp_bgnbd_ll(P, x, tx, T):
    r, al, a, b = map(mp.mpf, P)
    x, tx, T = mp.mpf(x), mp.mpf(tx), mp.mpf(T)
    common = mp.gamma(r + x) * al**r / mp.gamma(r)
    L = mp.beta(a, b + x) / mp.beta(a, b) * common / (al + T) ** (r + x)
    if x > 0:
        L += mp.beta(a + 1, b + x - 1) / mp.beta(a, b) * common / (al + tx) ** (r + x)
    return mp.log(L)


def mp_bgnbd_expected(P, t, x, tx, T):
    """FHL 2005 eq. (10) as printed."""
    r, al, a, b = map(mp.mpf, P)
    t, x, tx, T = map(mp.mpf, (t, x, tx, T))
    z = t / (al + T + t)
    num = (a + b + x - 1) / (a - 1) * (1 - ((al + T) / (al + T + t)) ** (r + x) * mp.hyp2f1(r + x, b + x, a + b + x - 1, z))
    den = 1 + (a / (b + x - 1) * ((al + T) / (al + tx)) ** (r + x) if x > 0 else 0)
    return num / den


def _mp_pnbd_terms(P, x, tx, T):
    r, al, s, be = map(mp.mpf, P)
    x, tx, T = map(mp.mpf, (x, tx, T))
    m, b = (al, s + 1) if al >= be else (be, r + x)
    a = r + s + x

    def F(t):
        return mp.hyp2f1(a, b, a + 1, abs(al - be) / (m + t)) / (m + t) ** a

    e1 = 1 / ((al + T) ** (r + x) * (be + T) ** s)
    e2 = s / (r + s + x) * (F(tx) - F(T))
    return e1, e2, mp.gamma(r + x) * al**r * be**s / mp.gamma(r)


def mp_pnbd_ll(P, x, tx, T):
    """Fader & Hardie (2005) Pareto/NBD note, section 3, as printed."""
    e1, e2, k = _mp_pnbd_terms(P, x, tx, T)
    return mp.log(k * (e1 + e2))


def mp_pnbd_expected(P, t, x, tx, T):
    """P(alive) (section 5) times the conditional expectation (section 6) of the note."""
    e1, e2, _ = _mp_pnbd_terms(P, x, tx, T)
    r, al, s, be = map(mp.mpf, P)
    t, x, T = map(mp.mpf, (t, x, T))
    cond = (r + x) * (be + T) / ((al + T) * (s - 1)) * (1 - ((be + T) / (be + T + t)) ** (s - 1))
    return e1 / (e1 + e2) * cond, e1 / (e1 + e2)


def mp_gg_ll(P, x, m):
    p, q, g = map(mp.mpf, P)
    x, m = mp.mpf(x), mp.mpf(m)
    return (mp.loggamma(p * x + q) - mp.loggamma(p * x) - mp.loggamma(q) + q * mp.log(g)
            + (p * x - 1) * mp.log(m) + p * x * mp.log(x) - (p * x + q) * mp.log(g + m * x))


# --------------------------------------------------------------------------------------------
# conditional expectations and P(alive)


def test_the_papers_worked_customer():
    # FHL 2005: x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases in the next 39 weeks
    e = clv.bgnbd_expected_purchases(BGNBD_CDNOW, 39.0, 2, 30.43, 38.86)
    assert round(float(e[0]), 3) == 1.226
    assert float(e[0]) == pytest.approx(float(mp_bgnbd_expected(BGNBD_CDNOW, 39, 2, 30.43, 38.86)), rel=1e-13)


def test_frequency_zero_with_a_plus_b_below_one_is_finite():
    # a + b + x - 1 = -0.19 < 0: the printed formula's 2F1 has a negative c (lifetimes gives NaN)
    P = (0.11, 2.24, 0.31, 0.50)
    e = float(clv.bgnbd_expected_purchases(P, 30.0, 0, 0.0, 1.0)[0])
    assert round(e, 4) == 0.5646
    assert e == pytest.approx(float(mp_bgnbd_expected(P, 30, 0, 0, 1)), rel=1e-13)
    # a + b + x - 1 = 0 exactly: the printed form is 0 x a pole; its limit
    P = (0.3, 0.02, 0.5, 0.5)
    e = float(clv.bgnbd_expected_purchases(P, 5000.0, 0, 0.0, 0.0)[0])
    eps = mp.mpf("1e-25")
    limit = sum(mp_bgnbd_expected((0.3, 0.02, 0.5, mp.mpf("0.5") + d), 5000, 0, 0, 0) for d in (eps, -eps)) / 2
    assert e == pytest.approx(float(limit), rel=1e-12)


def test_very_frequent_buyer_is_finite():
    for tx in (30.43, 38.86):
        e = float(clv.bgnbd_expected_purchases(BGNBD_CDNOW, 39.0, 1500, tx, 38.86)[0])
        ref = float(mp_bgnbd_expected(BGNBD_CDNOW, 39, 1500, tx, 38.86))
        assert math.isfinite(e) and e == pytest.approx(ref, rel=1e-12)
    assert float(clv.bgnbd_expected_purchases(BGNBD_CDNOW, 39.0, 1500, 38.86, 38.86)[0]) > 1000
    assert math.isfinite(clv.bgnbd_log_likelihood(BGNBD_CDNOW, [1500], [30.0], [38.86]))


@pytest.mark.parametrize(
    "P, t, x, tx, T",
    [
        (BGNBD_CDNOW, 52.14, 0, 0.0, 38.86),
        (BGNBD_CDNOW, 52.14, 1, 1.71, 38.86),
        (BGNBD_CDNOW, 0.5, 7, 20.0, 30.0),
        (BGNBD_CDNOW, 1000.0, 3, 10.0, 10.0),
        ((0.5, 4.0, 1.0 + 1e-9, 2.0), 52.0, 2, 10.0, 20.0),  # a ~ 1: 0/0 in the printed form
        ((0.5, 4.0, 1.0 - 1e-7, 2.0), 52.0, 0, 0.0, 20.0),
        ((2.0, 0.5, 3.0, 0.3), 52.0, 1, 0.5, 3.0),  # a > r + 2: the series' terms grow first
        ((0.3, 0.02, 0.5, 0.6), 5000.0, 0, 0.0, 0.0),  # z = 1 - 4e-6: integrated, not summed
        ((0.5, 0.01, 0.8, 2.0), 1000.0, 1, 0.0, 0.0),
        ((1.2, 30.0, 5.0, 40.0), 104.0, 60, 50.0, 52.0),
    ],
)
def test_bgnbd_expectation_matches_mpmath(P, t, x, tx, T):
    got = float(clv.bgnbd_expected_purchases(P, t, x, tx, T)[0])
    assert got == pytest.approx(float(mp_bgnbd_expected(P, t, x, tx, T)), rel=1e-12)


def test_bgnbd_p_alive():
    r, al, a, b = BGNBD_CDNOW
    p = clv.bgnbd_p_alive(BGNBD_CDNOW, [0, 2, 2], [0.0, 30.43, 38.86], [38.86, 38.86, 38.86])
    assert p[0] == 1.0  # no repeat purchase: cannot have dropped out
    assert p[1] == pytest.approx(1 / (1 + a / (b + 1) * ((al + 38.86) / (al + 30.43)) ** (r + 2)), rel=1e-14)
    assert p[2] == pytest.approx(1 / (1 + a / (b + 1)), rel=1e-14)  # bought on the last day


@pytest.mark.parametrize("x, tx, T", [(2, 30.43, 38.86), (0, 0.0, 38.86), (0, 0.0, 0.0), (5, 38.86, 38.86), (40, 10.0, 38.0)])
def test_pareto_nbd_expectation_and_p_alive_match_mpmath(x, tx, T):
    e = float(clv.pareto_nbd_expected_purchases(PNBD_CDNOW, 39.0, x, tx, T)[0])
    pa = float(clv.pareto_nbd_p_alive(PNBD_CDNOW, [x], [tx], [T])[0])
    ref_e, ref_pa = mp_pnbd_expected(PNBD_CDNOW, 39, x, tx, T)
    assert pa == pytest.approx(float(ref_pa), rel=1e-12)
    assert e == pytest.approx(float(ref_e), rel=1e-12)


@pytest.mark.parametrize(
    "P, x, tx, T",
    [
        (PNBD_CDNOW, 0, 0.0, 38.86),
        (PNBD_CDNOW, 3, 5.0, 38.86),
        (PNBD_CDNOW, 1500, 20.0, 38.86),
        ((0.55, 11.67, 0.61, 10.58), 2, 30.43, 38.86),  # alpha > beta
        ((0.55, 11.67, 0.61, 10.58), 200, 3.0, 38.86),
        ((1.0, 0.1, 0.5, 40.0), 0, 0.0, 5.0),  # z = 0.9975 at t = 0: summed to 2,000 terms
        ((0.8, 500.0, 2.0, 0.01), 0, 0.0, 2.0),  # z = 1 - 2e-5: integrated
        ((0.8, 500.0, 2.0, 0.01), 1, 0.001, 2.0),
        ((2.0, 5.0, 1.0, 5.0), 4, 3.0, 9.0),  # alpha = beta: z = 0
    ],
)
def test_pareto_nbd_log_likelihood_matches_mpmath(P, x, tx, T):
    got = clv.pareto_nbd_log_likelihood(P, [x], [tx], [T])
    assert got == pytest.approx(float(mp_pnbd_ll(P, x, tx, T)), rel=1e-12, abs=1e-11)


def test_bgnbd_and_gamma_gamma_log_likelihoods_match_mpmath(summary):
    rows = compressed(summary).sample(60, random_state=1)
    ref = sum(n * mp_bgnbd_ll(BGNBD_CDNOW, x, tx, T) for x, tx, T, n in rows.itertuples(index=False))
    got = clv.bgnbd_log_likelihood(BGNBD_CDNOW, rows.x, rows.t_x, rows["T"], rows.n)
    assert got == pytest.approx(float(ref), rel=1e-13)
    big = clv.bgnbd_log_likelihood(BGNBD_CDNOW, [1500, 0], [37.0, 0.0], [38.0, 1e4])
    assert big == pytest.approx(float(mp_bgnbd_ll(BGNBD_CDNOW, 1500, 37, 38) + mp_bgnbd_ll(BGNBD_CDNOW, 0, 0, 1e4)), rel=1e-13)
    rep = summary[summary.x > 0].head(80)
    P = (6.25, 3.74, 15.44)
    ref = sum(mp_gg_ll(P, x, m) for x, m in zip(rep.x, rep.zbar, strict=True))
    assert clv.gamma_gamma_log_likelihood(P, rep.x, rep.zbar) == pytest.approx(float(ref), rel=1e-13)


@pytest.mark.parametrize(
    "cp, c, z",
    [
        (0.5, 2.0, 0.0), (0.5, 2.0, 0.3), (3.0, 4.6, 0.9), (1500.3, 1501.9, 0.7), (0.6, 1500.0, 0.999),
        (2.0, 3.0 + 1e-9, 0.999), (1.2, 2.2, 0.99999), (40.0, 40.5, 1 - 1e-8), (0.05, 1.1, 0.9999),
    ],
)
def test_log_hyp2f1_and_its_derivatives_match_mpmath(cp, c, z):
    def f(a, b, y):
        return mp.log(mp.hyp2f1(1, a, b, y))

    got = [float(v[0]) for v in clv._log_hyp2f1_1(np.array([cp]), np.array([c]), np.array([z]))]
    ref = [f(cp, c, z), mp.diff(lambda v: f(v, c, z), cp), mp.diff(lambda v: f(cp, v, z), c), mp.diff(lambda v: f(cp, c, v), z)]
    for g, r in zip(got, ref, strict=True):
        assert g == pytest.approx(float(r), rel=1e-10, abs=1e-12)


# --------------------------------------------------------------------------------------------
# analytic gradients


def _fd_check(fun, params, rel=1e-6):
    ll, grad = fun(params)
    for i, p in enumerate(params):
        h = rel * p
        up = list(params)
        dn = list(params)
        up[i], dn[i] = p + h, p - h
        fd = (fun(tuple(up))[0] - fun(tuple(dn))[0]) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-6 * max(1.0, abs(ll)) / p), (i, grad[i], fd)


@pytest.fixture(scope="module")
def rows(summary) -> pd.DataFrame:
    r = compressed(summary)
    extra = pd.DataFrame({"x": [0, 1, 1500, 4], "t_x": [0.0, 0.001, 20.0, 12.0], "T": [0.0, 2.0, 38.86, 12.0], "n": [3, 1, 1, 2]})
    return pd.concat([r, extra], ignore_index=True)


@pytest.mark.parametrize("P", [BGNBD_CDNOW, (1.0, 0.5, 3.0, 0.4), (0.05, 40.0, 0.2, 8.0)])
def test_bgnbd_gradient_matches_finite_differences(rows, P):
    _fd_check(lambda p: clv.bgnbd_log_likelihood(p, rows.x, rows.t_x, rows["T"], rows.n, gradient=True), P)


@pytest.mark.parametrize(
    "P",
    [PNBD_CDNOW, (0.55, 11.67, 0.61, 10.58), (2.0, 0.3, 0.4, 60.0), (0.8, 500.0, 2.0, 0.01)],
    ids=["alpha<beta", "alpha>beta", "z-near-1-summed", "z-near-1-integrated"],
)
def test_pareto_nbd_gradient_matches_finite_differences(rows, P):
    sub = rows.iloc[::7] if P[1] > 100 else rows  # the integrated case is slower per row
    _fd_check(lambda p: clv.pareto_nbd_log_likelihood(p, sub.x, sub.t_x, sub["T"], sub.n, gradient=True), P)


@pytest.mark.parametrize("P", [(6.25, 3.74, 15.44), (0.5, 1.2, 300.0)])
def test_gamma_gamma_gradient_matches_finite_differences(summary, P):
    _fd_check(lambda p: clv.gamma_gamma_log_likelihood(p, summary.x, summary.zbar, gradient=True), P)


# --------------------------------------------------------------------------------------------
# spend, discounting, predictions


def test_gamma_gamma_expected_spend():
    P = (6.25, 3.74, 15.44)
    p, q, g = P
    pop = p * g / (q - 1)
    assert clv.gamma_gamma_population_mean(P) == pytest.approx(pop)
    e = clv.gamma_gamma_expected_spend(P, [2, 0, 3, 1], [22.35, 0.0, -4.0, 50.0])
    assert e[0] == pytest.approx(p * (g + 2 * 22.35) / (2 * p + q - 1))
    assert e[0] == pytest.approx((q - 1) / (2 * p + q - 1) * pop + 2 * p / (2 * p + q - 1) * 22.35)
    assert e[1] == e[2] == pytest.approx(pop)  # no repeat purchase / non-positive mean
    assert math.isnan(clv.gamma_gamma_expected_spend((1.0, 0.8, 10.0), [0], [0.0])[0])  # q <= 1: no mean
    fit = clv.fit_gamma_gamma([1, 2, 2, 3, 1, 4], [10.0, 12.0, -3.0, 9.0, 30.0, 11.0], [5, 3, 2, 1, 1, 2])
    assert fit.n_excluded == 2 and fit.n_customers == 12


def _mp_discounted(E, H, delta):
    """e^(-delta H) E(H) + delta int_0^H e^(-delta s) E(s) ds, adaptively."""
    with mp.workdps(20):
        return mp.e ** (-delta * H) * E(H) + delta * mp.quad(lambda s: mp.e ** (-delta * s) * E(s), [0, H])


@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
@pytest.mark.parametrize("x, tx, T", [(2, 30.43, 38.86), (0, 0.0, 0.0), (6, 37.0, 38.0)])
def test_discounted_purchases_match_an_adaptive_integral(model, x, tx, T):
    names, P = (("r", "alpha", "a", "b"), BGNBD_CDNOW) if model == "bgnbd" else (("r", "alpha", "s", "beta"), PNBD_CDNOW)
    fit = clv.FitResult(model, dict(zip(names, P, strict=True)), -9582.4, True, 2357, 1016)
    got = float(clv.discounted_expected_purchases(fit, [x], [tx], [T], horizon_days=730, annual_discount=0.15)[0])
    delta = math.log(1.15) / 365 * 7

    def E(s):  # the printed closed forms: FHL 2005 eq. (10); the Pareto/NBD note, sections 5 and 6
        if s == 0:
            return mp.mpf(0)
        return mp_bgnbd_expected(P, s, x, tx, T) if model == "bgnbd" else mp_pnbd_expected(P, s, x, tx, T)[0]

    assert got == pytest.approx(float(_mp_discounted(E, 730 / 7, delta)), rel=1e-10)
    # no discount: the expected purchases over the horizon
    plain = clv.discounted_expected_purchases(fit, [x], [tx], [T], horizon_days=730, annual_discount=0.0)
    assert plain[0] == pytest.approx(float(clv.expected_purchases(fit, 730 / 7, x, tx, T)[0]), rel=1e-14)


def test_predict_customers(summary):
    bg = clv.fit_bgnbd(summary.x, summary.t_x, summary["T"])
    gg = clv.fit_gamma_gamma(summary.x, summary.zbar)
    out = clv_reference.predict_customers(bg, gg, summary.x, summary.t_x, summary["T"], summary.zbar)
    assert list(out.columns) == ["x", "t_x", "T", "p_alive", "expected_purchases", "discounted_purchases", "expected_spend", "clv"]
    assert len(out) == 2357 and out[["expected_purchases", "clv"]].notna().all().all()
    assert out.p_alive[summary.x.values == 0].isna().all() and out.p_alive.dropna().between(0, 1).all()
    np.testing.assert_allclose(out.expected_purchases, clv.expected_purchases(bg, 365 / 7, summary.x, summary.t_x, summary["T"]), rtol=1e-13)
    np.testing.assert_allclose(out.clv, out.expected_spend * out.discounted_purchases, rtol=1e-15)
    assert (out.discounted_purchases < out.expected_purchases).all() or (out.expected_purchases == 0).any()
    # one year at 10%: discounted between E/1.1 and E
    ratio = out.discounted_purchases / out.expected_purchases
    assert ratio.between(1 / 1.1, 1).all()
    # per distinct history, without spend
    rows = compressed(summary)
    pn = clv.fit_pareto_nbd(rows.x, rows.t_x, rows["T"], rows.n)
    per = clv_reference.predict_customers(pn, None, rows.x, rows.t_x, rows["T"])
    assert "clv" not in per and per.p_alive.between(0, 1).all() and per.p_alive.notna().all()


# --------------------------------------------------------------------------------------------
# rules


@pytest.mark.parametrize(
    "args, message",
    [
        (([1, 2], [1.0], [2.0, 3.0]), "one length"),
        (([1.0], [np.nan], [2.0]), "finite"),
        (([1.5], [1.0], [2.0]), "whole numbers"),
        (([-1], [0.0], [2.0]), "whole numbers"),
        (([1], [3.0], [2.0]), "0 <= t_x <= T"),
        (([0], [1.0], [2.0]), "t_x must be 0"),
        (([1], [1.0], [2.0], [-1.0]), "weights"),
        (([1], [1.0], [2.0], [0.0]), "weights sum to 0"),
    ],
)
def test_input_rules(args, message):
    with pytest.raises(ValueError, match=message):
        clv.fit_bgnbd(*args)


def test_data_without_repeat_buyers_give_a_degenerate_fit():
    fit = clv.fit_bgnbd([0, 0, 0], [0.0, 0.0, 0.0], [5.0, 6.0, 7.0])
    assert fit.degenerate and fit.log_likelihood == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(clv_reference.predict_customers(fit, None, [0], [0.0], [5.0]).expected_purchases).all()


def test_parameter_rules():
    with pytest.raises(ValueError, match="positive and finite"):
        clv.bgnbd_log_likelihood((0.2, -1.0, 0.8, 2.0), [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="expected 4 parameters"):
        clv.bgnbd_p_alive((0.2, 1.0, 0.8), [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="missing parameter"):
        clv.pareto_nbd_p_alive({"r": 1.0, "alpha": 1.0, "s": 1.0}, [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="parameters are"):
        clv.FitResult("bgnbd", {"r": 1.0}, 0.0, True, 1, 1)
    with pytest.raises(ValueError, match="no repeat buyer"):
        clv.fit_gamma_gamma([0, 1], [0.0, -2.0])
    with pytest.raises(ValueError, match="horizon"):
        clv.bgnbd_expected_purchases(BGNBD_CDNOW, -1.0, 1, 1.0, 2.0)
    fit = clv.fit_gamma_gamma([1, 2, 3, 1], [10.0, 12.0, 9.0, 30.0])
    with pytest.raises(ValueError, match="BG/NBD or Pareto/NBD"):
        clv.expected_purchases(fit, 1.0, [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="annual_discount"):
        clv.discounted_expected_purchases(clv.fit_bgnbd([1, 0, 2], [1.0, 0.0, 3.0], [2.0, 4.0, 5.0]), [1], [1.0], [2.0], annual_discount=-1.0)


# --------------------------------------------------------------------------------------------
# compression in the engine


HAND_ROWS = [
    # A: two payments on 1 Jan are one purchase (70); 15 Jan holds only a refund (no purchase);
    # 22 Jan's refund does not reduce its gross (40); 5 Feb is after the end
    ("A", "2024-01-01 10:00", 50.0), ("A", "2024-01-01 15:00", 20.0), ("A", "2024-01-08 09:00", 30.0),
    ("A", "2024-01-15 12:00", -10.0), ("A", "2024-01-22 11:00", 40.0), ("A", "2024-01-22 18:00", -5.0),
    ("A", "2024-02-05 10:00", 99.0),
    ("B", "2024-01-10 10:00", 25.0),
    ("C", "2024-01-10 10:00", 10.0), ("C", "2024-01-31 23:00", 15.0),  # the end day counts
    ("D", "2024-02-01 10:00", 100.0),  # acquired after the end: not in the summary
    ("E", "2024-01-05 10:00", 0.0), ("E", "2024-01-10 10:00", 30.0),  # a 0 day is no purchase
    ("F", "2024-01-03 10:00", -5.0), ("F", "2024-01-20 10:00", 12.0), ("F", "2024-01-20 11:00", 8.0),
]


def test_rfm_summary_on_a_hand_built_log():
    ds = make_dataset(HAND_ROWS)
    end = date(2024, 1, 31)
    got = clv_reference.rfm_summary(ds.daily, ds.customers, end).to_pandas()
    # A: purchase days 1, 8, 22 Jan -> x = 2, t_x = 21 days, T = 30 days (1 -> 31 Jan)
    # B, E: one purchase on 10 Jan -> x = 0, T = 21 days; C: 10 and 31 Jan -> x = 1, t_x = T = 21
    # F: first purchase 20 Jan -> x = 0, T = 11 days
    expected = pd.DataFrame(
        {"x": [0, 0, 1, 2], "t_x_days": [0, 0, 21, 21], "T_days": [11, 21, 21, 30], "n": [1, 2, 1, 1]}
    )
    pd.testing.assert_frame_equal(got[["x", "t_x_days", "T_days", "n"]], expected, check_dtype=False)
    np.testing.assert_array_equal(got.t_x, got.t_x_days / 7)
    np.testing.assert_array_equal(got["T"], got.T_days / 7)
    assert got.x.dtype.kind == "i" and got.n.dtype.kind == "i"
    # repeat values: A (30 + 40) / 2 = 35, C 15 / 1 = 15
    mon = clv_reference.monetary_summary(ds.daily, ds.customers, "2024-01-31").to_pandas()
    pd.testing.assert_frame_equal(mon, pd.DataFrame({"x": [1, 2], "m": [15.0, 35.0], "n": [1, 1]}), check_dtype=False)
    per = clv_reference.customer_rfm(ds.daily, ds.customers, end).to_pandas().set_index("customer_id").sort_index()
    assert list(per.index) == ["A", "B", "C", "E", "F"]
    assert per.loc["A", "repeat_value"] == 70.0 and per.loc["B", "repeat_value"] == 0.0
    # an earlier end: A has one repeat purchase (8 Jan), C and F are not yet customers
    early = clv_reference.rfm_summary(ds.daily, ds.customers, "2024-01-09").to_pandas()
    assert early[["x", "t_x_days", "T_days", "n"]].values.tolist() == [[1, 7, 8, 1]]


def test_rfm_summary_on_cdnow_matches_the_shipped_summary(transactions, summary):
    frame = pd.DataFrame({"customer_id": transactions.ID.astype(str), "paid_at": transactions.day, "amount": transactions.value})
    ds = make_dataset(frame)
    per = clv_reference.customer_rfm(ds.daily, ds.customers, END).to_pandas()
    per.index = per.customer_id.astype(int)
    # 8 customers' only transaction is worth $0: not a purchase under SPEC §2, so not customers
    zero = set(transactions.ID) - set(per.index)
    assert len(per) == 2349 and len(zero) == 8
    assert (summary.loc[sorted(zero), "x"] == 0).all()
    s = summary.loc[per.index]
    assert (per.x == s.x).all()
    assert np.abs(per.t_x_days / 7 - s.t_x).max() <= 0.005 + 1e-12
    assert np.abs(per.T_days / 7 - s["T"]).max() <= 0.005 + 1e-12
    assert np.abs(np.where(per.x > 0, per.repeat_value / per.x.clip(lower=1), 0) - s.zbar).max() <= 0.005 + 1e-9
    # the compressed tables feed the fits; with the 8 added back, the paper's numbers
    rfm = clv_reference.rfm_summary(ds.daily, ds.customers, END).to_pandas()
    assert rfm.n.sum() == 2349 and len(rfm) < 1100
    zero_T = ((pd.Timestamp(END) - transactions[transactions.ID.isin(zero)].day).dt.days / 7).to_numpy()
    fit = clv.fit_bgnbd(
        np.r_[rfm.x, np.zeros(8)], np.r_[rfm.t_x, np.zeros(8)], np.r_[rfm["T"], zero_T], np.r_[rfm.n, np.ones(8)]
    )
    assert tuple(round(v, 3) for v in fit.values) == BGNBD_CDNOW
    mon = clv_reference.monetary_summary(ds.daily, ds.customers, END).to_pandas()
    gg = clv.fit_gamma_gamma(mon.x, mon.m, mon.n)
    assert gg.n_customers == 946 and round(gg.params["gamma"], 3) == 15.444


# --------------------------------------------------------------------------------------------
# the NBD without dropout (issue 26): nested in BG/NBD and Pareto/NBD, fitted when their dropout runs off

def test_nbd_is_the_no_dropout_limit_of_bgnbd_and_pareto_nbd():
    x, t_x, T = np.array([0, 1, 4, 9]), np.array([0.0, 3.0, 20.5, 30.0]), np.array([10.0, 12.0, 31.0, 40.0])
    nbd = clv.nbd_log_likelihood((0.7, 4.0), x, t_x, T)
    # by hand: sum of ln G(r+x) - ln G(r) + r ln alpha - (r+x) ln(alpha+T)
    r, a = 0.7, 4.0
    by_hand = sum(math.lgamma(r + xi) - math.lgamma(r) + r * math.log(a) - (r + xi) * math.log(a + Ti)
                  for xi, Ti in zip(x, T, strict=True))
    assert nbd == pytest.approx(by_hand, rel=1e-12)
    assert clv.bgnbd_log_likelihood((0.7, 4.0, 1e-12, 1.0), x, t_x, T) == pytest.approx(nbd, rel=1e-9)
    assert clv.pareto_nbd_log_likelihood((0.7, 4.0, 1e-12, 1.0), x, t_x, T) == pytest.approx(nbd, rel=1e-9)


def test_fit_nbd_recovers_a_known_process_and_predicts_its_rate():
    rng = np.random.default_rng(3)
    n = 20_000
    lam = rng.gamma(2.0, 1 / 8.0, n)  # r = 2, alpha = 8 weeks
    T = rng.uniform(5, 60, n)
    x = rng.poisson(lam * T)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), 1), 0.0)  # the last of x uniform times
    fit = clv.fit_nbd(x, t_x, T)
    assert fit.model == "nbd" and fit.converged and not fit.degenerate
    assert fit.params["r"] == pytest.approx(2.0, rel=0.08) and fit.params["alpha"] == pytest.approx(8.0, rel=0.08)
    # no dropout: P(alive) is 1 and the expectation is the posterior mean rate times the horizon
    assert (clv.p_alive(fit, x[:5], t_x[:5], T[:5]) == 1).all()
    e = clv.expected_purchases(fit, 52.0, x, t_x, T)
    assert e.sum() == pytest.approx(lam.sum() * 52.0, rel=0.03)
    assert clv.dropout_unidentified(clv.FitResult("bgnbd", {"r": 1.0, "alpha": 2.0, "a": 1e-9, "b": 3.0}, 0.0,
                                                  False, 1.0, 1))
    assert not clv.dropout_unidentified(clv.FitResult("bgnbd", {"r": 1.0, "alpha": 2.0, "a": 0.5, "b": 3.0}, 0.0,
                                                      True, 1.0, 1))
