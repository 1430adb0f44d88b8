"""The ``clv`` block of metrics.json."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ... import clv
from ...data import Dataset
from ...i18n import N_
from ...periods import Period
from .core import ClvCore, Reason, backtest_curve, clv_core
from .options import ClvSettingsLike

__all__ = ["ClvBlock", "block_summary", "clv_block"]


class ClvBlock(NamedTuple):
    """``block``: the ``clv`` block of metrics.json, or None when the data cannot support a fit;
    ``reason``: why not (None when there is a block)."""

    block: dict[str, Any] | None
    reason: str | None


def _model_name(fit: clv.FitResult) -> str:
    return {"bgnbd": "bg_nbd", "pareto_nbd": "pareto_nbd", "nbd": "nbd"}[fit.model]


def clv_block(ds: Dataset, period: Period, settings: ClvSettingsLike = None, *, core: ClvCore | None = None) -> ClvBlock:
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
    s = block_summary(core)
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


def block_summary(core: ClvCore) -> dict[str, Any]:
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


def _backtest_totals(core: ClvCore) -> dict[str, Any] | None:
    if core.backtest_rows is None or core.backtest_end is None:
        return None
    days = core.observed_days
    predicted = float(backtest_curve(core, np.array([days / clv.DAYS_PER_WEEK]))[0])
    actual = int(core.backtest_rows.actual.sum())
    return {
        "calibration_end": core.backtest_end.isoformat(),
        "predicted_purchases": predicted,
        "actual_purchases": actual,
        "error": predicted / actual - 1.0 if actual else None,
    }
