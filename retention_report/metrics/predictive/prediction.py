"""Predictions per compressed history: P(alive), expected and discounted purchases, and the sums
of the Gamma-Gamma expected spend of each history's customers."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ... import clv

__all__ = ["distinct_xT", "p_alive_days", "predict_histories", "spend_sums"]


def distinct_xT(x: np.ndarray, T_days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (x, T) of rows and the inverse index (O(n) for rows sorted by x, T)."""
    if len(x) and np.all((np.diff(x) > 0) | ((np.diff(x) == 0) & (np.diff(T_days) >= 0))):
        new = np.r_[True, (x[1:] != x[:-1]) | (T_days[1:] != T_days[:-1])]
        return x[new], T_days[new], np.cumsum(new) - 1
    key = x.astype(np.int64) * (int(T_days.max()) + 1) + T_days
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return x[first], T_days[first], inv.ravel()


def p_alive_days(fit: clv.FitResult, x: np.ndarray, tx_days: np.ndarray, T_days: np.ndarray) -> np.ndarray:
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


def predict_histories(fit: clv.FitResult, x: np.ndarray, tx_days: np.ndarray, T_days: np.ndarray, horizon_days: float,
             annual_discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per history: P(alive), expected purchases over the horizon and their discounted count
    (:func:`clv.discounted_expected_purchases`), the conditional expectations once per (x, T)."""
    ux, uT, inv = distinct_xT(x, T_days)
    eH, disc = clv.discounted_alive(fit, ux.astype(float), uT / clv.DAYS_PER_WEEK, horizon_days=horizon_days,
                                    annual_discount=annual_discount, nodes=12)
    pa = p_alive_days(fit, x, tx_days, T_days)
    return pa, pa * eH[inv], pa * disc[inv]


def spend_sums(spend: clv.FitResult, x: np.ndarray, n: np.ndarray, n_m: np.ndarray, sum_m: np.ndarray) -> np.ndarray:
    """Sum over each history's customers of the Gamma-Gamma expected value of a purchase:
    p (gamma n_m + x sum_m) / (p x + q - 1) for the n_m repeat buyers with m > 0, the population
    mean p gamma / (q - 1) for the others ([FHL05b]; :func:`clv.gamma_gamma_expected_spend`)."""
    p, q, g = spend.values
    pop = p * g / (q - 1.0)
    own = p * (g * n_m + x * sum_m) / (p * x + q - 1.0)
    out: np.ndarray = (n - n_m) * pop + np.where(n_m > 0, own, 0.0)
    return out
