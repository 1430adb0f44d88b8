"""§4.7 Revenue bridge: why gross revenue changed from the previous period to this one, by customer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import SupportsFloat

import ibis.expr.types as ir

from ._common import in_range, scalar_row

__all__ = ["RevenueBridge", "revenue_bridge", "BRIDGE_KEYS"]

# metrics.json ``revenue_bridge`` keys, in the order of the waterfall
BRIDGE_KEYS = ("previous", "new", "reactivated", "expansion", "contraction", "lost", "current")

# the engine sums money as DECIMAL(38, 10): every per-customer sum is rounded once, 10 decimals down
# (far below any currency's smallest unit), and all the bridge's additions are then exact
_MONEY = "decimal(38, 10)"


@dataclass(frozen=True)
class RevenueBridge:
    """Gross revenue of the previous period → of this period, split by customer.

    ``previous + new + reactivated + expansion − contraction − lost = current`` holds exactly
    (decimal arithmetic, checked on construction). All parts are non-negative amounts.
    """

    previous: Decimal  # gross revenue of the previous period
    new: Decimal  # gross revenue in P of customers acquired in P
    reactivated: Decimal  # acquired before P, bought in P, not in the previous period
    expansion: Decimal  # bought in both: the sum of the increases
    contraction: Decimal  # bought in both: the sum of the decreases (a positive number)
    lost: Decimal  # bought in the previous period, not in P: their previous gross revenue
    current: Decimal  # gross revenue of P

    def __post_init__(self) -> None:
        lhs = self.previous + self.new + self.reactivated + self.expansion - self.contraction - self.lost
        if lhs != self.current:  # pragma: no cover - a failed invariant is a bug, not bad data
            raise AssertionError(f"revenue bridge does not add up: {lhs} != current {self.current} ({self})")

    def to_dict(self) -> dict[str, float]:
        """The metrics.json block: amounts as floats, in :data:`BRIDGE_KEYS` order."""
        d = asdict(self)
        return {k: float(d[k]) for k in BRIDGE_KEYS}


def _dec(v: SupportsFloat | None) -> Decimal:
    """An engine sum as a Decimal (a sum over no rows is 0)."""
    if v is None:
        return Decimal(0)
    if isinstance(v, Decimal):
        return v if v.is_finite() else Decimal(0)
    f = float(v)
    return Decimal(0) if f != f else Decimal(str(v))


def revenue_bridge(
    daily: ir.Table, customers: ir.Table, start: date, end: date, prev_start: date, prev_end: date
) -> RevenueBridge:
    """The revenue bridge from ``[prev_start, prev_end]`` to ``[start, end]``.

    Input: the daily table (``customer_id, day, gross, is_purchase``) and the customers table
    (``customer_id, acquired``) of :mod:`retention_report.data`. One grouped pass over the two
    periods' purchase days (a sum per customer and period), then one aggregate: it runs in the
    engine and scales like the other period metrics.

    Notes
    -----
    SPEC §4.7, with gross revenue as in §4.1 (the sum of positive payments: refunds are not part of
    the bridge, they are their own line in the KPI table, so ``current`` is the period's
    ``gross_revenue`` KPI). A customer *bought* in a period when they made a purchase in it (gross
    revenue > 0). **new**: acquired in P (they cannot have bought in the previous period);
    **reactivated**: acquired before P, bought in P, not in the previous period; **lost**: bought
    in the previous period, not in P (their previous revenue); **expansion** / **contraction**:
    bought in both, the positive / negative differences (contraction as a positive amount).
    """
    lo = min(prev_start, start)
    d = daily.filter(daily.is_purchase & in_range(daily.day, lo, end))
    g = d.gross.cast(_MONEY)
    per = d.group_by("customer_id").aggregate(
        prev=g.sum(where=in_range(d.day, prev_start, prev_end)),
        cur=g.sum(where=in_range(d.day, start, end)),
    )
    # only customers acquired in P are new: joining just them keeps the hash table small
    acq = customers.filter(in_range(customers.acquired, start, end)).select("customer_id", "acquired")
    j = per.left_join(acq, "customer_id")
    zero = 0
    prev = j.prev.fill_null(zero)
    cur = j.cur.fill_null(zero)
    new = j.acquired.notnull()
    both = (prev > zero) & (cur > zero)
    diff = cur - prev
    r = scalar_row(
        j.aggregate(
            previous=prev.sum(),
            current=cur.sum(),
            new=cur.sum(where=new),
            reactivated=cur.sum(where=~new & (prev == zero) & (cur > zero)),
            lost=prev.sum(where=(prev > zero) & (cur == zero)),
            expansion=diff.sum(where=both & (diff > zero)),
            contraction=(-diff).sum(where=both & (diff < zero)),
        )
    )
    return RevenueBridge(**{k: _dec(r.get(k)) for k in BRIDGE_KEYS})
