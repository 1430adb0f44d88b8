"""Predictive customer value (issue 17): BG/NBD and Pareto/NBD purchase models, the Gamma-Gamma
spend model, and the customer lifetime value (CLV) they give over a horizon.

Data contract. The purchase models read one row per *distinct* customer history, with a count::

    x     repeat purchases: purchase days - 1 (SPEC §2: a purchase is a customer-day with gross > 0;
          several payments on one day are one purchase)
    t_x   time of the last purchase, T: the customer's age at the end of the calibration period,
          both in weeks (exact days / 7, no rounding) from the first purchase day
    n     customers with this (x, t_x, T)

so a fit reads a few thousand rows whatever the number of customers. The spend model reads
(x, m, n): m is the mean value of the x repeat purchases (the first purchase excluded). The SQL
side of that compression is :func:`retention_report.metrics.predictive.compress_histories`;
everything here is numpy/scipy on small arrays, without I/O. Callers that run their own optimiser
(the fast fits of :mod:`retention_report.metrics.predictive`) use the checked data
(:class:`PurchaseData`, :class:`SpendData`), the objective :func:`log_objective` and the
conditional expectations :func:`alive_expectation` and :func:`discounted_alive`.

Models and sources:

- [FHL05a] Fader, Hardie & Lee (2005), "Counting Your Customers" the Easy Way: An Alternative to
  the Pareto/NBD Model. Marketing Science 24(2). BG/NBD; likelihood (6), expected purchases of a
  customer in the next t weeks (10), P(alive) (the denominator of (10); Fader, Hardie & Lee 2008,
  "Computing P(alive) using the BG/NBD model").
- [FHL05b] Fader, Hardie & Lee (2005), RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis. Journal of Marketing Research 42(4). The Gamma-Gamma spend sub-model (also Fader &
  Hardie 2013, "The Gamma-Gamma Model of Monetary Value").
- [SMC87] Schmittlein, Morrison & Colombo (1987), Counting Your Customers. Management Science 33(1);
  [FH05] Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions",
  section 3 (likelihood, with the Gaussian hypergeometric function), section 5 (P(alive)),
  section 6 (expected purchases).

Numerics: log-likelihoods are evaluated in log space (BG/NBD: a softplus of the ratio of its two
terms; Pareto/NBD: the hypergeometric terms as logarithms, combined with logaddexp), their
gradients are analytic, and the fits run L-BFGS-B on the logarithms of the parameters, weighted by
the counts. The hypergeometric functions are summed as series whose terms are all positive (or
nearly so) after an Euler transformation, so nothing overflows; the rare rows whose series would
need more than 2,000 terms (argument within ~1% of 1) are integrated numerically instead.
The test suite checks every special function against mpmath at 40 digits.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "FitResult",
    "fit_bgnbd",
    "fit_pareto_nbd",
    "fit_gamma_gamma",
    "fit_nbd",
    "nbd_log_likelihood",
    "dropout_unidentified",
    "bgnbd_log_likelihood",
    "pareto_nbd_log_likelihood",
    "gamma_gamma_log_likelihood",
    "bgnbd_p_alive",
    "bgnbd_expected_purchases",
    "pareto_nbd_p_alive",
    "pareto_nbd_expected_purchases",
    "gamma_gamma_expected_spend",
    "gamma_gamma_population_mean",
    "p_alive",
    "expected_purchases",
    "discounted_expected_purchases",
    "alive_expectation",
    "discounted_alive",
    "PurchaseData",
    "SpendData",
    "Objective",
    "log_objective",
    "dot",
    "DAYS_PER_WEEK",
    "DAYS_PER_YEAR",
]

DAYS_PER_WEEK = 7.0
#: the discount year: a horizon of 365 days is discounted by exactly one annual rate
DAYS_PER_YEAR = 365.0

_BGNBD = ("r", "alpha", "a", "b")
_PNBD = ("r", "alpha", "s", "beta")
_GG = ("p", "q", "gamma")
_NBD = ("r", "alpha")
_MODELS = {"bgnbd": _BGNBD, "pareto_nbd": _PNBD, "gamma_gamma": _GG, "nbd": _NBD}
# below this mean dropout probability per purchase (BG/NBD: a / (a + b)) or dropout rate per week
# (Pareto/NBD: s / beta; a lifetime of 19,000 years), the fit says "nobody drops out"
_NO_DROPOUT = 1e-6

# series: at most this many terms for all rows at once; rows still short of convergence are
# integrated one by one (arguments close to 1, rare: see _log_hyp2f1_1)
_MAX_TERMS = 2000
_EPS = 1e-17
# L-BFGS-B on log-parameters: the box keeps exp() finite; tolerances give ~1e-8 relative params
_LOG_BOUND = 25.0
_FIT_OPTIONS = {"maxiter": 3000, "maxfun": 6000, "ftol": 1e-15, "gtol": 1e-10}


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class FitResult:
    """A fitted model: ``params`` by name, the maximised log-likelihood (summed over customers,
    weighted by the counts), whether the optimiser converged (L-BFGS-B reported convergence, or
    stopped on a failed line search with a gradient below 1e-6, and no parameter reached the
    box e^-25..e^25), and the data size. See also :attr:`degenerate`.

    ``model`` is ``"bgnbd"`` (r, alpha, a, b), ``"pareto_nbd"`` (r, alpha, s, beta), ``"nbd"``
    (r, alpha: the NBD without dropout, nested in both as their dropout goes to 0) or
    ``"gamma_gamma"`` (p, q, gamma); time parameters are in weeks, gamma in money.
    """

    model: str
    params: Mapping[str, float]
    log_likelihood: float
    converged: bool
    n_customers: float
    n_rows: int
    iterations: int = 0
    message: str = ""
    #: Gamma-Gamma only: customers left out of the fit (non-positive mean repeat value)
    n_excluded: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {sorted(_MODELS)}")
        if tuple(self.params) != _MODELS[self.model]:
            raise ValueError(f"{self.model} parameters are {_MODELS[self.model]}, got {tuple(self.params)}")

    @property
    def values(self) -> tuple[float, ...]:
        """The parameters as a tuple in the model's order."""
        return tuple(float(v) for v in self.params.values())

    @property
    def degenerate(self) -> bool:
        """A parameter ran off towards 0 or infinity (outside [1e-6, 1e6]): the likelihood has its
        supremum on the edge of the parameter space — nobody bought twice, or everyone buys at
        the same rate (r, alpha -> infinity: the Poisson limit) — so the parameters are not
        identified, whatever ``converged`` says. Predictions follow the limiting model."""
        return any(not (1e-6 <= v <= 1e6) for v in self.values)

    @property
    def aic(self) -> float:
        """Akaike's information criterion, 2k - 2 LL (to compare BG/NBD with Pareto/NBD)."""
        return 2 * len(self.params) - 2 * self.log_likelihood



def _params(params: Any, names: tuple[str, ...]) -> tuple[float, ...]:
    """FitResult, mapping or sequence → positive floats in the model's order."""
    if isinstance(params, FitResult):
        if params.params.keys() != set(names):
            raise ValueError(f"expected a fit of parameters {names}, got a {params.model} fit")
        params = params.params
    if isinstance(params, Mapping):
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"missing parameter(s) {missing}")
        vals = tuple(float(params[n]) for n in names)
    else:
        vals = tuple(float(v) for v in params)
        if len(vals) != len(names):
            raise ValueError(f"expected {len(names)} parameters {names}, got {len(vals)}")
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"parameters {names} must be positive and finite, got {vals}")
    return vals


