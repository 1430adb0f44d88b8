"""§4.5 Purchase behaviour and LTV: time to second purchase, lifetime, LTV."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import ibis.expr.types as ir
import pandas as pd

from ..periods import month_end, month_index, month_start
from ._common import lit, month_number, ratio, scalar_row, to_float, to_int, weighted_median

__all__ = [
    "SecondPurchase",
    "time_to_second_purchase",
    "annual_churn",
    "lifetime_from_churn",
    "ltv",
    "observed_lifetime_years",
    "empirical_ltv",
]

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class SecondPurchase:
    """Days from the first to the second purchase over all customers whose second purchase is on
    or before the cut-off (whole history, no cohort filter)."""

    customers: int
    median_days: float | None
    mean_days: float | None
    within_30: float | None
    within_90: float | None
    within_180: float | None
    distribution: pd.DataFrame  # days, customers


def time_to_second_purchase(customers: ir.Table, end: date) -> SecondPurchase:
    """Time to second purchase (SPEC §4.5).

    Input: the customers table (``customer_id, acquired, second``).
    Shares are of the customers counted (second purchase on or before ``end``), within 30/90/180
    days inclusive.
    """
    c = customers.filter(customers.second.notnull() & (customers.second <= lit(end)))
    c = c.mutate(days=c.second.delta(c.acquired, unit="day"))
    dist = c.group_by("days").aggregate(customers=c.count()).order_by("days").execute()
    n = int(dist["customers"].sum()) if len(dist) else 0
    if n == 0:
        return SecondPurchase(0, None, None, None, None, None, dist)
    days, cnt = dist["days"].astype("float64"), dist["customers"].astype("int64")

    def share(limit: int) -> float:
        return float(cnt[days <= limit].sum()) / n

    return SecondPurchase(
        customers=n,
        median_days=weighted_median(days.tolist(), cnt.tolist()),
        mean_days=float((days * cnt).sum() / n),
        within_30=share(30),
        within_90=share(90),
        within_180=share(180),
        distribution=dist,
    )


def annual_churn(churn_rate: float | None, days: int) -> float | None:
    """Annualise a period's churn: 1 − (1 − churn)^(365.25 / days)."""
    if churn_rate is None:
        return None
    return 1.0 - float((1.0 - churn_rate) ** (DAYS_PER_YEAR / days))


def lifetime_from_churn(churn_rate: float | None, days: int) -> float | None:
    """AL in years = 1 / annual churn; None when churn is 0 or undefined (never infinite)."""
    a = annual_churn(churn_rate, days)
    if a is None or a <= 0:
        return None
    return 1.0 / a


def ltv(aov: float | None, frequency: float | None, lifetime_years: float | None, days: int) -> float | None:
    """LTV = AOV × AF × AL with AF annualised as AF × 365.25 / days (SPEC §4.5).

    ``frequency`` is the period's purchases per customer. Worked example (SPEC §7): AOV 100,
    2 purchases a year, 3 years → 600.
    """
    if aov is None or frequency is None or lifetime_years is None:
        return None
    return aov * frequency * (DAYS_PER_YEAR / days) * lifetime_years


def observed_lifetime_years(daily: ir.Table, customers: ir.Table, end: date, window_days: int) -> float | None:
    """Mean lifespan (first to last purchase, in years) of the customers lapsed at ``end``
    (acquired on or before ``end``, no purchase in (end − W, end]); None when there are none.

    The config alternative to the churn-based AL (``metrics.lifetime_method = "observed"``).
    """
    cutoff = end - timedelta(days=window_days)
    d = daily.filter(daily.is_purchase & (daily.day <= lit(end)))
    last = d.group_by("customer_id").aggregate(last=d.day.max())
    lapsed = last.filter(last["last"] <= lit(cutoff)).inner_join(
        customers.select("customer_id", "acquired"), "customer_id"
    )
    r = scalar_row(
        lapsed.aggregate(n=lapsed.count(), days=lapsed["last"].delta(lapsed.acquired, unit="day").mean())
    )
    if to_int(r.get("n")) == 0:
        return None
    return to_float(r.get("days")) / DAYS_PER_YEAR


def empirical_ltv(daily: ir.Table, customers: ir.Table, horizon: date | None, months: int = 12) -> float | None:
    """Empirical ``months``-month LTV: gross revenue per customer in the first ``months``
    calendar months (acquisition month = month 0) of the 12 most recent monthly cohorts whose
    month ``months − 1`` has ended by ``horizon``; None when no cohort is old enough."""
    if horizon is None:
        return None
    # last complete month at the horizon
    last_complete = horizon if horizon == month_end(horizon) else horizon.replace(day=1) - timedelta(days=1)
    newest_cohort = month_index(last_complete) - (months - 1)
    oldest_cohort = newest_cohort - 11
    c = customers.mutate(cidx=month_number(customers.acquired))
    c = c.filter((c.cidx >= oldest_cohort) & (c.cidx <= newest_cohort))
    oldest = month_start(oldest_cohort)
    # purchases from the oldest cohort's first day to the end of the newest cohort's month
    # ``months - 1`` (= last_complete): bounds that let the engine skip the rest of the daily table
    d = daily.filter(daily.is_purchase & (daily.day >= lit(oldest)) & (daily.day <= lit(last_complete)))
    j = d.inner_join(c.select("customer_id", "cidx"), "customer_id")
    j = j.filter(month_number(j.day) - j.cidx < months)
    r_rev = scalar_row(j.aggregate(rev=j.gross.sum()))
    r_n = scalar_row(c.aggregate(n=c.count()))
    return ratio(to_float(r_rev.get("rev")), to_int(r_n.get("n")))
