"""The computation for a period: the histories, the fits (main and backtest) and the per-history
predictions, shared by the metrics.json block and the report section."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ... import clv
from ...data import Dataset
from ...i18n import N_
from ...periods import Period
from .fitcache import FitCache
from .fitting import PurchaseFit, fit_purchases, fit_spend
from .histories import compress_histories
from .options import ClvOptions, ClvSettingsLike, clv_options
from .prediction import distinct_xT, p_alive_days, predict_histories, spend_sums

__all__ = ["ClvCore", "Reason", "backtest_curve", "clv_core"]

# the model names of the config and of metrics.json
_PURCHASE_MODEL = {"bg_nbd": "bgnbd", "pareto_nbd": "pareto_nbd"}


@dataclass
class ClvCore:
    """What :func:`clv_core` computes for a period: the fits, the histories with their predictions
    (``rows``), the backtest, or the ``reason`` there is no prediction."""

    options: ClvOptions
    calibration_end: date | None
    backtest_end: date | None
    reason: str | None = None
    purchases: clv.FitResult | None = None
    spend: clv.FitResult | None = None
    rows: pd.DataFrame | None = None  # histories with predictions (per history, see :func:`clv_core`)
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


def _check_base(h: pd.DataFrame, end: date, opts: ClvOptions) -> str | None:
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


def _without_dropout(fit: PurchaseFit, h: pd.DataFrame) -> tuple[clv.FitResult, str | None]:
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


def clv_core(ds: Dataset, period: Period, settings: ClvSettingsLike = None) -> ClvCore:
    """The fits and per-history predictions for ``period`` (the expensive part), which
    :func:`clv_block`, :func:`customer_scores` and :func:`predicted_value` take as ``core`` so a
    caller computing several of them (the report context) fits once. Nothing is cached here."""
    opts = clv_options(settings if settings is not None else ds)
    last = ds.last_day
    first = ds.first_day
    end = min(period.end, last) if last is not None else None
    back_end = period.start - timedelta(days=1)
    return _compute(ds, period, opts, first, end, back_end)



def _compute(ds: Dataset, period: Period, opts: ClvOptions, first: date | None, end: date | None, back_end: date) -> ClvCore:
    if not opts.enabled:
        return ClvCore(opts, end, None, reason=Reason(N_("the prediction is switched off in the configuration (clv.enabled = false)")))
    if end is None or first is None or end < first:
        return ClvCore(opts, end, None, reason=Reason(N_("no purchases on or before the period end")))
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
    core = ClvCore(opts, end, back_end if has_back else None, observed_days=observed_days)
    h = data.histories
    reason = _check_base(h, end, opts)
    if reason is None and not (data.spend["m"] > 0).any():
        reason = Reason(N_("no repeat purchase with a positive value: the spend model cannot be fitted"))
    if reason:
        core.reason = reason
        return core
    model = _PURCHASE_MODEL[opts.model]
    fits = FitCache.for_settings(ds.settings)
    main = fit_purchases(model, h.x, h.t_x_days, h.T_days, h.n, cache=fits)
    core.purchases, core.fallback = _without_dropout(main, h)
    problem = _model_problem(core.purchases)
    sp = data.spend
    spend = fit_spend(sp.x.to_numpy(float), sp.m.to_numpy(), sp.n.to_numpy(float), cache=fits)
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
    pa, ep, dp = predict_histories(core.purchases, x, tx, T, opts.horizon_days, opts.annual_discount)
    spend_sum = spend_sums(spend, x.astype(float), n.astype(float), h.n_m.to_numpy(float), h.sum_m.to_numpy())
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
    bfit = fit_purchases(model, b.x, b.t_x_days, b.T_days, b.n, start=main if core.fallback is None else None,
                         cache=fits)
    bpurchases, _why = _without_dropout(bfit, b)
    bproblem = _model_problem(bpurchases)
    if bproblem:
        core.backtest_reason = bproblem
        return core
    core.backtest_fit = bpurchases
    brows = b
    brows["p_alive"] = p_alive_days(bpurchases, b.x.to_numpy(), b.t_x_days.to_numpy(), b.T_days.to_numpy())
    core.backtest_rows = brows
    return core


def backtest_curve(core: ClvCore, weeks: np.ndarray) -> np.ndarray:
    """Expected purchases of the backtest base in the first ``weeks`` (array) after its end."""
    b, fit = core.backtest_rows, core.backtest_fit
    assert b is not None and fit is not None
    x, T = b.x.to_numpy(), b.T_days.to_numpy()
    ux, uT, inv = distinct_xT(x, T)
    e = clv.alive_expectation(fit, ux[:, None].astype(float), (uT / clv.DAYS_PER_WEEK)[:, None],
                           np.asarray(weeks, dtype=float)[None, :])
    w = b.n.to_numpy(float) * b.p_alive.to_numpy()
    out: np.ndarray = np.bincount(inv, weights=w, minlength=len(ux)) @ e
    return out