# --------------------------------------------------------------------------------------------
# input checks (one rule, one error)


def _check_rfm(x: Any, t_x: Any, T: Any, weights: Any = None) -> tuple[np.ndarray, ...]:
    """Rules: x, t_x, T (and weights) are 1-d and of one length; all finite; x are whole numbers
    >= 0; 0 <= t_x <= T; t_x = 0 where x = 0; weights >= 0."""
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    T = np.asarray(T, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    x, t_x, T, w = np.atleast_1d(x, t_x, T, w)
    if not (x.ndim == t_x.ndim == T.ndim == w.ndim == 1 and len(x) == len(t_x) == len(T) == len(w)):
        raise ValueError("x, t_x, T and weights must be 1-d arrays of one length")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all() and np.isfinite(w).all()):
        raise ValueError("x, t_x, T and weights must be finite (no NaN or inf)")
    if (x < 0).any() or (x != np.round(x)).any():
        raise ValueError("x (repeat purchases) must be whole numbers >= 0")
    if (t_x < 0).any() or (t_x > T).any():
        raise ValueError("recency must satisfy 0 <= t_x <= T")
    if (t_x[x == 0] != 0).any():
        raise ValueError("t_x must be 0 for customers without repeat purchases (x = 0)")
    if (w < 0).any():
        raise ValueError("weights (customer counts) must be >= 0")
    return x, t_x, T, w


def _check_monetary(x: Any, m: Any, weights: Any = None) -> tuple[np.ndarray, ...]:
    """Rules: x, m (and weights) are 1-d, of one length and finite; x are whole numbers >= 0;
    weights >= 0. (m <= 0 or x = 0 is allowed: such customers get the population mean.)"""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    x, m, w = np.atleast_1d(x, m, w)
    if not (x.ndim == m.ndim == w.ndim == 1 and len(x) == len(m) == len(w)):
        raise ValueError("x, m and weights must be 1-d arrays of one length")
    if not (np.isfinite(x).all() and np.isfinite(m).all() and np.isfinite(w).all()):
        raise ValueError("x, m and weights must be finite (no NaN or inf)")
    if (x < 0).any() or (x != np.round(x)).any():
        raise ValueError("x (repeat purchases) must be whole numbers >= 0")
    if (w < 0).any():
        raise ValueError("weights (customer counts) must be >= 0")
    return x, m, w


# --------------------------------------------------------------------------------------------
# special functions


def _log_hyp2f1_1(cp: np.ndarray, c: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """log F and its partial derivatives, F = 2F1(1, cp; c; z) = sum_k (cp)_k / (c)_k z^k,
    for 0 < cp < c, c > 1, 0 <= z < 1 (arrays of one shape).

    Returns (log F, d log F / d cp, d log F / d c, d log F / d z). Every term is positive and the
    ratio of successive terms, (cp + k) / (c + k) z, rises towards z, so the tail after term k is
    at most term_k z / (1 - z) and 1 <= F <= 1 / (1 - z): no overflow, no cancellation. Rows not
    converged after ``_MAX_TERMS`` terms (z close to 1 with cp close to c) are integrated with the
    Euler representation F = (c - 1) int_0^inf exp(-(c-1) v) (1 - z (1 - e^-v))^-cp dv instead.
    """
    cp, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (cp, c, z)))
    shape = cp.shape
    cp, c, z = cp.ravel(), c.ravel(), z.ravel()
    n = cp.size
    out = np.empty((4, n))
    idx = np.arange(n)
    S = np.ones(n)
    Scp = np.zeros(n)
    Sc = np.zeros(n)
    Sz = np.zeros(n)
    tau = np.ones(n)
    dcp = np.zeros(n)
    dc = np.zeros(n)
    dz = np.zeros(n)
    acp, ac, az = cp, c, z
    tail = az / (1.0 - az)
    for k in range(_MAX_TERMS):
        q = (acp + k) / (ac + k)
        qz = q * az
        # d/dcp, d/dc, d/dz of tau_{k+1} = tau_k (cp+k)/(c+k) z
        dz = dz * qz + tau * q
        dcp = (dcp + tau / (acp + k)) * qz
        dc = (dc - tau / (ac + k)) * qz
        tau = tau * qz
        S += tau
        Scp += dcp
        Sc += dc
        Sz += dz
        if k % 8 == 7 or k == _MAX_TERMS - 1:
            done = tau * tail <= _EPS * S
            if done.any():
                out[0, idx[done]] = np.log(S[done])
                out[1, idx[done]] = Scp[done] / S[done]
                out[2, idx[done]] = Sc[done] / S[done]
                out[3, idx[done]] = Sz[done] / S[done]
                keep = ~done
                idx = idx[keep]
                if not idx.size:
                    break
                S, Scp, Sc, Sz = S[keep], Scp[keep], Sc[keep], Sz[keep]
                tau, dcp, dc, dz = tau[keep], dcp[keep], dc[keep], dz[keep]
                acp, ac, az, tail = acp[keep], ac[keep], az[keep], tail[keep]
    for i in idx:  # not converged: integrate
        out[:, i] = _log_hyp2f1_1_quad(cp[i], c[i], z[i])
    return tuple(o.reshape(shape) for o in out)


def _log_hyp2f1_1_quad(cp: float, c: float, z: float) -> np.ndarray:
    """:func:`_log_hyp2f1_1` for one row by adaptive quadrature of the Euler integral.

    With 1 - t = e^-v, F = (c-1) int_0^inf exp(psi(v)) dv, psi(v) = -(c-1) v - cp log(1 - z(1 - e^-v)),
    which is concave; the integrand is scaled by its maximum, at v* = log(z (cp-c+1) / ((c-1)(1-z)))
    when that is positive, else at 0, and the integral split there.
    """
    c1 = c - 1.0
    if cp * z > c1:
        vstar = math.log(z * (cp - c1) / (c1 * (1.0 - z)))
    else:
        vstar = 0.0

    def psi(v: float) -> float:
        return -c1 * v - cp * math.log1p(-z * -math.expm1(-v))

    pmax = psi(vstar)

    def f(v: float) -> np.ndarray:
        e = -math.expm1(-v)  # 1 - e^-v
        ell = math.log1p(-z * e)
        g = math.exp(-c1 * v - cp * ell - pmax)
        return np.array([g, v * g, ell * g, cp * e / (1.0 - z * e) * g])

    total = np.zeros(4)
    pieces = [(0.0, vstar), (vstar, np.inf)] if vstar > 0 else [(0.0, np.inf)]
    for lo, hi in pieces:
        val, _err = integrate.quad_vec(f, lo, hi, epsabs=0.0, epsrel=1e-13, norm="max", limit=400)
        total += val
    I0, I1, I2, I3 = total
    return np.array([math.log(c1) + pmax + math.log(I0), -I2 / I0, 1.0 / c1 - I1 / I0, I3 / I0])


