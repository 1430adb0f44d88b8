"""Reference implementations the tests compare the report's fast paths with (they were part of
:mod:`retention_report.clv` while only the tests used them): the per-customer histories as an Ibis
join of the daily and customers tables, their compression in the engine, and per-customer
predictions from the public functions of :mod:`retention_report.clv`."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from retention_report import clv
from retention_report.clv import DAYS_PER_WEEK, FitResult


def predict_customers(
    purchases: FitResult,
    spend: FitResult | None,
    x: Any,
    t_x: Any,
    T: Any,
    m: Any = None,
    *,
    horizon_days: float = 365.0,
    annual_discount: float = 0.10,
    nodes: int = 12,
) -> Any:
    """Per-customer (or per distinct history) predictions of a fitted purchase and spend model.

    Parameters
    ----------
    purchases : FitResult
        A BG/NBD or Pareto/NBD fit.
    spend : FitResult or None
        A Gamma-Gamma fit; None leaves the money columns out.
    x, t_x, T : array_like
        Histories in weeks (module docstring).
    m : array_like, optional
        Mean value of each row's repeat purchases; without it every row gets the population mean
        spend (as do rows with x = 0 or m <= 0).
    horizon_days, annual_discount, nodes
        The CLV horizon (default a year), the discount rate a year (default 10%) and the
        quadrature nodes (:func:`discounted_expected_purchases`).

    Returns
    -------
    pandas.DataFrame
        One row per input row: x, t_x, T, ``p_alive`` (BG/NBD: NaN for x = 0, where the model
        makes it 1 by construction), ``expected_purchases`` over the horizon (undiscounted),
        ``discounted_purchases``, and with ``spend``: ``expected_spend`` (Gamma-Gamma conditional
        mean value of a purchase, [FHL05b]) and ``clv`` = expected_spend x
        discounted_purchases (value over the horizon, in the money of m, before any margin).
    """
    model = purchases.model
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    pa = clv.p_alive(purchases, x, t_x, T)
    eH, disc = clv.discounted_alive(purchases, x, T, horizon_days=horizon_days, annual_discount=annual_discount,
                                    nodes=nodes)
    out = pd.DataFrame({"x": x, "t_x": t_x, "T": T})
    # BG/NBD: 1 for one-time buyers by construction; NBD: 1 for everyone (no dropout) — not a score
    out["p_alive"] = np.where(x == 0, np.nan, pa) if model == "bgnbd" else np.full_like(pa, np.nan) \
        if model == "nbd" else pa
    out["expected_purchases"] = pa * eH
    out["discounted_purchases"] = pa * disc
    if spend is not None:
        if spend.model != "gamma_gamma":
            raise ValueError("spend must be a Gamma-Gamma FitResult")
        mm = np.zeros_like(x) if m is None else np.asarray(m, dtype=float)
        out["expected_spend"] = clv.gamma_gamma_expected_spend(spend, x, mm)
        out["clv"] = out["expected_spend"] * out["discounted_purchases"]
    return out


def _as_date(end: date | str) -> date:
    if isinstance(end, str):
        return date.fromisoformat(end)
    if not isinstance(end, date):
        raise ValueError(f"end must be a date or an ISO date string, got {end!r}")
    return end


def customer_rfm(daily: Any, customers: Any, end: date | str) -> Any:
    """Per customer acquired on or before ``end``: the history the purchase and spend models read.

    Parameters
    ----------
    daily : ibis Table
        customer_id, day, gross, is_purchase (:func:`retention_report.data.build_daily`).
    customers : ibis Table
        customer_id, acquired (:func:`retention_report.data.build_customers`).
    end : date or ISO string
        Last day of the calibration period (inclusive).

    Returns
    -------
    ibis Table
        customer_id, acquired, ``x`` = purchase days in [acquired, end] - 1, ``t_x_days`` = days
        from the first to the last of them, ``T_days`` = days from the first to ``end``, and
        ``repeat_value`` = gross of the purchase days after the first (0 when x = 0).
        Weeks are days / 7 (:func:`rfm_summary`).
    """
    import ibis

    end_ = ibis.literal(_as_date(end), type="date")
    c = customers.filter(customers.acquired <= end_).select("customer_id", "acquired")
    p = daily.filter(daily.is_purchase & (daily.day <= end_)).select("customer_id", "day", "gross")
    j = p.join(c, "customer_id")
    g = j.group_by(["customer_id", "acquired"]).aggregate(
        _days=j.count(), _last=j.day.max(), _repeat=j.gross.sum(where=j.day > j.acquired)
    )
    return g.select(
        "customer_id",
        "acquired",
        x=(g._days - 1).cast("int64"),
        t_x_days=g._last.delta(g.acquired, unit="day").cast("int64"),
        T_days=end_.delta(g.acquired, unit="day").cast("int64"),
        repeat_value=g._repeat.fill_null(0.0).cast("float64"),
    )


def rfm_summary(daily: Any, customers: Any, end: date | str) -> Any:
    """The purchase models' input, compressed in the engine: one row per distinct (x, t_x, T).

    Same inputs as :func:`customer_rfm`. Returns an ibis Table with x, t_x_days, T_days, ``t_x``
    and ``T`` in weeks (days / 7, exact) and ``n`` customers, ordered by x, t_x_days, T_days; pass
    its columns to :func:`fit_bgnbd` with ``weights=n``. Its size is bounded by the distinct
    histories (at most days² / 2 x distinct x), not by the customers.
    """
    t = customer_rfm(daily, customers, end)
    g = t.group_by(["x", "t_x_days", "T_days"]).aggregate(n=t.count())
    return g.select(
        "x", "t_x_days", "T_days", t_x=g.t_x_days / DAYS_PER_WEEK, T=g.T_days / DAYS_PER_WEEK, n=g.n
    ).order_by(["x", "t_x_days", "T_days"])


def monetary_summary(daily: Any, customers: Any, end: date | str) -> Any:
    """The spend model's input, compressed in the engine: repeat buyers grouped by (x, m).

    Same inputs as :func:`customer_rfm`. Returns an ibis Table with ``x`` >= 1, ``m`` = mean value
    of the repeat purchases (repeat_value / x; the first purchase excluded) and ``n`` customers,
    ordered by x, m; pass it to :func:`fit_gamma_gamma` with ``weights=n``.
    """
    t = customer_rfm(daily, customers, end)
    r = t.filter(t.x > 0)
    r = r.select("x", m=r.repeat_value / r.x)
    return r.group_by(["x", "m"]).aggregate(n=r.count()).order_by(["x", "m"])
