"""What the report section "Predicted customer value" shows: aggregates of the per-history
predictions, and the per-customer scores computed in the engine (CSV export, CLV deciles, segments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ... import clv
from ...data import Dataset
from ...periods import Period
from .._common import lit
from .block import block_summary, clv_block
from .core import ClvCore, backtest_curve, clv_core
from .histories import customer_histories, typed_null
from .options import ClvSettingsLike

__all__ = ["PredictedValue", "customer_scores", "predicted_value"]


def customer_scores(ds: Dataset, period: Period, settings: ClvSettingsLike = None) -> Any:
    """Per customer acquired by the calibration end: the model's scores, as an ibis Table in the
    engine (nothing per customer is loaded into Python).

    Columns: customer_id, acquired, x, t_x and T (weeks), m (mean repeat value), value (gross to
    date), p_alive (null for one-time buyers under BG/NBD, where it is 1 by construction),
    expected_purchases (over the horizon), expected_spend (per purchase, Gamma-Gamma), clv
    (discounted expected revenue over the horizon). Raises ValueError with the reason when the
    data cannot support a fit.
    """
    import ibis

    core = clv_core(ds, period, settings)
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
        p_alive = typed_null("float64")
    else:
        p_alive = (j.x == 0).ifelse(typed_null("float64"), j._pa) if core.purchases.model == "bgnbd" else j._pa
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


def _cohort_frame(core: ClvCore, months: int) -> tuple[pd.DataFrame, dict[str, Any]]:
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


def _segment_frame(ds: Dataset, scores: Any, segment: str, end: date) -> pd.DataFrame:
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


def _backtest_frame(ds: Dataset, core: ClvCore, period: Period) -> pd.DataFrame:
    """Weekly cumulative purchases in the period of the customers acquired before it: predicted by
    the backtest fit and actual (days counted from the period start; the last week may be short)."""
    assert core.backtest_end is not None and core.calibration_end is not None
    days = core.observed_days
    ends = np.minimum(np.arange(7, days + 7, 7), days)
    predicted = backtest_curve(core, ends / clv.DAYS_PER_WEEK)
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


def predicted_value(ds: Dataset, period: Period, settings: ClvSettingsLike = None, *, segment: str = "",
                    cohort_count: int = 12, core: ClvCore | None = None) -> PredictedValue:
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
    summary = block_summary(core)
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