def _unique_inverse(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the given columns and the inverse index (rows = unique[inverse])."""
    stacked = np.column_stack(cols)
    uniq, inv = np.unique(stacked, axis=0, return_inverse=True)
    return [uniq[:, j] for j in range(uniq.shape[1])], inv.ravel()


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: in a fit, OpenBLAS's threads (numpy's and scipy's own copy, which
    L-BFGS-B uses) spin against each other: 55 ms instead of 0.5 ms per BG/NBD evaluation of 11k
    rows on a busy 2-core machine (2026-11-23)."""
    return float(np.multiply(a, b).sum())


def _ll_result(ll: float, g: np.ndarray | None) -> float | tuple[float, np.ndarray]:
    """What the public log-likelihoods return: LL, or (LL, gradient) when asked for one."""
    return ll if g is None else (ll, g)


def _log_softplus(d: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.logaddexp(0.0, d)
    return out


# --------------------------------------------------------------------------------------------
# BG/NBD


class PurchaseData:
    """Checked (x, t_x, T, weights) with what every likelihood evaluation reuses: distinct x and
    their total weights, the repeat buyers' rows, and for Pareto/NBD the distinct (x, t) pairs."""

    def __init__(self, x: Any, t_x: Any, T: Any, weights: Any = None) -> None:
        x, t_x, T, w = _check_rfm(x, t_x, T, weights)
        keep = w > 0
        if not keep.all():
            x, t_x, T, w = x[keep], t_x[keep], T[keep], w[keep]
        if w.sum() <= 0:
            raise ValueError("no customers: the weights sum to 0")
        self.x, self.t_x, self.T, self.w = x, t_x, T, w
        self.N = float(w.sum())
        self.ux, inv = np.unique(x, return_inverse=True)
        self.Wx = np.bincount(inv.ravel(), weights=w, minlength=len(self.ux))
        rep = x > 0
        self.rep = rep
        self.xr, self.txr, self.Tr, self.wr = x[rep], t_x[rep], T[rep], w[rep]
        self._pairs: tuple[np.ndarray, ...] | None = None

    def pairs(self) -> tuple[np.ndarray, ...]:
        """Distinct (x, t) over t in t_x and T, and the inverse index of each column."""
        if self._pairs is None:
            n = len(self.x)
            (px, pt), inv = _unique_inverse(np.concatenate([self.x, self.x]), np.concatenate([self.t_x, self.T]))
            self._pairs = (px, pt, inv[:n], inv[n:])
        return self._pairs


def _bgnbd_ll(params: tuple[float, ...], d: PurchaseData, gradient: bool) -> tuple[float, np.ndarray | None]:
    r, alpha, a, b = params
    ux, Wx, N = d.ux, d.Wx, d.N
    # x-only terms, summed per distinct x: ln G(r+x) - ln G(r) + ln B(a, b+x) - ln B(a, b)
    gx = (
        special.gammaln(r + ux) - special.gammaln(r)
        + special.gammaln(b + ux) - special.gammaln(b)
        - special.gammaln(a + b + ux) + special.gammaln(a + b)
    )
    ll = dot(Wx, gx)
    lT = np.log(alpha + d.T)
    ll += N * r * math.log(alpha) - dot(d.w, (r + d.x) * lT)
    # repeat buyers: + softplus(D), D = ln(a/(b+x-1)) + (r+x) ln((alpha+T)/(alpha+t_x))
    lTr = lT[d.rep]
    ltx = np.log(alpha + d.txr)
    D = math.log(a) - np.log(b + d.xr - 1.0) + (r + d.xr) * (lTr - ltx)
    ll += dot(d.wr, _log_softplus(D))
    if not gradient:
        return ll, None
    sig = d.wr * special.expit(D)  # weight x sigmoid(D)
    psi_ab = special.digamma(a + b)
    psi_abx = special.digamma(a + b + ux)
    g_r = dot(Wx, special.digamma(r + ux) - special.digamma(r)) + N * math.log(alpha) - dot(d.w, lT)
    g_r += dot(sig, lTr - ltx)
    g_alpha = N * r / alpha - dot(d.w, (r + d.x) / (alpha + d.T))
    g_alpha += dot(sig, (r + d.xr) * (1.0 / (alpha + d.Tr) - 1.0 / (alpha + d.txr)))
    g_a = dot(Wx, psi_ab - psi_abx) + float(sig.sum()) / a
    g_b = dot(Wx, special.digamma(b + ux) - special.digamma(b) + psi_ab - psi_abx)
    g_b -= dot(sig, 1.0 / (b + d.xr - 1.0))
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def _nbd_ll(params: tuple[float, ...], d: PurchaseData, gradient: bool) -> tuple[float, np.ndarray | None]:
    """NBD without dropout: each customer buys at a Poisson rate lambda ~ Gamma(r, alpha) for ever.
    The likelihood of x repeat purchases at the observed times in (0, T]: G(r+x) alpha^r /
    (G(r) (alpha+T)^(r+x)) — the BG/NBD's (and Pareto/NBD's) likelihood in the limit of no dropout
    (a -> 0, or s -> 0), so log-likelihoods compare across the three."""
    r, alpha = params
    ux, Wx, N = d.ux, d.Wx, d.N
    lT = np.log(alpha + d.T)
    ll = dot(Wx, special.gammaln(r + ux) - special.gammaln(r)) + N * r * math.log(alpha) - dot(d.w, (r + d.x) * lT)
    if not gradient:
        return ll, None
    g_r = dot(Wx, special.digamma(r + ux) - special.digamma(r)) + N * math.log(alpha) - dot(d.w, lT)
    g_alpha = N * r / alpha - dot(d.w, (r + d.x) / (alpha + d.T))
    return ll, np.array([g_r, g_alpha])


def nbd_log_likelihood(
    params: Any, x: Any, t_x: Any, T: Any, weights: Any = None, *, gradient: bool = False
) -> float | tuple[float, np.ndarray]:
    """Log-likelihood of the NBD without dropout (params r, alpha), same contract as
    :func:`bgnbd_log_likelihood` (t_x is checked but does not enter: without dropout, when the last
    purchase was says nothing)."""
    p = _params(params, _NBD)
    ll, g = _nbd_ll(p, PurchaseData(x, t_x, T, weights), gradient)
    return _ll_result(ll, g)


def dropout_unidentified(fit: FitResult) -> bool:
    """The fitted dropout process ran to the edge of its parameter space: BG/NBD's a or b, or
    Pareto/NBD's s or beta, outside [1e-6, 1e6] (as :attr:`FitResult.degenerate`), or the mean
    dropout — a / (a + b) per purchase, s / beta per week — below 1e-6. That is what data in which
    nobody has been seen to stop buying do (a -> 0, or b -> infinity along a ridge). Whether the
    nested NBD without dropout (:func:`fit_nbd`) then fits as well is for the caller to check (their
    log-likelihoods compare directly)."""
    names = {"bgnbd": ("a", "b"), "pareto_nbd": ("s", "beta")}.get(fit.model)
    if names is None:
        return False
    u, v = (fit.params[n] for n in names)
    mean = u / (u + v) if fit.model == "bgnbd" else u / v
    return mean < _NO_DROPOUT or any(not (1e-6 <= w <= 1e6) for w in (u, v))


def bgnbd_log_likelihood(
    params: Any, x: Any, t_x: Any, T: Any, weights: Any = None, *, gradient: bool = False
) -> float | tuple[float, np.ndarray]:
    """BG/NBD log-likelihood of customers (x, t_x, T), weighted by ``weights`` (counts).

    Parameters
    ----------
    params : FitResult, mapping or sequence
        r, alpha, a, b (all > 0; alpha in weeks).
    x, t_x, T : array_like
        Repeat purchases, recency and age in weeks (module docstring).
    weights : array_like, optional
        Customers per row (default 1).
    gradient : bool
        Also return the gradient with respect to (r, alpha, a, b).

    Returns
    -------
    float, or (float, ndarray of 4)

    Notes
    -----
    [FHL05a] eq. (6)::

        L = B(a, b+x)/B(a, b) G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
            + [x > 0] B(a+1, b+x-1)/B(a, b) G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

    evaluated as ``ln L = ln G(r+x) - ln G(r) + r ln alpha - (r+x) ln(alpha+T) + ln B(a, b+x)
    - ln B(a, b) + [x > 0] softplus(D)`` with ``D = ln(a / (b+x-1)) + (r+x) ln((alpha+T)/(alpha+t_x))``
    (the log of the ratio of the second term to the first), so neither term under- or overflows.
    The gradient is analytic (digamma functions and the sigmoid of D).
    """
    d = PurchaseData(x, t_x, T, weights)
    ll, g = _bgnbd_ll(_params(params, _BGNBD), d, gradient)
    return _ll_result(ll, g)


def bgnbd_p_alive(params: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive at T | x, t_x, T) under the BG/NBD model.

    Notes
    -----
    The denominator of [FHL05a] eq. (10) (Fader, Hardie & Lee 2008)::

        P(alive) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)) = expit(-D)

    with D as in :func:`bgnbd_log_likelihood`. It is 1 for customers without repeat purchases: in
    the BG/NBD model a customer can only drop out right after a repeat purchase, so the quantity
    is meaningful (and shown) for repeat buyers only.
    """
    r, alpha, a, b = _params(params, _BGNBD)
    x, t_x, T, _ = _check_rfm(x, t_x, T)
    out = np.ones_like(x)
    rep = x > 0
    xr = x[rep]
    D = math.log(a) - np.log(b + xr - 1.0) + (r + xr) * (np.log(alpha + T[rep]) - np.log(alpha + t_x[rep]))
    out[rep] = special.expit(-D)
    return np.asarray(out)


def _bgnbd_alive_expectation(params: tuple[float, ...], x: np.ndarray, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, T, alive at T] under BG/NBD (arrays of one shape; t in weeks, >= 0).

    [FHL05a] eq. (10) without its P(alive) denominator::

        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],
        z = t / (alpha+T+t)

    The Euler transformation turns ``(1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)`` into
    ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, whose series' first term is 1 and whose other
    terms carry the factor (a-1)/(a+b+x-1). Dividing through gives, with L = ln(1-z)::

        E = -(a+b+x-1) L exprel((a-1) L) - (1-z)^(a-1) S,
        S = sum_{k>=1} (a+b-1-r)_k (a)_(k-1) / ((a+b+x)_(k-1) k!) z^k

    which has no removable singularity at a = 1 or a+b+x = 1 (where the published form divides
    0 by 0 or has a pole, and scipy/lifetimes give NaN), no overflow for large x (the terms
    shrink like 1/(a+b+x)_k), and no hypergeometric function to take the log of. Rows whose series
    needs more than ``_MAX_TERMS`` terms (z close to 1 with few purchases) are integrated over the
    posterior of the dropout probability instead: E = int_0^1 (1 - (1 + p u)^-(r+x)) / p
    Beta(p; a, b+x) dp, u = t/(alpha+T).
    """
    r, alpha, a, b = params
    x, T, t = np.broadcast_arrays(x, T, t)
    shape = x.shape
    x, T, t = (np.asarray(v, dtype=float).ravel() for v in (x, T, t))
    u = t / (alpha + T)
    L = -np.log1p(u)  # ln(1 - z)
    z = u / (1.0 + u)
    C = a + b + x
    first = -(C - 1.0) * L * special.exprel((a - 1.0) * L)
    A1 = a + b - 1.0 - r
    n = x.size
    S = np.zeros(n)
    done_mask = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    term = A1 * z  # k = 1
    S_act = term.copy()
    aC, az, ascale = C, z, np.abs(first) + 1e-300
    tail = az / (1.0 - az)
    for k in range(1, _MAX_TERMS):
        ratio = (A1 + k) * (a + k - 1.0) / ((aC + k - 1.0) * (k + 1.0)) * az
        term = term * ratio
        S_act = S_act + term
        if k % 8 == 7 or k == _MAX_TERMS - 1:
            small = np.abs(term) * np.maximum(tail, 1.0) <= _EPS * (ascale + np.abs(S_act))
            done = small & (np.abs(ratio) < 1.0)
            if done.any():
                S[idx[done]] = S_act[done]
                done_mask[idx[done]] = True
                keep = ~done
                idx, term, S_act = idx[keep], term[keep], S_act[keep]
                aC, az, ascale, tail = aC[keep], az[keep], ascale[keep], tail[keep]
                if not idx.size:
                    break
    out = first - np.exp((a - 1.0) * L) * S
    out[z == 0] = 0.0
    for i in idx:  # series too slow: integrate over p ~ Beta(a, b+x)
        out[i] = _bgnbd_alive_expectation_quad(params, x[i], u[i])
    return np.reshape(out, shape)


