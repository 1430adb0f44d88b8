"""§4.2 Regular-customer segments by purchase frequency (the "extended method", X/Y/Z)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from ..i18n import N_
from ..periods import Period, add_months
from ._common import in_range, lit, ratio

__all__ = ["SEGMENT_ORDER", "SEGMENT_LABELS", "FrequencySegments", "frequency_segments"]

SEGMENT_ORDER = ["frequent", "medium", "rare", "new", "lapsed"]
# the segments' names for people, as gettext msgids (formatting.segment_label translates them)
SEGMENT_LABELS = {
    "frequent": N_("Frequent (X)"),
    "medium": N_("Medium (Y)"),
    "rare": N_("Rare (Z)"),
    "new": N_("New (all purchases)"),  # new customers with all their purchases: not "first purchases"
    "lapsed": N_("Lapsed"),
}


@dataclass(frozen=True)
class FrequencySegments:
    """The segment table and the thresholds that made it."""

    table: pd.DataFrame
    low: float | None  # purchases per month: rare <= low < medium <= high < frequent
    high: float | None
    data_driven: bool  # thresholds from terciles (True) or from the config (False)
    lookback_months: int


def _terciles(freq: pd.Series, counts: pd.Series) -> tuple[float | None, float | None]:
    """Exact 1/3 and 2/3 quantiles (lower, by rank) of a distribution given as value counts."""
    order = freq.argsort()
    f, c = freq.iloc[order].to_numpy(), counts.iloc[order].to_numpy()
    n = int(c.sum())
    if n == 0:
        return None, None
    cum = c.cumsum()

    def q(p: float) -> float:
        rank = max(int(-(-p * n // 1)), 1)  # ceil(p * n), at least 1
        return float(f[(cum >= rank).argmax()])

    return q(1 / 3), q(2 / 3)


def _with_silent(grid: pd.DataFrame, customers: ir.Table, end: date) -> pd.DataFrame:
    """``grid`` plus the customers acquired by ``end`` without a purchase in the days it groups:
    not new (a customer acquired in the period bought in it), not active, so lapsed, with no
    purchase in the lookback or the period — counted from the customers table (a range of it:
    it is ordered by acquisition) instead of joining every customer to the grouped purchases."""
    everyone = int(customers.filter(customers.acquired <= lit(end)).count().execute())
    silent = everyone - int(grid["customers"].sum())
    if silent <= 0:
        return grid
    hit = (grid["kind"] == "lapsed") & (grid["n_look"] == 0)
    if hit.any():
        grid = grid.copy()
        grid.loc[hit, "customers"] += silent
        return grid
    row = pd.DataFrame({"kind": ["lapsed"], "n_look": [0], "customers": [silent], "buyers": [0], "revenue": [0.0],
                        "purchases": [0]})
    return pd.concat([grid, row.astype({c: grid[c].dtype for c in row.columns if c in grid.columns})],
                     ignore_index=True)


def frequency_segments(
    daily: ir.Table,
    customers: ir.Table,
    period: Period,
    window_days: int = 365,
    lookback_months: int = 12,
    thresholds: tuple[float, float] | list[float] | None = None,
) -> FrequencySegments:
    """Split every customer acquired up to ``period.end`` into frequent / medium / rare / new /
    lapsed and report their business in the period.

    Input: the daily and customers tables of :mod:`retention_report.data`.

    Returns
    -------
    FrequencySegments whose ``table`` has one row per segment (``SEGMENT_ORDER``) with
    ``customers`` (segment size), ``buyers`` (of them, customers who bought in the period),
    ``revenue`` (gross, in the period), ``purchases``, ``aov`` (revenue / purchases),
    ``revenue_share`` (of the period's gross revenue; the shares sum to 1), ``customer_share``
    and ``frequency`` (mean purchases per month over the lookback).

    Notes
    -----
    SPEC §4.2. *New*: acquired in the period. *Lapsed*: acquired before the period and not active
    at ``end`` (no purchase in (end − W, end]). The others are returning customers, ranked by
    frequency = purchases in the ``lookback_months`` up to ``end`` / ``lookback_months``:
    *rare* (Z) when frequency <= low, *medium* (Y) when low < frequency <= high, *frequent* (X)
    above high. Without configured thresholds, low and high are the terciles of the frequency
    distribution of these customers (by rank; with many ties a segment can be empty).
    """
    start, end = period.start, period.end
    look_first = add_months(end, -lookback_months) + timedelta(days=1)
    act_first = end - timedelta(days=window_days - 1)
    lo = min(look_first, act_first, start)
    d = daily.filter(daily.is_purchase & in_range(daily.day, lo, end))
    per = d.group_by("customer_id").aggregate(
        n_look=in_range(d.day, look_first, end).cast("int32").sum(),
        active=in_range(d.day, act_first, end).max(),
        rev=d.gross.sum(where=in_range(d.day, start, end)),
        pur=in_range(d.day, start, end).cast("int32").sum(),
    )
    # everyone in ``per`` bought by ``end``, so was acquired by then; only the customers acquired
    # in the period are new, and joining just them keeps the hash table small
    acq = customers.filter(in_range(customers.acquired, start, end)).select("customer_id", "acquired")
    j = per.left_join(acq, "customer_id")
    kind = (
        ibis.cases(
            (j.acquired.notnull(), "new"),
            (~j.active.fill_null(False), "lapsed"),
            else_="regular",
        )
    )
    j = j.mutate(kind=kind, n_look=j.n_look.fill_null(0))
    # one small result: customers and their business by kind and purchase count in the lookback
    # (one row per distinct count); the thresholds and the segments follow from it in pandas
    grid = (
        j.group_by(["kind", "n_look"])
        .aggregate(
            customers=j.count(),
            buyers=(j.pur.fill_null(0) > 0).cast("int32").sum(),
            revenue=j.rev.fill_null(0.0).sum(),
            purchases=j.pur.fill_null(0).sum(),
        )
        .execute()
    )
    grid = _with_silent(grid, customers, end)
    grid["freq"] = grid["n_look"].astype("float64") / lookback_months
    grid["revenue"] = grid["revenue"].astype("float64")
    reg = grid["kind"] == "regular"
    low: float | None
    high: float | None
    if thresholds:
        low, high = float(thresholds[0]), float(thresholds[1])
        data_driven = False
    else:
        low, high = _terciles(grid.loc[reg, "freq"], grid.loc[reg, "customers"]) if reg.any() else (None, None)
        data_driven = True
    grid["segment"] = grid["kind"]
    if low is not None:
        f = grid["freq"]
        grid.loc[reg, "segment"] = "frequent"
        grid.loc[reg & (f <= high), "segment"] = "medium"
        grid.loc[reg & (f <= low), "segment"] = "rare"
    grid["freq_sum"] = grid["freq"] * grid["customers"]
    agg = grid.groupby("segment")[["customers", "buyers", "revenue", "purchases", "freq_sum"]].sum()
    agg["frequency"] = agg["freq_sum"] / agg["customers"]
    agg = agg.drop(columns="freq_sum")
    table = agg.reindex(SEGMENT_ORDER)
    table[["customers", "buyers", "purchases"]] = (
        table[["customers", "buyers", "purchases"]].fillna(0).astype("int64")
    )
    table["revenue"] = table["revenue"].fillna(0.0).astype("float64")
    total_rev = float(table["revenue"].sum())
    total_cust = int(table["customers"].sum())
    table["aov"] = [ratio(r, p) for r, p in zip(table["revenue"], table["purchases"], strict=True)]
    table["revenue_share"] = [ratio(r, total_rev) for r in table["revenue"]]
    table["customer_share"] = [ratio(n, total_cust) for n in table["customers"]]
    table = table.astype({"aov": "float64", "revenue_share": "float64", "customer_share": "float64"})
    table.index.name = "segment"
    return FrequencySegments(table, low, high, data_driven, lookback_months)
