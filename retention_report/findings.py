"""Plain-language findings generated from the numbers of a metrics document (SPEC §4.6).

Never hand-written: each sentence is a rule over metrics.json values, so the same numbers always
give the same findings. 3–6 findings, most important first.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from .formatting import KPI_SPECS, change, fmt_money, fmt_pct, fmt_value, is_missing

__all__ = ["findings"]

# KPIs considered for "the largest movement" (relative change for amounts, pp for rates)
_MOVERS = ["customers_new", "customers_returning", "aov", "repeat_purchase_rate", "crr", "churn_rate",
           "purchase_frequency", "refund_rate"]


def _period_name(doc: dict[str, Any], which: str) -> str:
    from .periods import parse_period

    info = doc.get(which) or {}
    try:
        return parse_period(info["period"]).title
    except Exception:
        return info.get("period", which)


def _month(iso: str, grain: str) -> str:
    d = date.fromisoformat(iso)
    return d.strftime("%b %Y") if grain == "month" else f"week of {d:%d %b %Y}"


def findings(doc: dict[str, Any], currency: str | None = None) -> list[str]:
    """3–6 sentences about the period, from a metrics.json-shaped dict."""
    cur = currency or doc.get("currency") or "EUR"
    k, prev, ago = doc["kpis"], doc.get("previous") or {}, doc.get("year_ago") or {}
    out: list[str] = []
    prev_name, ago_name = _period_name(doc, "previous_period"), _period_name(doc, "year_ago_period")

    # 1. revenue and its movement
    rev = k.get("revenue")
    if not is_missing(rev):
        parts = []
        for ref, name in ((prev, prev_name), (ago, ago_name)):
            c = change("revenue", rev, ref.get("revenue"), cur)
            if c.relative is not None:
                word = "up" if c.absolute and c.absolute > 0 else "down" if c.absolute else "flat"
                parts.append(f"{word} {abs(100 * c.relative):.1f}% on {name}" if word != "flat" else f"flat on {name}")
        tail = f", {' and '.join(parts)}" if parts else ""
        out.append(f"Net revenue was {fmt_money(rev, cur)}{tail}.")

    # 2. new vs returning
    share = k.get("new_revenue_share")
    if not is_missing(share) and k.get("gross_revenue"):
        out.append(
            f"Returning customers brought {fmt_pct(1 - share)} of gross revenue and first purchases "
            f"{fmt_pct(share)}; {k.get('customers_new', 0):,} new customers joined "
            f"and {k.get('customers_returning', 0):,} existing customers bought again."
        )

    # 3. the largest movement against the previous period or a year ago
    best: tuple[float, str] | None = None
    for key in _MOVERS:
        for ref, name in ((prev, prev_name), (ago, ago_name)):
            c = change(key, k.get(key), ref.get(key), cur)
            if c.absolute is None:
                continue
            size = abs(c.absolute) * 100 if KPI_SPECS[key].unit == "rate" else abs(c.relative or 0) * 100
            if KPI_SPECS[key].unit == "rate" and size < 0.5:
                continue
            if best is None or size > best[0]:
                verb = "rose" if c.absolute > 0 else "fell"
                amount = (f"{abs(100 * c.absolute):.1f} percentage points" if KPI_SPECS[key].unit == "rate"
                          else f"{abs(100 * (c.relative or 0)):.1f}%")
                tone = {"good": " (good)", "bad": " (a warning sign)"}.get(c.tone, "")
                best = (size, f"The largest movement: {KPI_SPECS[key].label.lower()} {verb} {amount} "
                        f"against {name}, to {fmt_value(key, k.get(key), cur)}{tone}.")
    if best and best[0] >= 1:
        out.append(best[1])

    # 4. retention in one line
    crr, churn = k.get("crr"), k.get("churn_rate")
    if not is_missing(crr) and not is_missing(churn):
        out.append(
            f"Of {k['customers_start']:,} customers active at the start, {k['customers_churned']:,} "
            f"churned ({fmt_pct(churn)}); with {k['customers_reactivated']:,} reactivated, the "
            f"customer retention rate is {fmt_pct(crr)}."
        )

    # 5. the segment that brings most revenue
    segs = [s for s in doc.get("segments") or [] if s.get("revenue_share")]
    if segs:
        from .metrics.segments import SEGMENT_LABELS

        top = max(segs, key=lambda s: s["revenue_share"])
        total = sum(s["customers"] for s in doc["segments"] if s["segment"] != "lapsed") or 1
        cust_share = top["customers"] / total
        out.append(
            f"{SEGMENT_LABELS.get(top['segment'], top['segment'])} customers — "
            f"{fmt_pct(cust_share)} of the non-lapsed base — brought the most revenue: "
            f"{fmt_pct(top['revenue_share'])}, at {fmt_money(top['aov'], cur)} per purchase."
        )

    # 6. the weakest recent cohort (age-1 retention among cohorts where it is observable)
    co = doc.get("cohorts") or {}
    ret = co.get("retention") or []
    cands = []
    for label, size, row in zip(co.get("cohort", []), co.get("size", []), ret, strict=False):
        if size and size >= 20 and len(row) > 1 and row[1] is not None:
            cands.append((row[1], label, size))
    if len(cands) >= 3:
        worst = min(cands)
        avg = sum(r * s for r, _, s in cands) / sum(s for _, _, s in cands)
        if worst[0] < avg:
            out.append(
                f"The weakest recent cohort is {_month(worst[1], co.get('grain', 'month'))}: "
                f"{fmt_pct(worst[0])} of its {worst[2]:,} customers bought again one "
                f"{co.get('grain', 'month')} later, against {fmt_pct(avg)} on average."
            )

    if not doc.get("complete", True) and len(out) < 6:
        out.insert(0, f"The period is incomplete: the data end on {str((doc.get('data_quality') or {}).get('last_payment'))[:10]}, "
                      "so totals will still grow.")
    if len(out) < 3:
        out.append("There were too few payments in the period for further findings.")
    return out[:6]