def _bgnbd_alive_expectation_quad(params: tuple[float, ...], x: float, u: float) -> float:
    r, _alpha, a, b = params
    n = r + x

    def h(p: float) -> float:
        if p == 0.0:
            return n * u
        return -math.expm1(-n * math.log1p(p * u)) / p

    val, _err = integrate.quad(h, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b + x - 1.0), epsabs=0.0, epsrel=1e-12, limit=400)
    return float(val) / math.exp(special.betaln(a, b + x))


def bgnbd_expected_purchases(params: Any, t: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """Expected purchases in the next ``t`` weeks of customers (x, t_x, T) under BG/NBD.

    Notes
    -----
    [FHL05a] eq. (10): ``E[Y(t) | x, t_x, T] = P(alive) E[Y(t) | x, T, alive]`` with P(alive) of
    :func:`bgnbd_p_alive` and the conditional expectation evaluated as described in
    :func:`_bgnbd_alive_expectation` (finite for x = 0 with a + b < 1 and for large x).
    ``t`` may be a scalar or an array broadcasting with x.
    """
    params_ = _params(params, _BGNBD)
    x, t_x, T, _ = _check_rfm(*np.broadcast_arrays(x, t_x, T))
    t = np.broadcast_to(np.asarray(t, dtype=float), x.shape)
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("the horizon t must be finite and >= 0")
    (ux, uT, ut), inv = _unique_inverse(x, T, t)
    alive = _bgnbd_alive_expectation(params_, ux, uT, ut)[inv]
    out: np.ndarray = bgnbd_p_alive(params_, x, t_x, T) * alive
    return out


# --------------------------------------------------------------------------------------------
# Pareto/NBD


def _pnbd_ll(params: tuple[float, ...], d: PurchaseData, gradient: bool, rows: bool = False) -> tuple[Any, np.ndarray | None]:
    """Pareto/NBD log-likelihood (total, or per row with ``rows``) and its gradient."""
    r, alpha, s, beta = params
    x, T, w = d.x, d.T, d.w
    px, pt, i_tx, i_T = d.pairs()
    a = r + s + px  # hypergeometric a; c = a + 1
    bb: float | np.ndarray
    if alpha >= beta:  # z = (alpha - beta)/(alpha + t), b = s + 1, c' = a + 1 - b = r + x
        m, bb, cp = alpha, s + 1.0, r + px
    else:  # z = (beta - alpha)/(beta + t), b = r + x, c' = s + 1
        m, bb, cp = beta, r + px, np.full_like(px, s + 1.0)
    lm = np.log(m + pt)
    omz = (min(alpha, beta) + pt) / (m + pt)  # 1 - z without cancellation
    l1z = np.log(omz)
    # z rounds to 1 only where min(alpha, beta) < 1e-15 max(alpha, beta): keep the series finite
    z = np.minimum(abs(alpha - beta) / (m + pt), 1.0 - 2.0**-50)
    logF1, Lcp, Lc, Lz = _log_hyp2f1_1(cp, a + 1.0, z)
    # G(t) = ln[2F1(a, b; a+1; z) (m+t)^-a] with the Euler form 2F1 = (1-z)^(1-b) 2F1(1, c'; c; z)
    G = (1.0 - bb) * l1z + logF1 - a * lm
    G1, G2 = G[i_tx], G[i_T]
    log_e1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    # G2 <= G1 (the integral over (t_x, T] is >= 0); equal when t_x = T, or by rounding
    dG = np.minimum(G2 - G1, 0.0)
    rho = np.exp(dG)
    with np.errstate(divide="ignore"):
        log_e2 = math.log(s) - np.log(r + s + x) + G1 + np.log(-np.expm1(dG))
    lse = np.logaddexp(log_e1, log_e2)
    per_row = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta) + lse
    ll = per_row if rows else dot(w, per_row)
    if not gradient:
        return ll, None
    # dG/d(r, alpha, s, beta) on the pairs
    if alpha >= beta:
        za = (beta + pt) / (alpha + pt) ** 2  # dz/dalpha
        zb = -1.0 / (alpha + pt)
        dG_r = Lcp + Lc - lm
        dG_s = -l1z + Lc - lm
        dG_alpha = (1.0 - bb) * (-za / omz) + Lz * za - a / (alpha + pt)
        dG_beta = (1.0 - bb) * (-zb / omz) + Lz * zb
    else:
        za = -1.0 / (beta + pt)
        zb = (alpha + pt) / (beta + pt) ** 2
        dG_r = -l1z + Lc - lm
        dG_s = Lcp + Lc - lm
        dG_alpha = (1.0 - bb) * (-za / omz) + Lz * za
        dG_beta = (1.0 - bb) * (-zb / omz) + Lz * zb - a / (beta + pt)
    w1 = np.exp(log_e1 - lse)  # share of the "alive at T" term
    # share of the second term times d ln E2: E2/(E1+E2) * (dG1 - rho dG2)/(1 - rho), written
    # without the division (rho -> 1 as t_x -> T, where E2 -> 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        k2 = np.exp(math.log(s) - np.log(r + s + x) + G1 - lse)
    k2 = np.where(np.isfinite(k2), k2, 0.0)
    w2 = 1.0 - w1

    def d_e2(dG: np.ndarray) -> np.ndarray:
        out: np.ndarray = k2 * (dG[i_tx] - rho * dG[i_T])
        return out

    ax = r + s + x
    g = np.empty((4, len(x)))
    g[0] = special.digamma(r + x) - special.digamma(r) + math.log(alpha) + w1 * -np.log(alpha + T) + w2 * (-1.0 / ax) + d_e2(dG_r)
    g[1] = r / alpha + w1 * (-(r + x) / (alpha + T)) + d_e2(dG_alpha)
    g[2] = math.log(beta) + w1 * -np.log(beta + T) + w2 * (1.0 / s - 1.0 / ax) + d_e2(dG_s)
    g[3] = s / beta + w1 * (-s / (beta + T)) + d_e2(dG_beta)
    return ll, (g if rows else (g * w).sum(axis=1))


