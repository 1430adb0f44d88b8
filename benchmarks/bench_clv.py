"""Benchmark: the CLV numerical core (retention_report.clv) on compressed inputs.

Times, after imports, the median of --repeat runs of:

  cdnow     the CDNOW sample's calibration summary (tests/data, 2,357 customers, ~1,000 distinct
            histories): BG/NBD, Pareto/NBD and Gamma-Gamma fits, and predictions for every customer
  synthetic customers drawn from a BG/NBD (r, alpha, a, b) = (0.25, 4, 0.8, 2.5) with Gamma-Gamma
            spend (p, q, gamma) = (6, 4, 15), acquired uniformly over two years before the end of
            the calibration period, on a day grid (--customers, default 25,000 and 2,000,000):
            compression with numpy, the BG/NBD fit on the distinct (x, t_x, T) rows, the
            Gamma-Gamma fit on the distinct (x, m) rows (m in cents), the fit + per-customer
            predictions (p_alive, expected purchases, CLV over 365 days at 10%) — the figure
            issue 17 asks to stay under 0.5 s at 25k customers — and the Pareto/NBD fit.

Usage:  python benchmarks/bench_clv.py [--customers 25000 2000000] [--repeat 3] [--seed 1]
Prints one line per timing; nothing is asserted. On a busy machine the worker threads of the
OpenBLAS inside scipy (L-BFGS-B) can add ~100 ms to a fit; OPENBLAS_NUM_THREADS=1 removes that
(measured 2026-11-23: 25k customers, fit + predictions 372 ms with the default, 176 ms with 1).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from retention_report import clv

REPO = Path(__file__).resolve().parent.parent
CDNOW = REPO / "tests" / "data" / "cdnow_customers_summary_with_transactions.csv"


def simulate(n: int, seed: int, span_days: int = 730) -> pd.DataFrame:
    """n customer histories (x, t_x_days, T_days, m) from BG/NBD + Gamma-Gamma on a day grid."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = 0.25, 4.0, 0.8, 2.5
    p, q, gamma = 6.0, 4.0, 15.0
    T_days = rng.integers(0, span_days + 1, n)
    T = T_days / 7.0
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    arrivals = rng.poisson(lam * T)  # repeat purchases while alive
    lives = rng.geometric(drop)  # the repeat purchase after which the customer drops out
    x = np.minimum(arrivals, lives)
    # time of the x-th of `arrivals` uniform purchase times: T * Beta(x, arrivals - x + 1)
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), arrivals - x + 1), 0.0)
    t_x_days = np.where(x > 0, np.clip(np.ceil(t_x * 7.0), 1, None), 0).astype(np.int64)
    t_x_days = np.minimum(t_x_days, T_days)
    x = np.minimum(x, t_x_days)  # purchases fall on distinct days after the first
    t_x_days = np.where(x > 0, t_x_days, 0)
    nu = rng.gamma(q, 1.0 / gamma, n)
    m = np.where(x > 0, rng.gamma(p * np.maximum(x, 1), 1.0 / (nu * np.maximum(x, 1))), 0.0)
    return pd.DataFrame({"x": x, "t_x_days": t_x_days, "T_days": T_days, "m": np.round(m, 2)})


