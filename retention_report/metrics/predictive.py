"""Predicted customer value of a report period (issue 17): the ``clv`` block of metrics.json and
the aggregates of the report section "Predicted customer value".

Data contract: a :class:`retention_report.data.Dataset` (its ``daily`` and ``customers`` tables),
a :class:`~retention_report.periods.Period` P and the ``[clv]`` settings. Everything uses only the
data up to P's end (the *calibration end*: P's end, or the last payment day when P is incomplete):

- per customer acquired by then, from purchases (SPEC §2): x = repeat purchases, t_x = time of the
  last purchase and T = age, both from the first purchase day in weeks (exact days / 7), and the
  mean value m of the repeat purchases (first purchase excluded) — computed in the engine in one
  grouped pass over the daily table and compressed there to distinct (x, t_x, T) rows with counts
  and sums, and to distinct (x, m) rows for the spend model (:func:`compress_histories`);
- BG/NBD (or Pareto/NBD, ``clv.model``) and Gamma-Gamma fitted by maximum likelihood
  (:mod:`retention_report.clv`);
- per history: P(alive), expected purchases over ``clv.horizon_days`` and their value discounted at
  ``clv.annual_discount``; summed to the base's expected purchases, revenue and CLV;
- the backtest: the same fit on the data up to the day before P starts, its prediction of P's
  purchases by those customers against what they bought.

Customers with the same (x, t_x, T) share every prediction except their spend, which is linear in
m ([FHL05b]: E(Z | x, m) = p (gamma + m x) / (p x + q - 1)), so the base's expected revenue and CLV
need per history only the count and the sum of m of its customers: exact, without one row per
customer in Python. Only the CLV distribution, the per-segment means and the CSV export of
per-customer scores read per-customer values — in the engine (:func:`customer_scores`).

Speed (2M customers, 10M payments): one grouped pass over the daily table gives both calibrations
(P's end and the day before P's start), cached as a numeric table and grouped three ways. The
BG/NBD likelihood on integer days is evaluated with per-day lookup tables (:class:`_DayRows`), and
the fit is a Newton polish on the exact rows of a fit on a 4-week grid of them — a few exact
evaluations instead of the ~50 of L-BFGS from scratch; the backtest starts from the main fit.
The optimum is the same maximum-likelihood estimate (tests compare with :func:`clv.fit_bgnbd`).
The last computation is kept for its data set (weakly referenced), so the metrics.json block and
the report section of one run share one fit: :func:`clv_block` and :func:`predicted_value` with
the same data set, period and settings compute it once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from .. import clv
from ..i18n import N_
from ..periods import Period
from ._common import lit

__all__ = [
    "ClvBlock",
    "PredictedValue",
    "Reason",
    "clv_block",
    "clv_options",
    "compress_histories",
    "customer_histories",
    "customer_scores",
    "fit_purchases",
    "fit_spend",
    "predicted_value",
]

# the model names of the config and of metrics.json
_PURCHASE_MODEL = {"bg_nbd": "bgnbd", "pareto_nbd": "pareto_nbd"}
_PARAM_KEYS = {"bgnbd": ("r", "alpha", "a", "b"), "pareto_nbd": ("r", "alpha", "s", "beta")}
_COARSE_DAYS = 28  # grid of the starting fit (exact rows are polished from it)
_SMALL = 20_000  # fewer distinct histories: plain L-BFGS on the exact rows is fast enough
# money sums rounded to this many decimals: a parallel float sum differs in its last bits from run
# to run and engine to engine; rounded, the same data give the same m values, rows and fits
_MONEY_DECIMALS = 6


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class _Options:
    enabled: bool = True
    model: str = "bg_nbd"
    horizon_days: int = 365
    annual_discount: float = 0.10
    at_risk_threshold: float = 0.5
    min_customers: int = 50

    def key(self) -> tuple[Any, ...]:
        return (self.enabled, self.model, self.horizon_days, self.annual_discount, self.at_risk_threshold,
                self.min_customers)


def clv_options(settings: Any = None) -> _Options:
    """The ``[clv]`` settings from a :class:`~retention_report.config.Settings`, its ``ClvSettings``,
    a mapping of the same keys, a Dataset (its settings) or None (defaults)."""
    if settings is None:
        return _Options()
    if isinstance(settings, _Options):
        return settings
    if hasattr(settings, "settings") and not hasattr(settings, "clv"):  # a Dataset
        return clv_options(settings.settings)
    section = getattr(settings, "clv", settings)
    if hasattr(section, "model_dump"):
        section = section.model_dump()
    if not isinstance(section, Mapping):
        raise TypeError(f"expected Settings, ClvSettings or a mapping, got {type(settings).__name__}")
    names = _Options.__dataclass_fields__
    return _Options(**{k: v for k, v in section.items() if k in names})


# --------------------------------------------------------------------------------------------
# the engine side


def customer_histories(daily: Any, end: date, backtest_end: date | None = None) -> Any:
    """Per customer with a purchase on or before ``end``: the history the models read, in days.

    Parameters
    ----------
    daily : ibis Table
        customer_id, day, gross, is_purchase (:func:`retention_report.data.build_daily`).
    end : date
        Calibration end (inclusive).
    backtest_end : date, optional
        A second, earlier calibration end (the day before the report period): adds its history.

    Returns
    -------
    ibis Table
        customer_id, acquired (first purchase day), ``x`` = purchase days up to ``end`` - 1,
        ``t_x_days`` (first to last of them), ``T_days`` (first to ``end``), ``value`` = gross of
        those purchase days, ``m`` = mean value of the repeat purchases (0 when x = 0); with
        ``backtest_end``: ``x0``, ``t_x0_days``, ``T0_days`` as of that day (null for customers
        acquired after it) and ``actual`` = their purchase days after it, up to ``end``.

    One grouped pass over the daily table, no join: the first purchase day's gross is the gross at
    the minimum day (one daily row per customer and day), so repeat value = value - that.
    """
    e1 = lit(end)
    p = daily.filter(daily.is_purchase & (daily.day <= e1))
    aggs: dict[str, Any] = {
        "acquired": p.day.min(),
        "_days": p.count(),
        "_last": p.day.max(),
        "value": p.gross.sum(),
        "_first_gross": p.gross.argmin(p.day),
    }
    if backtest_end is not None:
        e0 = lit(backtest_end)
        aggs["_days0"] = p.count(where=p.day <= e0)
        aggs["_last0"] = p.day.max(where=p.day <= e0)
    g = p.group_by("customer_id").aggregate(**aggs)
    x = (g._days - 1).cast("int64")
    repeat = (g.value - g._first_gross).cast("float64").round(_MONEY_DECIMALS)
    cols: dict[str, Any] = {
        "customer_id": g.customer_id,
        "acquired": g.acquired,
        "x": x,
        "t_x_days": g._last.delta(g.acquired, unit="day").cast("int64"),
        "T_days": e1.delta(g.acquired, unit="day").cast("int64"),
        "value": g.value.cast("float64").round(_MONEY_DECIMALS),
        "m": (x > 0).ifelse(repeat / x.cast("float64"), 0.0),
    }
    if backtest_end is not None:
        before = g._days0 > 0
        cols["x0"] = before.ifelse((g._days0 - 1).cast("int64"), _null("int64"))
        cols["t_x0_days"] = before.ifelse(g._last0.delta(g.acquired, unit="day").cast("int64"), _null("int64"))
        cols["T0_days"] = before.ifelse(lit(backtest_end).delta(g.acquired, unit="day").cast("int64"),
                                        _null("int64"))
        cols["actual"] = before.ifelse((g._days - g._days0).cast("int64"), _null("int64"))
    return g.select(**cols)


def _null(dtype: str) -> Any:
    import ibis

    return ibis.null().cast(dtype)


@dataclass(frozen=True)
class Compressed:
    """The engine's compressed histories (small numpy-backed frames).

    ``histories``: x, t_x_days, T_days, n (customers), n_m (repeat buyers with m > 0), sum_m
    (their sum of m), value (gross to date), sorted by x, T_days, t_x_days. ``spend``: x >= 1,
    m, n. ``backtest``: x, t_x_days, T_days, n, actual (purchases after the backtest end) of the
    customers acquired by then, sorted likewise (None without a backtest end).
    """

    histories: pd.DataFrame
    spend: pd.DataFrame
    backtest: pd.DataFrame | None


def _frame(table: Any) -> pd.DataFrame:
    # one block per column: no consolidating copy of a million rows
    return table.to_pyarrow().to_pandas(split_blocks=True)


def compress_histories(daily: Any, end: date, backtest_end: date | None = None) -> Compressed:
    """Run :func:`customer_histories` once (cached in the engine, numeric columns only) and
    compress it three ways: distinct (x, t_x, T) with counts and spend sums, distinct (x, m) of
    the repeat buyers, and distinct backtest histories with their actual purchases."""
    h = customer_histories(daily, end, backtest_end).drop("customer_id", "acquired")
    cached = h.cache()
    try:
        own = (cached.x > 0) & (cached.m > 0)
        a = cached.group_by(["x", "t_x_days", "T_days"]).aggregate(
            n=cached.count(), n_m=cached.count(where=own), sum_m=cached.m.sum(where=own).fill_null(0.0),
            value=cached.value.sum(),
        ).order_by(["x", "T_days", "t_x_days"])
        r = cached.filter(cached.x > 0)
        c = r.group_by(["x", "m"]).aggregate(n=r.count()).order_by(["x", "m"])
        histories = _frame(a)
        spend = _frame(c)
        back = None
        if backtest_end is not None:
            b0 = cached.filter(cached.x0.notnull())
            b = b0.group_by([b0.x0.name("x"), b0.t_x0_days.name("t_x_days"), b0.T0_days.name("T_days")]).aggregate(
                n=b0.count(), actual=b0.actual.sum()
            ).order_by(["x", "T_days", "t_x_days"])
            back = _frame(b)
    finally:
        cached.release()
    return Compressed(histories, spend, back)


# --------------------------------------------------------------------------------------------
# fitting: BG/NBD on integer days, Newton-polished from a coarse fit


class _DayRows:
    """BG/NBD rows (x, t_x_days, T_days, weights) with per-day lookup tables: the likelihood of
    [FHL05a] eq. (6) exactly as :func:`clv.bgnbd_log_likelihood` (same softplus form), but
    ln(alpha + d/7) and 1/(alpha + d/7) are computed once per day and the terms that are linear in
    them are summed per day, so an evaluation costs a few array passes over the repeat rows."""

    def __init__(self, x: np.ndarray, t_x_days: np.ndarray, T_days: np.ndarray, w: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.int64)
        tx = np.asarray(t_x_days, dtype=np.int64)
        T = np.asarray(T_days, dtype=np.int64)
        w = np.asarray(w, dtype=float)
        keep = w > 0
        x, tx, T, w = x[keep], tx[keep], T[keep], w[keep]
        self.N = float(w.sum())
        self.ux, xinv = _unique_ints(x)
        self.x, self.xinv, self.tx, self.T, self.w = x, xinv, tx, T, w
        self.uxf = self.ux.astype(float)
        self.Wx = np.bincount(xinv, weights=w, minlength=len(self.ux))
        days = np.arange(int(T.max()) + 1 if len(T) else 1, dtype=float) / clv.DAYS_PER_WEEK
        self.days = days
        self.W_T = np.bincount(T, weights=w, minlength=len(days))
        self.X_T = np.bincount(T, weights=w * x, minlength=len(days))
        rep = x > 0
        self.xi = xinv[rep]
        self.xr = x[rep].astype(float)
        self.Ti, self.txi, self.wr = T[rep], tx[rep], w[rep]
        self.n_rows = int(len(x))

    def ll(self, params: tuple[float, ...], gradient: bool = True) -> tuple[float, np.ndarray | None]:
        r, alpha, a, b = params
        ux, Wx, N = self.uxf, self.Wx, self.N
        gx = (special.gammaln(r + ux) - special.gammaln(r) + special.gammaln(b + ux) - special.gammaln(b)
              - special.gammaln(a + b + ux) + special.gammaln(a + b))
        L = np.log(alpha + self.days)
        rWX = r * self.W_T + self.X_T
        ll = clv._dot(Wx, gx) + N * r * math.log(alpha) - clv._dot(rWX, L)
        cx = math.log(a) - np.log(b + ux - 1.0, where=ux > 0, out=np.zeros_like(ux))
        delta = L[self.Ti] - L[self.txi]
        rx = r + self.xr
        D = cx[self.xi] + rx * delta
        ll += clv._dot(self.wr, np.logaddexp(0.0, D))
        if not gradient:
            return ll, None
        sig = self.wr * special.expit(D)
        inv = 1.0 / (alpha + self.days)
        psi_ab = special.digamma(a + b)
        psi_abx = special.digamma(a + b + ux)
        g_r = clv._dot(Wx, special.digamma(r + ux) - special.digamma(r)) + N * math.log(alpha)
        g_r += -clv._dot(self.W_T, L) + clv._dot(sig, delta)
        g_alpha = N * r / alpha - clv._dot(rWX, inv) + clv._dot(sig, rx * (inv[self.Ti] - inv[self.txi]))
        sig_x = np.bincount(self.xi, weights=sig, minlength=len(ux))
        g_a = clv._dot(Wx, psi_ab - psi_abx) + float(sig_x.sum()) / a
        g_b = clv._dot(Wx, special.digamma(b + ux) - special.digamma(b) + psi_ab - psi_abx)
        rep = ux > 0
        g_b -= clv._dot(sig_x[rep], 1.0 / (b + ux[rep] - 1.0))
        return ll, np.array([g_r, g_alpha, g_a, g_b])


def _unique_ints(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of an int array and the inverse index (O(n) when sorted, as the engine
    returns the histories)."""
    if len(x) and np.all(x[1:] >= x[:-1]):
        new = np.r_[True, x[1:] != x[:-1]]
        return x[new], np.cumsum(new) - 1
    u, inv = np.unique(x, return_inverse=True)
    return u, inv.ravel()