def pareto_nbd_log_likelihood(
    params: Any, x: Any, t_x: Any, T: Any, weights: Any = None, *, gradient: bool = False
) -> float | tuple[float, np.ndarray]:
    """Pareto/NBD log-likelihood of customers (x, t_x, T), weighted by ``weights`` (counts).

    Parameters
    ----------
    params : FitResult, mapping or sequence
        r, alpha, s, beta (all > 0; alpha and beta in weeks).
    x, t_x, T, weights, gradient
        As in :func:`bgnbd_log_likelihood`; the gradient is with respect to (r, alpha, s, beta).

    Notes
    -----
    [FH05] section 3::

        L = G(r+x) alpha^r beta^s / G(r) * [ 1/((alpha+T)^(r+x) (beta+T)^s) + s/(r+s+x) A0 ]
        A0 = F(z(t_x)) / (m+t_x)^(r+s+x) - F(z(T)) / (m+T)^(r+s+x),
        F(z) = 2F1(r+s+x, b; r+s+x+1; z),  z(t) = |alpha-beta| / (m+t),  m = max(alpha, beta),
        b = s+1 if alpha >= beta else r+x.

    Each hypergeometric term is carried as a logarithm, ``ln F = (1-b) ln(1-z) + ln 2F1(1, c'; c; z)``
    (Euler transformation; c = r+s+x+1, c' = c-b; see :func:`_log_hyp2f1_1`), the difference A0 as
    ``G1 + ln(-expm1(G2 - G1))`` and the sum of the two terms with logaddexp. Evaluated once per
    distinct (x, t) pair. The gradient is analytic; the derivatives of ln 2F1 with respect to its
    parameters are summed with the series (or integrated with it).
    """
    d = PurchaseData(x, t_x, T, weights)
    ll, g = _pnbd_ll(_params(params, _PNBD), d, gradient)
    return _ll_result(float(ll), g)