def compress(c: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rfm = c.groupby(["x", "t_x_days", "T_days"], sort=False).size().reset_index(name="n")
    rfm["t_x"] = rfm.t_x_days / 7.0
    rfm["T"] = rfm.T_days / 7.0
    rep = c[c.x > 0]
    mon = rep.groupby(["x", "m"], sort=False).size().reset_index(name="n")
    return rfm, mon


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def predict(purchases: clv.FitResult, spend: clv.FitResult, x, t_x, T, m=None) -> pd.DataFrame:
    """Per row: P(alive), expected purchases over a year, and CLV (discounted at 10% a year)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    out = pd.DataFrame({"p_alive": clv.p_alive(purchases, x, t_x, T),
                        "expected_purchases": clv.expected_purchases(purchases, 365.0 / 7.0, x, t_x, T)})
    spend_each = clv.gamma_gamma_expected_spend(spend, x, np.zeros_like(x) if m is None else np.asarray(m, float))
    out["clv"] = spend_each * clv.discounted_expected_purchases(purchases, x, t_x, T)
    return out


def fit_and_predict(rfm: pd.DataFrame, mon: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
    bg = clv.fit_bgnbd(rfm.x, rfm.t_x, rfm["T"], rfm.n)
    gg = clv.fit_gamma_gamma(mon.x, mon.m, mon.n)
    if customers is None:  # predictions per distinct history
        return predict(bg, gg, rfm.x, rfm.t_x, rfm["T"])
    return predict(bg, gg, customers.x, customers.t_x_days / 7.0, customers.T_days / 7.0, customers.m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, nargs="*", default=[25_000, 2_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    R = args.repeat

    s = pd.read_csv(CDNOW)
    rfm = s.groupby(["x", "t_x", "T"]).size().reset_index(name="n")
    print(f"CDNOW: {len(s):,} customers, {len(rfm):,} distinct (x, t_x, T)")
    t, bg = timed(lambda: clv.fit_bgnbd(rfm.x, rfm.t_x, rfm["T"], rfm.n), R)
    print(f"  BG/NBD fit         {t * 1e3:8.1f} ms  LL {bg.log_likelihood:.2f} {dict((k, round(v, 4)) for k, v in bg.params.items())}")
    t, pn = timed(lambda: clv.fit_pareto_nbd(rfm.x, rfm.t_x, rfm["T"], rfm.n), R)
    print(f"  Pareto/NBD fit     {t * 1e3:8.1f} ms  LL {pn.log_likelihood:.2f} {dict((k, round(v, 4)) for k, v in pn.params.items())}")
    t, gg = timed(lambda: clv.fit_gamma_gamma(s.x, s.zbar), R)
    print(f"  Gamma-Gamma fit    {t * 1e3:8.1f} ms  {dict((k, round(v, 4)) for k, v in gg.params.items())}")
    t, _ = timed(lambda: predict(bg, gg, s.x, s.t_x, s["T"], s.zbar), R)
    print(f"  predictions        {t * 1e3:8.1f} ms  (BG/NBD, {len(s):,} customers)")
    t, _ = timed(lambda: predict(pn, gg, s.x, s.t_x, s["T"], s.zbar), R)
    print(f"  predictions        {t * 1e3:8.1f} ms  (Pareto/NBD, {len(s):,} customers)")

    for n in args.customers:
        synthetic(n, args.seed, R)


def synthetic(n: int, seed: int, R: int) -> None:
    c = simulate(n, seed)
    t, (rfm, mon) = timed(lambda: compress(c), 1)
    print(f"synthetic: {n:,} customers, {len(rfm):,} distinct (x, t_x, T), {len(mon):,} distinct (x, m); "
          f"numpy/pandas compression {t:.2f} s (the report compresses in SQL)")
    t, bg = timed(lambda: clv.fit_bgnbd(rfm.x, rfm.t_x, rfm["T"], rfm.n), R)
    print(f"  BG/NBD fit         {t * 1e3:8.1f} ms  {bg.iterations} iterations, {dict((k, round(v, 3)) for k, v in bg.params.items())}")
    t, gg = timed(lambda: clv.fit_gamma_gamma(mon.x, mon.m, mon.n), R)
    print(f"  Gamma-Gamma fit    {t * 1e3:8.1f} ms  {dict((k, round(v, 3)) for k, v in gg.params.items())}")
    per_customer = c if n <= 100_000 else None
    t, pred = timed(lambda: fit_and_predict(rfm, mon, per_customer), R)
    what = f"{n:,} customers" if per_customer is not None else f"{len(rfm):,} distinct histories"
    print(f"  fit + predictions  {t * 1e3:8.1f} ms  (BG/NBD + Gamma-Gamma, predictions for {what}; mean CLV {pred.clv.mean():.2f})")
    t, pn = timed(lambda: clv.fit_pareto_nbd(rfm.x, rfm.t_x, rfm["T"], rfm.n), R)
    print(f"  Pareto/NBD fit     {t * 1e3:8.1f} ms  {pn.iterations} iterations, {dict((k, round(v, 3)) for k, v in pn.params.items())}")

if __name__ == "__main__":
    main()