def _fd_hessian(obj: Any, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    k = len(theta)
    H = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (obj(theta + e)[1] - obj(theta - e)[1]) / (2 * h)
    return (H + H.T) / 2


def _newton(obj: Any, theta: np.ndarray, H: np.ndarray, tol: float = 1e-9, gtol: float = 1e-10,
            max_iter: int = 40) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, int, bool]:
    """Minimise ``obj`` (theta -> (f, gradient)) by quasi-Newton steps from ``theta`` with the
    starting Hessian ``H`` (BFGS-updated, Armijo backtracking); converged when the next step would
    move every log-parameter by less than ``tol`` (about tol relative in the parameters) or the
    gradient of -LL/N is below ``gtol`` (where -LL/N itself no longer changes in 16 digits)."""
    f, g = obj(theta)
    if not math.isfinite(f):
        return theta, f, g, H, 0, False
    for it in range(1, max_iter + 1):
        try:
            step = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return theta, f, g, H, it, False
        slope = float(g @ step)
        if float(np.max(np.abs(step))) < tol or float(np.max(np.abs(g))) < gtol:  # at the optimum
            return theta, f, g, H, it, True
        if not slope < 0:  # not a descent direction: the Hessian is off
            return theta, f, g, H, it, False
        t = 1.0
        while True:
            fn, gn = obj(theta + t * step)
            # Armijo, with the rounding of f allowed for (near the optimum f changes in its last digits)
            if math.isfinite(fn) and fn <= f + 1e-4 * t * slope + 1e-14 * abs(f):
                break
            t /= 2
            if t < 1e-4:
                return theta, f, g, H, it, False
        s, y = t * step, gn - g
        theta, f, g = theta + s, fn, gn
        if np.abs(theta).max() > 25:  # running off to 0 or infinity: leave it to the bounded fit
            return theta, f, g, H, it, False
        ys = float(y @ s)
        if ys > 1e-300:
            Hs = H @ s
            H = H - np.outer(Hs, Hs) / float(s @ Hs) + np.outer(y, y) / ys
    return theta, f, g, H, max_iter, False