def _pnbd_log_terms(params: tuple[float, ...], x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln of the two terms of the Pareto/NBD likelihood bracket: alive at T, and died in (t_x, T]."""
    d = PurchaseData(x, t_x, T)
    r, alpha, s, beta = params
    # reuse the likelihood code: per-row ln L minus the common factor gives ln(E1 + E2); E1 is direct
    per_row, _ = _pnbd_ll(params, d, gradient=False, rows=True)
    common = special.gammaln(r + d.x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    log_e1 = -(r + d.x) * np.log(alpha + d.T) - s * np.log(beta + d.T)
    return log_e1, per_row - common


def pareto_nbd_p_alive(params: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive at T | x, t_x, T) under the Pareto/NBD model.

    Notes
    -----
    [FH05] section 5: ``P(alive) = 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A0)``, i.e. the
    share of the first term in the likelihood bracket, computed from the log terms.
    """
    p = _params(params, _PNBD)
    x, t_x, T, _ = _check_rfm(x, t_x, T)
    log_e1, log_sum = _pnbd_log_terms(p, x, t_x, T)
    out: np.ndarray = np.exp(log_e1 - log_sum)
    return out


def _pnbd_alive_expectation(params: tuple[float, ...], x: np.ndarray, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, T, alive at T] under Pareto/NBD, [FH05] section 6 without P(alive)::

        (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]
        = (r+x)/(alpha+T) (beta+T) v exprel(-(s-1) v),   v = ln(1 + t/(beta+T))

    (the second form is finite at s = 1).
    """
    r, alpha, s, beta = params
    v = np.log1p(t / (beta + T))
    out: np.ndarray = (r + x) / (alpha + T) * (beta + T) * v * special.exprel(-(s - 1.0) * v)
    return out


def pareto_nbd_expected_purchases(params: Any, t: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """Expected purchases in the next ``t`` weeks of customers (x, t_x, T) under Pareto/NBD.

    Notes
    -----
    [FH05] section 6 (Schmittlein et al. 1987): ``P(alive) * (r+x)(beta+T)/((alpha+T)(s-1))
    [1 - ((beta+T)/(beta+T+t))^(s-1)]``, see :func:`_pnbd_alive_expectation`.
    """
    p = _params(params, _PNBD)
    x, t_x, T, _ = _check_rfm(*np.broadcast_arrays(x, t_x, T))
    t = np.broadcast_to(np.asarray(t, dtype=float), x.shape)
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("the horizon t must be finite and >= 0")
    out: np.ndarray = pareto_nbd_p_alive(p, x, t_x, T) * _pnbd_alive_expectation(p, x, T, t)
    return out


# --------------------------------------------------------------------------------------------
# Gamma-Gamma


class SpendData:
    """Repeat buyers with a positive mean repeat value: the rows the Gamma-Gamma fit reads, with
    the sums every evaluation reuses (per distinct x: customers and the sum of ln m)."""

    def __init__(self, x: Any, m: Any, weights: Any = None) -> None:
        x, m, w = _check_monetary(x, m, weights)
        use = (x > 0) & (w > 0)
        self.n_excluded = float(w[use & (m <= 0)].sum())
        use &= m > 0
        self.x, self.m, self.w = x[use], m[use], w[use]
        if self.w.sum() <= 0:
            raise ValueError("no repeat buyer with a positive mean repeat value to fit the spend model")
        self.N = float(self.w.sum())
        self.mx = self.m * self.x
        self.ux, inv = np.unique(self.x, return_inverse=True)
        inv = inv.ravel()
        self.Wx = np.bincount(inv, weights=self.w, minlength=len(self.ux))
        self.Wlm = np.bincount(inv, weights=self.w * np.log(self.m), minlength=len(self.ux))


def _gg_ll(params: tuple[float, ...], d: SpendData, gradient: bool) -> tuple[float, np.ndarray | None]:
    p, q, g = params
    ux, Wx, Wlm = d.ux, d.Wx, d.Wlm
    pux = p * ux
    lux = np.log(ux)
    # per distinct x: ln G(px+q) - ln G(px) + (px-1) ln m + px ln x; per row: -(px+q) ln(gamma + m x)
    lgm = np.log(g + d.mx)
    ll = dot(Wx, special.gammaln(pux + q) - special.gammaln(pux) + pux * lux) + dot(pux - 1.0, Wlm)
    ll += d.N * (q * math.log(g) - special.gammaln(q)) - dot(d.w, (p * d.x + q) * lgm)
    if not gradient:
        return ll, None
    psi_pq = special.digamma(pux + q)
    wl = d.w * lgm
    g_p = dot(ux * Wx, psi_pq - special.digamma(pux) + lux) + dot(ux, Wlm) - dot(d.x, wl)
    g_q = dot(Wx, psi_pq) - float(wl.sum()) + d.N * (math.log(g) - special.digamma(q))
    g_g = d.N * q / g - dot(d.w, (p * d.x + q) / (g + d.mx))
    return ll, np.array([g_p, g_q, g_g])


def gamma_gamma_log_likelihood(
    params: Any, x: Any, m: Any, weights: Any = None, *, gradient: bool = False
) -> float | tuple[float, np.ndarray]:
    """Gamma-Gamma log-likelihood of the mean repeat values m of customers with x repeat purchases.

    Rows with x = 0 or m <= 0 are left out (they carry no information on the spend of a purchase).

    Notes
    -----
    [FHL05b] (and Fader & Hardie 2013): with purchase values z_i ~ Gamma(p, nu),
    nu ~ Gamma(q, gamma), the mean m of x values has the density::

        f(m | p, q, gamma, x) = G(px+q) / (G(px) G(q)) gamma^q m^(px-1) x^(px) / (gamma + m x)^(px+q)

    summed in logs with ``weights``; the gradient with respect to (p, q, gamma) is analytic.
    """
    d = SpendData(x, m, weights)
    ll, g = _gg_ll(_params(params, _GG), d, gradient)
    return _ll_result(ll, g)


def gamma_gamma_population_mean(params: Any) -> float:
    """Mean spend per purchase in the population, ``p gamma / (q - 1)`` (infinite for q <= 1)."""
    p, q, g = _params(params, _GG)
    return p * g / (q - 1.0) if q > 1.0 else math.inf


def gamma_gamma_expected_spend(params: Any, x: Any, m: Any) -> np.ndarray:
    """Expected value of a customer's future purchases given x repeat purchases of mean value m.

    Notes
    -----
    [FHL05b] (Fader & Hardie 2013)::

        E[Z | p, q, gamma, m, x] = p (gamma + m x) / (p x + q - 1)
                                 = (q-1)/(px+q-1) * p gamma/(q-1) + px/(px+q-1) * m

    a weighted mean of the population mean and the customer's own mean. Customers with x = 0 or
    m <= 0 (left out of the fit) get the population mean ``p gamma / (q-1)``; with q <= 1 that
    mean does not exist and they get NaN.
    """
    p, q, g = _params(params, _GG)
    x, m, _ = _check_monetary(*np.broadcast_arrays(x, m))
    pop = gamma_gamma_population_mean((p, q, g))
    own = (x > 0) & (m > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = p * (g + m * x) / (p * x + q - 1.0)
    return np.where(own, cond, pop if math.isfinite(pop) else np.nan)


# --------------------------------------------------------------------------------------------
# fitting


#: theta = ln(params) -> (-LL/N, its gradient in theta): what the fits minimise
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def log_objective(model: str, data: PurchaseData | SpendData) -> Objective:
    """The function the fits minimise for ``model`` on ``data``: theta = ln(params) ->
    (-LL/N, gradient), N the customers of ``data``; (inf, 0) where LL is not finite.
    ``data`` is :class:`SpendData` for ``"gamma_gamma"``, :class:`PurchaseData` otherwise."""
    if model not in _MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(_MODELS)}")
    if (model == "gamma_gamma") != isinstance(data, SpendData):
        raise TypeError(f"{model} reads {'SpendData' if model == 'gamma_gamma' else 'PurchaseData'}")
    fun = _LOG_LIKELIHOODS[model]
    N = data.N

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.exp(theta)
        ll, g = fun(tuple(p), data, True)
        if not math.isfinite(ll) or g is None:
            return math.inf, np.zeros_like(theta)
        return -ll / N, -(g * p) / N

    return objective


@functools.cache
def _scipy_openblas() -> Any:
    """The OpenBLAS that scipy's wheels bundle (scipy.libs/libscipy_openblas*.so, already loaded by
    scipy.optimize), or None (another build of scipy: then nothing is changed)."""
    import ctypes
    import glob
    import os

    import scipy

    root = os.path.dirname(os.path.dirname(scipy.__file__))
    for path in sorted(glob.glob(os.path.join(root, "scipy.libs", "libscipy_openblas*.so"))):
        try:
            lib = ctypes.CDLL(path)
            if hasattr(lib, "scipy_openblas_get_num_threads") and hasattr(lib, "scipy_openblas_set_num_threads"):
                return lib
        except OSError:
            continue
    return None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run L-BFGS-B with one thread of scipy's OpenBLAS, and restore its count after. Its vectors
    have 2-4 entries, so a second thread never has work, but on a busy 2-core machine the idle
    threads spin against the other processes: 83 L-BFGS-B steps of the two coarse fits of a 10M
    payment run took 0.58 s in the Fortran routine with the default 2 threads (2026-12-05). The
    arithmetic does not change (nothing is split between threads at this size)."""
    lib = _scipy_openblas()
    if lib is None:
        yield
        return
    before = int(lib.scipy_openblas_get_num_threads())
    lib.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        lib.scipy_openblas_set_num_threads(before)


