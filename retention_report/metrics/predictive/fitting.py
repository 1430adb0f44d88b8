"""Maximum-likelihood fits of the purchase model (BG/NBD on integer days, Newton-polished from a
coarse fit) and of the Gamma-Gamma spend model, on the compressed histories."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from ... import clv
from .fitcache import FitCache, fit_key

__all__ = ["DayRows", "PurchaseFit", "fit_purchases", "fit_spend"]

_PARAM_KEYS = {"bgnbd": ("r", "alpha", "a", "b"), "pareto_nbd": ("r", "alpha", "s", "beta")}
_COARSE_DAYS = 28  # grid of the starting fit (exact rows are polished from it)
_SMALL = 20_000  # fewer distinct histories: plain L-BFGS on the exact rows is fast enough


class DayRows:
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
        ll = clv.dot(Wx, gx) + N * r * math.log(alpha) - clv.dot(rWX, L)
        cx = math.log(a) - np.log(b + ux - 1.0, where=ux > 0, out=np.zeros_like(ux))
        delta = L[self.Ti] - L[self.txi]
        rx = r + self.xr
        D = cx[self.xi] + rx * delta
        ll += clv.dot(self.wr, np.logaddexp(0.0, D))
        if not gradient:
            return ll, None
        sig = self.wr * special.expit(D)
        inv = 1.0 / (alpha + self.days)
        psi_ab = special.digamma(a + b)
        psi_abx = special.digamma(a + b + ux)
        g_r = clv.dot(Wx, special.digamma(r + ux) - special.digamma(r)) + N * math.log(alpha)
        g_r += -clv.dot(self.W_T, L) + clv.dot(sig, delta)
        g_alpha = N * r / alpha - clv.dot(rWX, inv) + clv.dot(sig, rx * (inv[self.Ti] - inv[self.txi]))
        sig_x = np.bincount(self.xi, weights=sig, minlength=len(ux))
        g_a = clv.dot(Wx, psi_ab - psi_abx) + float(sig_x.sum()) / a
        g_b = clv.dot(Wx, special.digamma(b + ux) - special.digamma(b) + psi_ab - psi_abx)
        rep = ux > 0
        g_b -= clv.dot(sig_x[rep], 1.0 / (b + ux[rep] - 1.0))
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
class PurchaseFit:
    """A purchase-model fit and, when quasi-Newton steps on the exact rows found it, their Hessian
    (the backtest's steps start from it)."""

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


def fit_purchases(model: str, x: Any, t_x_days: Any, T_days: Any, n: Any, start: PurchaseFit | None = None,
                  cache: FitCache | None = None) -> PurchaseFit:
    """Maximum-likelihood fit of the purchase model (``"bgnbd"`` or ``"pareto_nbd"``) to histories
    in whole days (t_x_days, T_days; weeks = days / 7 exactly), weighted by ``n``.

    BG/NBD with many distinct histories: quasi-Newton steps on the exact rows (:class:`DayRows`)
    from ``start`` (a previous fit, e.g. the main one for the backtest) or from a fit on a 4-week
    grid; falls back to :func:`clv.fit_bgnbd` (L-BFGS-B) if the steps do not converge; ``cache``
    keeps that fit for the next run with the same histories and the same start (the same period
    again: the report after the metrics). Otherwise, and for Pareto/NBD, the
    :mod:`retention_report.clv` fits.
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
        return PurchaseFit(fitter(x, tx / wk, T / wk, n, start=begin))
    warm = None  # (log-parameters, Hessian) to start the steps from
    if start is not None and start.hessian is not None and start.fit.model == "bgnbd":
        warm = (np.log(np.asarray(start.fit.values)), start.hessian)
    if cache is not None and cache.folder is None:
        cache = None  # nothing kept: no need to hash the rows
    key = fit_key(model, x, tx, T, n, *(warm or ())) if cache is not None else ""
    kept = cache.get(key) if cache is not None else None
    if kept is not None and kept[0].model == model:
        return PurchaseFit(*kept)
    rows = DayRows(x, tx, T, n)

    def obj(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.exp(theta)
        ll, g = rows.ll(tuple(p))
        if not math.isfinite(ll):
            return math.inf, np.zeros_like(theta)
        return -ll / rows.N, -(g * p) / rows.N

    if warm is not None:
        theta0, H0 = warm
    else:
        cx, ctx, cT, cw = _coarse_rows(rows.x, rows.tx, rows.T, rows.w, _COARSE_DAYS, (rows.ux, rows.xinv))
        coarse = clv.fit_bgnbd(cx, ctx, cT, cw)
        theta0 = np.log(np.asarray(coarse.values))
        H0 = _fd_hessian(clv.log_objective("bgnbd", clv.PurchaseData(cx, ctx, cT, cw)), theta0)
    theta, f, g, H, iters, ok = _newton(obj, theta0, H0)
    if not ok or not np.all(np.linalg.eigvalsh(H) > 0):
        fit = clv.fit_bgnbd(x, tx / wk, T / wk, n, start=tuple(np.exp(theta0)))
        if cache is not None:
            cache.put(key, fit)
        return PurchaseFit(fit)
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
    if cache is not None:
        cache.put(key, fit, H)
    return PurchaseFit(fit, H)


def fit_spend(x: Any, m: Any, n: Any, cache: FitCache | None = None) -> clv.FitResult:
    """Maximum-likelihood Gamma-Gamma fit to repeat buyers' (x, mean repeat value m, count n).

    Many rows: quasi-Newton steps on the exact rows from a fit on m binned to 2% (per x; each bin
    at its customers' mean m), with that fit's Hessian — three or four exact evaluations instead
    of L-BFGS's dozens; :func:`clv.fit_gamma_gamma` when they do not converge and for few rows.
    ``cache`` keeps the fit on many rows for the next run with the same rows.
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    if len(x) < _SMALL:
        return clv.fit_gamma_gamma(x, m, n)
    if cache is not None and cache.folder is None:
        cache = None  # nothing kept: no need to hash the rows
    key = fit_key("gamma_gamma", x, m, n) if cache is not None else ""
    kept = cache.get(key) if cache is not None else None
    if kept is not None and kept[0].model == "gamma_gamma":
        return kept[0]
    fit = _fit_spend_rows(x, m, n)
    if cache is not None:
        cache.put(key, fit)
    return fit


def _fit_spend_rows(x: np.ndarray, m: np.ndarray, n: np.ndarray) -> clv.FitResult:
    d = clv.SpendData(x, m, n)
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
    dc = clv.SpendData(cx, cm, w)

    theta0 = np.log(np.asarray(coarse.values))
    H0 = _fd_hessian(clv.log_objective("gamma_gamma", dc), theta0)
    theta, f, _g, H, iters, ok = _newton(clv.log_objective("gamma_gamma", d), theta0, H0)
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