@dataclass
class _PurchaseFit:
    fit: clv.FitResult
    hessian: np.ndarray | None = None  # of -LL/N in log-parameters (BG/NBD polish)


def _coarse_rows(x: np.ndarray, tx: np.ndarray, T: np.ndarray, n: np.ndarray, days: int,
                 xs_inv: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """The histories on a grid of ``days``: t_x and T at the middle of their cell (capped so that
    t_x <= T), counts summed — a few thousand rows whose fit starts the exact one."""
    xs, xinv = xs_inv if xs_inv is not None else _unique_ints(np.asarray(x))
    a = tx // days
    c = T // days
    K = int(c.max()) + 1
    key = (xinv.astype(np.int64) * K + a) * K + c
    if len(xs) * K * K <= 4 * len(key) + 1_000_000:  # dense cells: count without sorting
        w = np.bincount(key, weights=n, minlength=len(xs) * K * K)
        uk = np.flatnonzero(w)
        w = w[uk]
    else:
        uk, inv = np.unique(key, return_inverse=True)
        w = np.bincount(inv.ravel(), weights=n)
    cx = xs[uk // (K * K)].astype(float)
    cT = ((uk % K) * days + (days - 1) / 2) / clv.DAYS_PER_WEEK
    ctx = np.where(cx > 0, np.minimum(((uk // K) % K * days + (days - 1) / 2) / clv.DAYS_PER_WEEK, cT), 0.0)
    return cx, ctx, cT, w


def fit_purchases(model: str, x: Any, t_x_days: Any, T_days: Any, n: Any, start: _PurchaseFit | None = None) -> _PurchaseFit:
    """Maximum-likelihood fit of the purchase model (``"bgnbd"`` or ``"pareto_nbd"``) to histories
    in whole days (t_x_days, T_days; weeks = days / 7 exactly), weighted by ``n``.

    BG/NBD with many distinct histories: quasi-Newton steps on the exact rows (:class:`_DayRows`)
    from ``start`` (a previous fit, e.g. the main one for the backtest) or from a fit on a 4-week
    grid; falls back to :func:`clv.fit_bgnbd` (L-BFGS-B) if the steps do not converge. Otherwise,
    and for Pareto/NBD, the :mod:`retention_report.clv` fits.
    """
    x = np.asarray(x, dtype=np.int64)
    tx = np.asarray(t_x_days, dtype=np.int64)
    T = np.asarray(T_days, dtype=np.int64)
    n = np.asarray(n, dtype=float)
    wk = clv.DAYS_PER_WEEK
    fitter = clv.fit_bgnbd if model == "bgnbd" else clv.fit_pareto_nbd
    if model != "bgnbd" or len(x) < _SMALL:
        begin = start.fit.params if start is not None and start.fit.model == model else None
        if begin is None and model != "bgnbd" and len(x) >= _SMALL:
            cx, ctx, cT, cw = _coarse_rows(x, tx, T, n, _COARSE_DAYS)
            begin = fitter(cx, ctx, cT, cw).params
        return _PurchaseFit(fitter(x, tx / wk, T / wk, n, start=begin))
    rows = _DayRows(x, tx, T, n)

    def obj(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.exp(theta)
        ll, g = rows.ll(tuple(p))
        if not math.isfinite(ll):
            return math.inf, np.zeros_like(theta)
        return -ll / rows.N, -(g * p) / rows.N

    if start is not None and start.hessian is not None and start.fit.model == "bgnbd":
        theta0, H0 = np.log(np.asarray(start.fit.values)), start.hessian
    else:
        cx, ctx, cT, cw = _coarse_rows(rows.x, rows.tx, rows.T, rows.w, _COARSE_DAYS, (rows.ux, rows.xinv))
        coarse = clv.fit_bgnbd(cx, ctx, cT, cw)
        theta0 = np.log(np.asarray(coarse.values))
        cd = clv._Data(cx, ctx, cT, cw)

        def cobj(theta: np.ndarray) -> tuple[float, np.ndarray]:
            p = np.exp(theta)
            ll, g = clv._bgnbd_ll(tuple(p), cd, True)
            return -ll / cd.N, -(g * p) / cd.N

        H0 = _fd_hessian(cobj, theta0)
    theta, f, g, H, iters, ok = _newton(obj, theta0, H0)
    if not ok or not np.all(np.linalg.eigvalsh(H) > 0):
        fit = clv.fit_bgnbd(x, tx / wk, T / wk, n, start=tuple(np.exp(theta0)))
        return _PurchaseFit(fit)
    p = np.exp(theta)
    fit = clv.FitResult(
        model="bgnbd",
        params=dict(zip(_PARAM_KEYS["bgnbd"], (float(v) for v in p), strict=True)),
        log_likelihood=float(-f * rows.N),
        converged=True,
        n_customers=rows.N,
        n_rows=rows.n_rows,
        iterations=iters,
        message="quasi-Newton on the exact histories from a 4-week-grid fit",
    )
    return _PurchaseFit(fit, H)


def fit_spend(x: Any, m: Any, n: Any) -> clv.FitResult:
    """Maximum-likelihood Gamma-Gamma fit to repeat buyers' (x, mean repeat value m, count n).

    Many rows: quasi-Newton steps on the exact rows from a fit on m binned to 2% (per x; each bin
    at its customers' mean m), with that fit's Hessian — three or four exact evaluations instead
    of L-BFGS's dozens; :func:`clv.fit_gamma_gamma` when they do not converge and for few rows.
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    if len(x) < _SMALL:
        return clv.fit_gamma_gamma(x, m, n)
    d = clv._Spend(x, m, n)
    b = np.floor(np.log(d.m) / 0.02).astype(np.int64)
    b -= b.min()
    K = int(b.max()) + 1
    xs, xi = _unique_ints(d.x.astype(np.int64))
    uk, inv = np.unique(xi.astype(np.int64) * K + b, return_inverse=True)
    inv = inv.ravel()
    w = np.bincount(inv, weights=d.w)
    cm = np.bincount(inv, weights=d.w * d.m) / w
    cx = xs[uk // K].astype(float)
    coarse = clv.fit_gamma_gamma(cx, cm, w)
    dc = clv._Spend(cx, cm, w)

    def objective(data: Any) -> Any:
        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            p = np.exp(theta)
            ll, g = clv._gg_ll(tuple(p), data, True)
            if not math.isfinite(ll):
                return math.inf, np.zeros_like(theta)
            return -ll / data.N, -(g * p) / data.N
        return f

    theta0 = np.log(np.asarray(coarse.values))
    theta, f, _g, H, iters, ok = _newton(objective(d), theta0, _fd_hessian(objective(dc), theta0))
    if not ok or not np.all(np.linalg.eigvalsh(H) > 0):
        return clv.fit_gamma_gamma(x, m, n, start=coarse.params)
    return clv.FitResult(
        model="gamma_gamma",
        params=dict(zip(("p", "q", "gamma"), (float(v) for v in np.exp(theta)), strict=True)),
        log_likelihood=float(-f * d.N),
        converged=True,
        n_customers=d.N,
        n_rows=int(len(d.x)),
        iterations=iters,
        message="quasi-Newton on the exact values from a fit on 2% bins",
        n_excluded=d.n_excluded,
    )


# --------------------------------------------------------------------------------------------
# predictions per history


def _distinct_xT(x: np.ndarray, T_days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (x, T) of rows and the inverse index (O(n) for rows sorted by x, T)."""
    if len(x) and np.all((np.diff(x) > 0) | ((np.diff(x) == 0) & (np.diff(T_days) >= 0))):
        new = np.r_[True, (x[1:] != x[:-1]) | (T_days[1:] != T_days[:-1])]
        return x[new], T_days[new], np.cumsum(new) - 1
    key = x.astype(np.int64) * (int(T_days.max()) + 1) + T_days
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return x[first], T_days[first], inv.ravel()


def _p_alive(fit: clv.FitResult, x: np.ndarray, tx_days: np.ndarray, T_days: np.ndarray) -> np.ndarray:
    wk = clv.DAYS_PER_WEEK
    if fit.model == "nbd":  # no dropout: alive by construction
        return np.ones(len(x))
    if fit.model == "bgnbd":  # [FHL05a]: 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)) for x > 0
        r, alpha, a, b = fit.values
        out = np.ones(len(x))
        rep = x > 0
        xr = x[rep].astype(float)
        D = math.log(a) - np.log(b + xr - 1.0) + (r + xr) * (
            np.log(alpha + T_days[rep] / wk) - np.log(alpha + tx_days[rep] / wk))
        out[rep] = special.expit(-D)
        return out
    return clv.p_alive(fit, x, tx_days / wk, T_days / wk)


def _alive_expectation(fit: clv.FitResult, x: np.ndarray, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    return clv._alive_expectation(fit.model, tuple(fit.values), x, T, t)


def _predict(fit: clv.FitResult, x: np.ndarray, tx_days: np.ndarray, T_days: np.ndarray, horizon_days: float,
             annual_discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per history: P(alive), expected purchases over the horizon and their discounted count
    (:func:`clv.discounted_expected_purchases`), the conditional expectations once per (x, T)."""
    ux, uT, inv = _distinct_xT(x, T_days)
    H, delta, v, wv = clv._discounting(horizon_days, annual_discount, 12)
    eH, disc = clv._discounted_alive(fit.model, tuple(fit.values), ux.astype(float), uT / clv.DAYS_PER_WEEK, H,
                                     delta, v, wv)
    pa = _p_alive(fit, x, tx_days, T_days)
    return pa, pa * eH[inv], pa * disc[inv]


def _spend_sums(spend: clv.FitResult, x: np.ndarray, n: np.ndarray, n_m: np.ndarray, sum_m: np.ndarray) -> np.ndarray:
    """Sum over each history's customers of the Gamma-Gamma expected value of a purchase:
    p (gamma n_m + x sum_m) / (p x + q - 1) for the n_m repeat buyers with m > 0, the population
    mean p gamma / (q - 1) for the others ([FHL05b]; :func:`clv.gamma_gamma_expected_spend`)."""
    p, q, g = spend.values
    pop = p * g / (q - 1.0)
    own = p * (g * n_m + x * sum_m) / (p * x + q - 1.0)
    out: np.ndarray = (n - n_m) * pop + np.where(n_m > 0, own, 0.0)
    return out


# --------------------------------------------------------------------------------------------
# the computation for a period (shared by the block and the section, kept in ds.memo)


@dataclass
class _Core:
    options: _Options
    calibration_end: date | None
    backtest_end: date | None
    reason: str | None = None
    purchases: clv.FitResult | None = None
    spend: clv.FitResult | None = None
    rows: pd.DataFrame | None = None  # histories with predictions (per history, see _predictions)
    correlation: float | None = None
    backtest_fit: clv.FitResult | None = None
    backtest_rows: pd.DataFrame | None = None
    backtest_reason: str | None = None
    observed_days: int = 0  # days of P with data (the backtest's horizon)
    # why the predictions come from the NBD without dropout instead of the configured model (None: they do not)
    fallback: str | None = None

    @property
    def p_alive_shown(self) -> bool:
        """P(alive) and the customers at risk mean something (not under the no-dropout NBD)."""
        return self.purchases is None or self.purchases.model != "nbd"


def _fmt_day(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


class Reason(str):
    """Why there is no prediction or backtest: the English sentence (metrics.json's ``clv_reason``)
    that also keeps its message ``template`` and ``params`` (counts as int, days as date), so the
    report can say it in the reader's language (:func:`retention_report.tables_clv.reason_text`)."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Reason:
        shown = {k: (_fmt_day(v) if isinstance(v, date) else f"{v:,}" if isinstance(v, int) else v)
                 for k, v in params.items()}
        obj = super().__new__(cls, template % shown if params else template)
        obj.template = template
        obj.params = params
        return obj


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float | None:
    if len(x) < 2 or w.sum() <= 0:
        return None
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    cov = np.average((x - mx) * (y - my), weights=w)
    vx, vy = np.average((x - mx) ** 2, weights=w), np.average((y - my) ** 2, weights=w)
    if vx <= 0 or vy <= 0:
        return None
    return float(cov / math.sqrt(vx * vy))


def _check_base(h: pd.DataFrame, end: date, opts: _Options) -> str | None:
    customers = int(h["n"].sum())
    if customers < opts.min_customers:
        return Reason(N_("only %(customers)s customers had bought by %(day)s; the model needs at least "
                         "%(minimum)s (clv.min_customers)"), customers=customers, day=end, minimum=opts.min_customers)
    if not (h["x"] > 0).any():
        return Reason(N_("no customer had bought twice by %(day)s: the purchase model needs repeat buyers"), day=end)
    return None


def _model_problem(fit: clv.FitResult) -> str | None:
    if not fit.converged:
        return Reason(N_("the purchase model's fit did not converge on these data"))
    if fit.degenerate:
        return Reason(N_("the data do not identify the purchase model (a parameter runs off to 0 or infinity, "
                         "e.g. every customer buys at the same rate)"))
    return None


_DROPOUT_NAME = {"bgnbd": "BG/NBD", "pareto_nbd": "Pareto/NBD"}


def _without_dropout(fit: _PurchaseFit, h: pd.DataFrame) -> tuple[clv.FitResult, str | None]:
    """The purchase model to predict with: ``fit`` itself, or — when it cannot be used because its
    dropout process ran to the edge "nobody drops out" (:func:`clv.dropout_unidentified`: nobody
    has been seen to stop yet) — the nested NBD without dropout fitted to the same histories, with
    the reason. The NBD is taken only when its own fit is sound and it fits as well: its
    log-likelihood at most 1.92 (half the 95% chi-square with one degree of freedom) below the
    full model's. It reads only (x, T): the histories are summed to those first."""
    if _model_problem(fit.fit) is None or not clv.dropout_unidentified(fit.fit):
        return fit.fit, None
    g = h.groupby(["x", "T_days"], as_index=False, sort=False)["n"].sum()
    x, T = g.x.to_numpy(float), g.T_days.to_numpy(float) / clv.DAYS_PER_WEEK
    nbd = clv.fit_nbd(x, np.where(x > 0, T, 0.0), T, g.n.to_numpy(float))
    if not nbd.converged or nbd.degenerate or nbd.log_likelihood < fit.fit.log_likelihood - 1.92:
        return fit.fit, None
    return nbd, Reason(N_("the data do not identify when customers stop buying (%(model)s's dropout runs to 0: "
                          "nobody has been seen to stop yet), so the predictions come from the NBD model without "
                          "dropout; P(alive) and the customers at risk are not shown"),
                       model=_DROPOUT_NAME.get(fit.fit.model, fit.fit.model))


def clv_core(ds: Any, period: Period, settings: Any = None) -> _Core:
    """The fits and per-history predictions for ``period`` (the expensive part), which
    :func:`clv_block`, :func:`customer_scores` and :func:`predicted_value` take as ``core`` so a
    caller computing several of them (the report context) fits once. Nothing is cached here."""
    opts = clv_options(settings if settings is not None else ds)
    last = ds.last_day
    first = ds.first_day
    end = min(period.end, last) if last is not None else None
    back_end = period.start - timedelta(days=1)
    return _compute(ds, period, opts, first, end, back_end)


_core = clv_core


def _compute(ds: Any, period: Period, opts: _Options, first: date | None, end: date | None, back_end: date) -> _Core:
    if not opts.enabled:
        return _Core(opts, end, None, reason=Reason(N_("the prediction is switched off in the configuration (clv.enabled = false)")))
    if end is None or first is None or end < first:
        return _Core(opts, end, None, reason=Reason(N_("no purchases on or before the period end")))
    observed_days = (end - period.start).days + 1
    has_back = back_end >= first
    back_reason: str | None = None
    history_days = (back_end - first).days + 1
    if has_back and observed_days > 0 and history_days < observed_days:
        # a model fitted on less history than the span it must predict is not a test of the model
        back_reason = Reason(N_("the data before %(day)s cover %(history)s days, less than the %(holdout)s days of "
                                "the period the backtest would predict"),
                             day=period.start, history=history_days, holdout=observed_days)
        has_back = False
    data = compress_histories(ds.daily, end, back_end if has_back else None)
    core = _Core(opts, end, back_end if has_back else None, observed_days=observed_days)
    h = data.histories
    reason = _check_base(h, end, opts)
    if reason is None and not (data.spend["m"] > 0).any():
        reason = Reason(N_("no repeat purchase with a positive value: the spend model cannot be fitted"))
    if reason:
        core.reason = reason
        return core
    model = _PURCHASE_MODEL[opts.model]
    main = fit_purchases(model, h.x, h.t_x_days, h.T_days, h.n)
    core.purchases, core.fallback = _without_dropout(main, h)
    problem = _model_problem(core.purchases)
    sp = data.spend
    spend = fit_spend(sp.x.to_numpy(float), sp.m.to_numpy(), sp.n.to_numpy(float))
    core.spend = spend
    if problem is None and not (spend.converged and spend.params["q"] > 1 and not spend.degenerate):
        problem = Reason(N_("the spend model does not fit these data (its population mean spend is undefined, "
                            "q <= 1, or the fit did not converge)"))
    pos = sp.m > 0
    core.correlation = _weighted_corr(sp.x[pos].to_numpy(float), sp.m[pos].to_numpy(), sp.n[pos].to_numpy(float))
    if problem:
        core.reason = problem
        return core
    x, tx, T, n = (h[c].to_numpy() for c in ("x", "t_x_days", "T_days", "n"))
    pa, ep, dp = _predict(core.purchases, x, tx, T, opts.horizon_days, opts.annual_discount)
    spend_sum = _spend_sums(spend, x.astype(float), n.astype(float), h.n_m.to_numpy(float), h.sum_m.to_numpy())
    rows = h
    rows["p_alive"] = pa
    rows["expected_purchases"] = ep * n  # the history's customers together
    rows["expected_revenue"] = ep * spend_sum
    rows["clv"] = dp * spend_sum
    rows["ep_each"], rows["dp_each"] = ep, dp
    core.rows = rows
    if back_reason:
        core.backtest_reason = back_reason
        return core
    if data.backtest is None or core.backtest_end is None:
        core.backtest_reason = Reason(N_("no purchases before %(day)s: nothing to fit the backtest on"), day=period.start)
        return core
    if core.observed_days <= 0:
        core.backtest_reason = Reason(N_("the data end before %(day)s: nothing in the period to compare with"),
                                      day=period.start)
        return core
    b = data.backtest
    breason = _check_base(b, core.backtest_end, opts)
    if breason:
        core.backtest_reason = breason
        return core
    # started from the main fit — unless that ran off to the edge (the NBD predicts): start afresh
    bfit = fit_purchases(model, b.x, b.t_x_days, b.T_days, b.n, start=main if core.fallback is None else None)
    bpurchases, _why = _without_dropout(bfit, b)
    bproblem = _model_problem(bpurchases)
    if bproblem:
        core.backtest_reason = bproblem
        return core
    core.backtest_fit = bpurchases
    brows = b
    brows["p_alive"] = _p_alive(bpurchases, b.x.to_numpy(), b.t_x_days.to_numpy(), b.T_days.to_numpy())
    core.backtest_rows = brows
    return core


def _backtest_curve(core: _Core, weeks: np.ndarray) -> np.ndarray:
    """Expected purchases of the backtest base in the first ``weeks`` (array) after its end."""
    b, fit = core.backtest_rows, core.backtest_fit
    assert b is not None and fit is not None
    x, T = b.x.to_numpy(), b.T_days.to_numpy()
    ux, uT, inv = _distinct_xT(x, T)
    e = _alive_expectation(fit, ux[:, None].astype(float), (uT / clv.DAYS_PER_WEEK)[:, None],
                           np.asarray(weeks, dtype=float)[None, :])
    w = b.n.to_numpy(float) * b.p_alive.to_numpy()
    out: np.ndarray = np.bincount(inv, weights=w, minlength=len(ux)) @ e
    return out


# --------------------------------------------------------------------------------------------
# the clv block of metrics.json


class ClvBlock(NamedTuple):
    """``block``: the ``clv`` block of metrics.json, or None when the data cannot support a fit;
    ``reason``: why not (None when there is a block)."""

    block: dict[str, Any] | None
    reason: str | None


def _model_name(fit: clv.FitResult) -> str:
    return {"bgnbd": "bg_nbd", "pareto_nbd": "pareto_nbd", "nbd": "nbd"}[fit.model]


def clv_block(ds: Any, period: Period, settings: Any = None, *, core: _Core | None = None) -> ClvBlock:
    """The ``clv`` block of metrics.json for ``period`` (issue 17), and the reason when it is null.

    Parameters
    ----------
    ds : Dataset
    period : Period
    settings : Settings, ClvSettings or mapping, optional
        The ``[clv]`` settings; default: ``ds.settings``.

    Returns
    -------
    ClvBlock
        ``block``::

            {"model": "bg_nbd+gamma_gamma", "time_unit": "week", "calibration_end": "YYYY-MM-DD",
             "customers", "repeat_customers",
             "params": {"r", "alpha", "a", "b", "p", "q", "gamma"},
             "log_likelihood": {"bg_nbd", "gamma_gamma"}, "horizon_days",
             "expected_purchases", "expected_revenue", "clv_mean", "at_risk_customers",
             "backtest": {"calibration_end", "predicted_purchases", "actual_purchases",
                          "error"},  # error: an addition, predicted / actual - 1
             # additions
             "backtest_reason",  # why backtest is null (None when there is one)
             "fallback",  # {"from": "bg_nbd", "to": "nbd", "reason"} or None
             "annual_discount", "at_risk_threshold", "at_risk_revenue_share",
             "spend_frequency_correlation"}

        When the configured model's dropout runs to its boundary (nobody seen to stop yet,
        :func:`clv.dropout_unidentified`) the prediction comes from the nested NBD without dropout:
        model ``"nbd+gamma_gamma"``, params r, alpha, p, q, gamma, log_likelihood ``nbd``,
        ``fallback`` says so, and ``at_risk_customers`` / ``at_risk_revenue_share`` are null
        (P(alive) is 1 by construction, not a finding). ``backtest`` is also null when the history
        before P is shorter than the part of P it would predict (``backtest_reason``).

        With ``clv.model = "pareto_nbd"``: model ``"pareto_nbd+gamma_gamma"``, params r, alpha, s,
        beta, p, q, gamma and log_likelihood ``pareto_nbd``. ``expected_purchases`` and
        ``expected_revenue`` are sums over the customers acquired by the calibration end of the
        conditional expectations over ``horizon_days`` (undiscounted); ``clv_mean`` is the mean of
        the discounted expected revenue (``annual_discount``); ``at_risk_customers`` are repeat
        customers with P(alive) below ``at_risk_threshold``, ``at_risk_revenue_share`` their share
        of all customers' gross revenue to date. ``backtest`` (null when there is no history
        before P or too little) fits on the data up to the day before P and compares its predicted
        purchases in P (up to the calibration end) by the customers acquired by then with theirs.
        ``spend_frequency_correlation``: Pearson correlation of x and mean repeat spend over the
        repeat buyers (the Gamma-Gamma model assumes them independent).
    ``core``: :func:`clv_core`'s result when already computed.
    """
    core = core if core is not None else clv_core(ds, period, settings)
    if core.reason or core.rows is None:
        return ClvBlock(None, core.reason or Reason(N_("no prediction")))
    s = _summary(core)
    pf, sp = core.purchases, core.spend
    assert pf is not None and sp is not None and core.calibration_end is not None
    name = _model_name(pf)
    block: dict[str, Any] = {
        "model": f"{name}+gamma_gamma",
        "time_unit": "week",
        "calibration_end": core.calibration_end.isoformat(),
        "customers": s["customers"],
        "repeat_customers": s["repeat_customers"],
        "params": {**pf.params, **sp.params},
        "log_likelihood": {name: pf.log_likelihood, "gamma_gamma": sp.log_likelihood},
        "horizon_days": core.options.horizon_days,
        "expected_purchases": s["expected_purchases"],
        "expected_revenue": s["expected_revenue"],
        "clv_mean": s["clv_mean"],
        "at_risk_customers": s["at_risk_customers"],
        "backtest": _backtest_totals(core),
        "backtest_reason": None if core.backtest_rows is not None else (core.backtest_reason or None),
        "fallback": None if core.fallback is None else {
            "from": core.options.model, "to": "nbd", "reason": str(core.fallback)},
        "annual_discount": core.options.annual_discount,
        "at_risk_threshold": core.options.at_risk_threshold,
        "at_risk_revenue_share": s["at_risk_revenue_share"],
        "spend_frequency_correlation": core.correlation,
    }
    return ClvBlock(block, None)


def _summary(core: _Core) -> dict[str, Any]:
    r = core.rows
    assert r is not None
    n = r.n.to_numpy()
    rep = r.x.to_numpy() > 0
    risk = rep & (r.p_alive.to_numpy() < core.options.at_risk_threshold)
    customers = int(n.sum())
    value = float(r.value.sum())
    shown = core.p_alive_shown
    return {
        "customers": customers,
        "repeat_customers": int(n[rep].sum()),
        "expected_purchases": float(r.expected_purchases.sum()),
        "expected_revenue": float(r.expected_revenue.sum()),
        "clv_total": float(r.clv.sum()),
        "clv_mean": float(r.clv.sum()) / customers,
        "at_risk_customers": int(n[risk].sum()) if shown else None,
        "at_risk_share": float(n[risk].sum() / n[rep].sum()) if shown and n[rep].sum() else None,
        "at_risk_revenue_share": float(r.value[risk].sum()) / value if shown and value > 0 else None,
        "at_risk_value": float(r.value[risk].sum()) if shown else None,
        "p_alive_mean_repeat": float(np.average(r.p_alive[rep], weights=n[rep])) if shown and rep.any() else None,
    }


def _backtest_totals(core: _Core) -> dict[str, Any] | None:
    if core.backtest_rows is None or core.backtest_end is None:
        return None
    days = core.observed_days
    predicted = float(_backtest_curve(core, np.array([days / clv.DAYS_PER_WEEK]))[0])
    actual = int(core.backtest_rows.actual.sum())
    return {
        "calibration_end": core.backtest_end.isoformat(),
        "predicted_purchases": predicted,
        "actual_purchases": actual,
        "error": predicted / actual - 1.0 if actual else None,
    }


# --------------------------------------------------------------------------------------------
# per-customer scores (engine side): CSV export, CLV distribution, segments


def customer_scores(ds: Any, period: Period, settings: Any = None) -> Any:
    """Per customer acquired by the calibration end: the model's scores, as an ibis Table in the
    engine (nothing per customer is loaded into Python).

    Columns: customer_id, acquired, x, t_x and T (weeks), m (mean repeat value), value (gross to
    date), p_alive (null for one-time buyers under BG/NBD, where it is 1 by construction),
    expected_purchases (over the horizon), expected_spend (per purchase, Gamma-Gamma), clv
    (discounted expected revenue over the horizon). Raises ValueError with the reason when the
    data cannot support a fit.
    """
    import ibis

    core = _core(ds, period, settings)
    if core.reason or core.rows is None or core.spend is None or core.purchases is None or core.calibration_end is None:
        raise ValueError(f"no customer scores for {period.label}: {core.reason}")
    r = core.rows
    preds = ibis.memtable(pd.DataFrame({
        "_x": r.x.to_numpy(), "_tx": r.t_x_days.to_numpy(), "_T": r.T_days.to_numpy(),
        "_pa": r.p_alive.to_numpy(), "_ep": r.ep_each.to_numpy(), "_dp": r.dp_each.to_numpy(),
    }))
    h = customer_histories(ds.daily, core.calibration_end)
    j = h.inner_join(preds, [h.x == preds._x, h.t_x_days == preds._tx, h.T_days == preds._T])
    p, q, g = core.spend.values
    pop = p * g / (q - 1.0)
    xf = j.x.cast("float64")
    own = (j.x > 0) & (j.m > 0)
    spend = own.ifelse(p * (g + j.m * xf) / (p * xf + q - 1.0), pop)
    # BG/NBD: P(alive) of a one-time buyer is 1 by construction, not a score
    if core.purchases.model == "nbd":  # no dropout: 1 for everyone by construction
        p_alive = _null("float64")
    else:
        p_alive = (j.x == 0).ifelse(_null("float64"), j._pa) if core.purchases.model == "bgnbd" else j._pa
    return j.select(
        "customer_id",
        "acquired",
        "x",
        t_x=j.t_x_days / clv.DAYS_PER_WEEK,
        T=j.T_days / clv.DAYS_PER_WEEK,
        m=j.m,
        value=j.value,
        p_alive=p_alive,
        expected_purchases=j._ep,
        expected_spend=spend,
        clv=spend * j._dp,
    )


# --------------------------------------------------------------------------------------------
# the report section


@dataclass
class PredictedValue:
    """What the section "Predicted customer value" shows (small frames only, no customer ids).

    ``block``/``reason`` as :func:`clv_block`. ``summary``: customers, repeat_customers,
    expected_purchases, expected_revenue, clv_total, clv_mean, clv_median, at_risk_customers,
    at_risk_share (of repeat customers), at_risk_revenue_share, new_customers and new_clv_mean (the
    customers acquired in the period). ``deciles``: customers ranked by CLV in ten equal groups,
    decile 1 = highest (customers, clv, clv_min, clv_max, share of the total). ``cohorts``: per
    acquisition month (the last ``cohort_count``; ``earlier`` in ``summary``): customers,
    clv_mean, expected_purchases, at_risk. ``segments``: per value of ``segment`` (the first
    purchase's): customers, clv_mean, clv_share, customer_share. ``backtest``: week, days,
    predicted and actual cumulative purchases over the period (None with ``backtest_reason``).
    """

    period: str
    calibration_end: date | None
    block: dict[str, Any] | None
    reason: str | None
    model: str = "bg_nbd"
    horizon_days: int = 365
    annual_discount: float = 0.10
    at_risk_threshold: float = 0.5
    summary: dict[str, Any] = field(default_factory=dict)
    deciles: pd.DataFrame | None = None
    cohorts: pd.DataFrame | None = None
    segment: str = ""
    segments: pd.DataFrame | None = None
    backtest: pd.DataFrame | None = None
    backtest_reason: str | None = None
    backtest_end: date | None = None
    correlation: float | None = None
    fallback: str | None = None  # why the no-dropout NBD predicts (P(alive) and at-risk then not shown)

    @property
    def available(self) -> bool:
        return self.block is not None

    @property
    def p_alive_shown(self) -> bool:
        return self.fallback is None


def _cohort_frame(core: _Core, months: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    r = core.rows
    assert r is not None and core.calibration_end is not None
    end = pd.Timestamp(core.calibration_end)
    acquired = end - pd.to_timedelta(r.T_days.to_numpy(), unit="D")
    month = acquired.to_period("M").to_timestamp()
    risk = (r.x.to_numpy() > 0) & (r.p_alive.to_numpy() < core.options.at_risk_threshold)
    f = pd.DataFrame({
        "cohort": month, "customers": r.n.to_numpy(), "clv": r.clv.to_numpy(),
        "expected_purchases": r.expected_purchases.to_numpy(), "at_risk": np.where(risk, r.n.to_numpy(), 0),
        "repeat": np.where(r.x.to_numpy() > 0, r.n.to_numpy(), 0),
    }).groupby("cohort", as_index=True).sum().sort_index()
    f["clv_mean"] = f.clv / f.customers
    recent = f.iloc[-months:]
    older = f.iloc[:-months] if len(f) > months else f.iloc[:0]
    earlier = {
        "customers": int(older.customers.sum()),
        "clv_mean": float(older.clv.sum() / older.customers.sum()) if len(older) else None,
    }
    return recent.reset_index(), earlier


def _deciles(scores: Any) -> tuple[pd.DataFrame, float | None]:
    import ibis

    s = scores.select("clv")
    ranked = s.mutate(decile=ibis.ntile(10).over(order_by=[ibis.desc(s.clv)]))
    agg = ranked.group_by("decile").aggregate(
        customers=ranked.count(), clv=ranked.clv.sum(), clv_min=ranked.clv.min(), clv_max=ranked.clv.max()
    ).order_by("decile")
    f = agg.to_pandas()
    f["decile"] = f["decile"] - int(f["decile"].min()) + 1  # 1 = the top tenth, whatever the backend's base
    total = float(f.clv.sum())
    f["share"] = f.clv / total if total > 0 else np.nan
    median = scores.clv.median().to_pandas()
    return f.reset_index(drop=True), (None if median is None else float(median))


def _segment_frame(ds: Any, scores: Any, segment: str, end: date) -> pd.DataFrame:
    cols = ["segment", "customers", "clv_mean", "clv_share", "customer_share", "p_alive_mean"]
    if not segment or segment not in getattr(ds, "segments", ()):
        return pd.DataFrame(columns=cols)
    seg = ds.customers_with_segments(None, end).select("customer_id", _seg=lambda t: t[segment])
    j = scores.inner_join(seg, "customer_id")
    agg = j.group_by("_seg").aggregate(
        customers=j.count(), clv=j.clv.sum(), p_alive_mean=j.p_alive.mean()
    ).to_pandas().rename(columns={"_seg": "segment"})
    total_c, total_v = float(agg.customers.sum()), float(agg.clv.sum())
    agg["clv_mean"] = agg.clv / agg.customers
    agg["clv_share"] = agg.clv / total_v if total_v > 0 else np.nan
    agg["customer_share"] = agg.customers / total_c
    agg["segment"] = agg.segment.astype(str)
    return agg.sort_values("clv_mean", ascending=False)[cols].reset_index(drop=True)


def _backtest_frame(ds: Any, core: _Core, period: Period) -> pd.DataFrame:
    """Weekly cumulative purchases in the period of the customers acquired before it: predicted by
    the backtest fit and actual (days counted from the period start; the last week may be short)."""
    assert core.backtest_end is not None and core.calibration_end is not None
    days = core.observed_days
    ends = np.minimum(np.arange(7, days + 7, 7), days)
    predicted = _backtest_curve(core, ends / clv.DAYS_PER_WEEK)
    d, c = ds.daily, ds.customers
    base = c.filter(c.acquired <= lit(core.backtest_end)).select("customer_id")
    p = d.filter(d.is_purchase & (d.day >= lit(period.start)) & (d.day <= lit(core.calibration_end)))
    j = p.inner_join(base, "customer_id")
    wk = (j.day.delta(lit(period.start), unit="day") // 7).cast("int64").name("week")
    weekly = j.group_by(wk).aggregate(purchases=j.count()).to_pandas()
    counts = np.zeros(len(ends))
    idx = weekly.week.to_numpy().astype(int)
    ok = (idx >= 0) & (idx < len(ends))
    np.add.at(counts, idx[ok], weekly.purchases.to_numpy()[ok])
    return pd.DataFrame({
        "week": np.arange(1, len(ends) + 1),
        "days": ends,
        "date": [period.start + timedelta(days=int(e) - 1) for e in ends],
        "predicted": predicted,
        "actual": np.cumsum(counts),
    })


def predicted_value(ds: Any, period: Period, settings: Any = None, *, segment: str = "",
                    cohort_count: int = 12, core: _Core | None = None) -> PredictedValue:
    """Everything the section "Predicted customer value" shows for ``period`` (aggregates only).

    ``settings``: the run's Settings (default ``ds.settings``); ``segment``: the segment column the
    value is broken down by (its value at each customer's first purchase; '' for none).
    """
    core = core if core is not None else clv_core(ds, period, settings)
    out = clv_block(ds, period, settings, core=core)
    opts = core.options
    pv = PredictedValue(
        period=period.label, calibration_end=core.calibration_end, block=out.block, reason=out.reason,
        model=opts.model, horizon_days=opts.horizon_days, annual_discount=opts.annual_discount,
        at_risk_threshold=opts.at_risk_threshold, correlation=core.correlation, fallback=core.fallback,
    )
    if out.block is None or core.rows is None or core.calibration_end is None:
        return pv
    summary = _summary(core)
    r = core.rows
    new = r.T_days.to_numpy() <= (core.calibration_end - period.start).days
    summary["new_customers"] = int(r.n[new].sum())
    summary["new_clv_mean"] = float(r.clv[new].sum() / r.n[new].sum()) if new.any() else None
    pv.cohorts, earlier = _cohort_frame(core, cohort_count)
    summary["earlier_customers"], summary["earlier_clv_mean"] = earlier["customers"], earlier["clv_mean"]
    # the per-customer scores once, in the engine, for the distribution and the segments
    scores = customer_scores(ds, period, settings).select("customer_id", "clv", "p_alive").cache()
    try:
        pv.deciles, summary["clv_median"] = _deciles(scores)
        pv.segment = segment
        pv.segments = _segment_frame(ds, scores, segment, core.calibration_end)
    finally:
        scores.release()
    pv.summary = summary
    pv.backtest_end = core.backtest_end
    if core.backtest_rows is not None:
        pv.backtest = _backtest_frame(ds, core, period)
    else:
        pv.backtest_reason = core.backtest_reason
    return pv