def _minimize(fun: Any, start: tuple[float, ...], N: float) -> tuple[np.ndarray, float, optimize.OptimizeResult, np.ndarray]:
    """L-BFGS-B on theta = ln(params) of -LL/N (LL and its gradient from ``fun``)."""

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = np.exp(theta)
        ll, g = fun(tuple(p), True)
        if not math.isfinite(ll):
            return math.inf, np.zeros_like(theta)
        return -ll / N, -(g * p) / N

    theta0 = np.log(np.asarray(start, dtype=float))
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(theta0)
    with _one_blas_thread():
        res = optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds, options=_FIT_OPTIONS)
    p = np.exp(res.x)
    ll, g = fun(tuple(p), True)
    return p, ll, res, g * p / N


_LOG_LIKELIHOODS: dict[str, Callable[[tuple[float, ...], Any, bool], tuple[Any, np.ndarray | None]]] = {
    "bgnbd": _bgnbd_ll, "pareto_nbd": _pnbd_ll, "nbd": _nbd_ll, "gamma_gamma": _gg_ll,
}


def _fit_result(model: str, names: tuple[str, ...], p: np.ndarray, ll: float, res: Any, grad: np.ndarray, N: float, rows: int, **kw: Any) -> FitResult:
    on_bound = bool((np.abs(res.x) >= _LOG_BOUND - 1e-9).any())
    # L-BFGS-B may stop on a failed line search at the optimum (rounding): accept a tiny gradient
    converged = bool(math.isfinite(ll) and not on_bound and (res.success or float(np.max(np.abs(grad))) < 1e-6))
    return FitResult(
        model=model,
        params=dict(zip(names, (float(v) for v in p), strict=True)),
        log_likelihood=float(ll),
        converged=converged,
        n_customers=N,
        n_rows=rows,
        iterations=int(res.nit),
        message=str(res.message),
        **kw,
    )


def _rate_start(d: PurchaseData) -> float:
    """Purchases per week over the observed ages: a scale for the start of alpha."""
    return max(dot(d.w, d.x) / max(dot(d.w, d.T), 1e-9), 1e-6)


def fit_bgnbd(x: Any, t_x: Any, T: Any, weights: Any = None, *, start: Any = None) -> FitResult:
    """Fit the BG/NBD model by weighted maximum likelihood.

    Parameters
    ----------
    x, t_x, T : array_like
        Distinct customer histories (module docstring), in weeks.
    weights : array_like, optional
        Customers per row (the compression counts; default 1).
    start : sequence of 4 floats, optional
        Starting (r, alpha, a, b); default (1, 1/rate, 1, 1) with rate = sum(x)/sum(T).

    Returns
    -------
    FitResult
        ``model="bgnbd"``, params r, alpha, a, b, the log-likelihood of [FHL05a] eq. (6) summed
        over customers (:func:`bgnbd_log_likelihood`).

    Notes
    -----
    L-BFGS-B on the logarithms of the parameters (so they stay positive) with the analytic
    gradient, minimising -LL/N.
    """
    d = PurchaseData(x, t_x, T, weights)
    p0 = _params(start, _BGNBD) if start is not None else (1.0, 1.0 / _rate_start(d), 1.0, 1.0)
    p, ll, res, g = _minimize(lambda q, grad: _bgnbd_ll(q, d, grad), p0, d.N)
    return _fit_result("bgnbd", _BGNBD, p, ll, res, g, d.N, len(d.x))


def fit_pareto_nbd(x: Any, t_x: Any, T: Any, weights: Any = None, *, start: Any = None) -> FitResult:
    """Fit the Pareto/NBD model by weighted maximum likelihood ([FH05] section 3).

    Same contract as :func:`fit_bgnbd`; params r, alpha, s, beta; default start
    (1, 1/rate, 1, mean T).
    """
    d = PurchaseData(x, t_x, T, weights)
    mean_T = max(dot(d.w, d.T) / d.N, 1.0)
    p0 = _params(start, _PNBD) if start is not None else (1.0, 1.0 / _rate_start(d), 1.0, mean_T)
    p, ll, res, g = _minimize(lambda q, grad: _pnbd_ll(q, d, grad), p0, d.N)
    return _fit_result("pareto_nbd", _PNBD, p, ll, res, g, d.N, len(d.x))


def fit_nbd(x: Any, t_x: Any, T: Any, weights: Any = None, *, start: Any = None) -> FitResult:
    """Fit the NBD without dropout (r, alpha) by weighted maximum likelihood (:func:`nbd_log_likelihood`).

    The model the BG/NBD and Pareto/NBD reduce to when their dropout parameter runs to its boundary
    (:func:`dropout_unidentified`): every customer keeps buying at their own rate. Same contract as
    :func:`fit_bgnbd`; default start (1, 1/rate).
    """
    d = PurchaseData(x, t_x, T, weights)
    p0 = _params(start, _NBD) if start is not None else (1.0, 1.0 / _rate_start(d))
    p, ll, res, g = _minimize(lambda q, grad: _nbd_ll(q, d, grad), p0, d.N)
    return _fit_result("nbd", _NBD, p, ll, res, g, d.N, len(d.x))


def fit_gamma_gamma(x: Any, m: Any, weights: Any = None, *, start: Any = None) -> FitResult:
    """Fit the Gamma-Gamma spend model by weighted maximum likelihood ([FHL05b]).

    Parameters
    ----------
    x : array_like
        Repeat purchases; rows with x = 0 are ignored.
    m : array_like
        Mean value of the repeat purchases (first purchase excluded); rows with m <= 0 are left
        out of the fit (counted in ``n_excluded``) and get the population mean when predicting.
    weights : array_like, optional
        Customers per row (default 1).
    start : sequence of 3 floats, optional
        Starting (p, q, gamma); default (1, 2, weighted mean of m).

    Returns
    -------
    FitResult
        ``model="gamma_gamma"``, params p, q, gamma (:func:`gamma_gamma_log_likelihood`).
    """
    d = SpendData(x, m, weights)
    p0 = _params(start, _GG) if start is not None else (1.0, 2.0, dot(d.w, d.m) / d.N)
    p, ll, res, g = _minimize(lambda q, grad: _gg_ll(q, d, grad), p0, d.N)
    return _fit_result("gamma_gamma", _GG, p, ll, res, g, d.N, len(d.x), n_excluded=d.n_excluded)


# --------------------------------------------------------------------------------------------
# predictions and CLV


def _purchase_model(fit: Any) -> tuple[str, tuple[float, ...]]:
    if not isinstance(fit, FitResult) or fit.model not in ("bgnbd", "pareto_nbd", "nbd"):
        raise ValueError("expected a BG/NBD or Pareto/NBD FitResult (or the NBD without dropout)")
    return fit.model, _params(fit, _MODELS[fit.model])


def _p_alive(model: str, params: tuple[float, ...], x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    if model == "nbd":  # nobody drops out
        return np.ones(np.broadcast(x, t_x, T).shape)
    if model == "bgnbd":
        return bgnbd_p_alive(params, x, t_x, T)
    return pareto_nbd_p_alive(params, x, t_x, T)


def _alive_expectation(model: str, params: tuple[float, ...], x: np.ndarray, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    if model == "nbd":  # the posterior mean rate (r + x) / (alpha + T), for t weeks
        r, alpha = params
        out: np.ndarray = (r + x) / (alpha + T) * t
        return out
    if model == "bgnbd":
        return _bgnbd_alive_expectation(params, x, T, t)
    return _pnbd_alive_expectation(params, x, T, t)


def p_alive(fit: FitResult, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive at T) under a fitted BG/NBD or Pareto/NBD model (:func:`bgnbd_p_alive`,
    :func:`pareto_nbd_p_alive`)."""
    model, params = _purchase_model(fit)
    x, t_x, T, _ = _check_rfm(x, t_x, T)
    return _p_alive(model, params, x, t_x, T)


def expected_purchases(fit: FitResult, t: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """Expected purchases in the next ``t`` weeks under a fitted BG/NBD or Pareto/NBD model
    (:func:`bgnbd_expected_purchases`, :func:`pareto_nbd_expected_purchases`)."""
    model, params = _purchase_model(fit)
    if model == "bgnbd":
        return bgnbd_expected_purchases(params, t, x, t_x, T)
    if model == "nbd":
        x, t_x, T, _ = _check_rfm(x, t_x, T)
        return _alive_expectation(model, params, x, T, np.asarray(t, dtype=float))
    return pareto_nbd_expected_purchases(params, t, x, t_x, T)


def alive_expectation(fit: FitResult, x: np.ndarray, T: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, T, alive at T]: expected purchases in the next ``t`` weeks of a customer still
    alive, under a fitted BG/NBD, Pareto/NBD or NBD (float arrays that broadcast, weeks; not
    checked: the fast path of :func:`expected_purchases`, which multiplies it by P(alive))."""
    model, params = _purchase_model(fit)
    return _alive_expectation(model, params, x, T, t)


def discounted_alive(fit: FitResult, x: np.ndarray, T: np.ndarray, *, horizon_days: float = 365.0,
                     annual_discount: float = 0.10, nodes: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Per (x, T) row of float arrays (weeks, not checked): the expected purchases over the
    horizon of a customer alive at T, undiscounted and discounted as in
    :func:`discounted_expected_purchases` (which multiplies the second by P(alive))."""
    model, params = _purchase_model(fit)
    H, delta, v, wv = _discounting(horizon_days, annual_discount, nodes)
    return _discounted_alive(model, params, x, T, H, delta, v, wv)


def _discounting(horizon_days: float, annual_discount: float, nodes: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Horizon H (weeks), discount rate delta (per week), Gauss-Legendre nodes and weights on [0, 1]."""
    if not (math.isfinite(horizon_days) and horizon_days >= 0):
        raise ValueError("horizon_days must be finite and >= 0")
    if not (math.isfinite(annual_discount) and annual_discount > -1):
        raise ValueError("annual_discount must be finite and > -1 (0.10 = 10% a year)")
    if nodes < 1:
        raise ValueError("nodes must be >= 1")
    H = horizon_days / DAYS_PER_WEEK
    delta = math.log1p(annual_discount) * DAYS_PER_WEEK / DAYS_PER_YEAR  # per week
    v, wts = np.polynomial.legendre.leggauss(nodes)
    return H, delta, (v + 1.0) / 2.0, wts / 2.0


def _discounted_alive(model: str, params: tuple[float, ...], x: np.ndarray, T: np.ndarray, H: float, delta: float, v: np.ndarray, wv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E(H | alive), discounted E(H | alive)) per (x, T), by integration by parts::

        int_0^H e^(-delta s) dE(s) = e^(-delta H) E(H) + delta int_0^H e^(-delta s) E(s) ds

    The integral runs in w = ln(1 + s/k), k = alpha + T (BG/NBD) or beta + T (Pareto/NBD): E(s)
    has its branch point at s = -k, which for young customers lies close to the horizon's start;
    in w it is at -infinity and the Gauss-Legendre rule converges fast.
    """
    eH = _alive_expectation(model, params, x, T, np.full_like(x, H))
    if delta == 0.0 or H == 0.0:
        return eH, eH.copy()
    k = (params[3] if model == "pareto_nbd" else params[1]) + T
    W = np.log1p(H / k)
    w = W[:, None] * v  # (rows, nodes)
    s = k[:, None] * np.expm1(w)
    e = _alive_expectation(model, params, x[:, None], T[:, None], s)
    jac = W[:, None] * wv * k[:, None] * np.exp(w - delta * s)
    disc = math.exp(-delta * H) * eH + delta * (e * jac).sum(axis=1)
    return eH, disc


def discounted_expected_purchases(
    fit: FitResult, x: Any, t_x: Any, T: Any, *, horizon_days: float = 365.0, annual_discount: float = 0.10, nodes: int = 12
) -> np.ndarray:
    """Expected purchases over the next ``horizon_days``, each discounted to the end of the
    calibration period at ``annual_discount`` a year (continuous compounding equivalent to it).

    Notes
    -----
    With E(s) the expected purchases in the next s weeks (:func:`expected_purchases`) and
    delta = ln(1 + annual_discount) * 7 / 365 per week (a purchase one year ahead is worth
    1/(1 + annual_discount))::

        DET = int_0^H e^(-delta s) dE(s) = e^(-delta H) E(H) + delta int_0^H e^(-delta s) E(s) ds

    the second form by integration by parts; its integral is a Gauss-Legendre rule with ``nodes``
    points in log-time w = ln(1 + s/k), k = alpha + T (BG/NBD) or beta + T (Pareto/NBD), where
    E is smooth even for customers acquired on the last day. E(s) = P(alive) E(s | alive), and
    E(s | alive) depends on (x, T) only, so the hypergeometric series run once per distinct (x, T)
    and node, and P(alive) once per row. This discounts each purchase at the moment the model
    expects it, rather than at the end of its week or month (lifetimes' customer_lifetime_value),
    with 13 evaluations of E instead of 52 weekly ones. Measured against an adaptive mpmath
    integral (2026-11-23): 12 nodes are within 1e-10 relative of it for horizons up to 5 years,
    alpha down to 0.1 week and T = 0 (4e-15 at the CDNOW estimates); 8 nodes within 1e-6.
    """
    model, params = _purchase_model(fit)
    x, t_x, T, _ = _check_rfm(x, t_x, T)
    H, delta, v, wv = _discounting(horizon_days, annual_discount, nodes)
    (ux, uT), inv = _unique_inverse(x, T)
    _eH, disc = _discounted_alive(model, params, ux, uT, H, delta, v, wv)
    out: np.ndarray = _p_alive(model, params, x, t_x, T) * disc[inv]
    return out
