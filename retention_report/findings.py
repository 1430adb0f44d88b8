"""Plain-language findings generated from the numbers of a metrics document (SPEC §4.6).

Never hand-written: each sentence is a rule over metrics.json values, so the same numbers always
give the same findings. At most 6, most important first. A rule with nothing to say (a value
missing or zero, a share that rounds to 0.0%) is left out rather than printing "n/a", and no filler
is added: a period with little data gets fewer findings (possibly fewer than the 3 SPEC §4.6 aims
at) — every finding shown says something true about the numbers. Comparisons with a previous or
year-ago period the data cover only partly or not at all (``coverage`` in ``previous_period`` /
``year_ago_period``) are neither stated as changes, judged good or bad, nor picked as the largest
movement.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from .formatting import (
    change,
    coverage,
    fmt_count,
    fmt_money,
    fmt_pct,
    fmt_value,
    is_missing,
    kpi_spec,
    movement_phrase,
)

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
        return str(info.get("period") or which.replace("_period", "").replace("_", " "))


def _month(iso: str, grain: str) -> str:
    d = date.fromisoformat(str(iso)[:10])
    return d.strftime("%b %Y") if grain == "month" else f"week of {d:%d %b %Y}"


def _day(iso: Any) -> str | None:
    try:
        d = date.fromisoformat(str(iso)[:10])
    except ValueError:
        return None
    return f"{d.day} {d:%b %Y}"


def _lower_label(label: str) -> str:
    """"Churn rate" → "churn rate", but "AOV per order" stays."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def _shown(v: Any) -> bool:
    """A share worth a sentence: present and not "0.0%" once formatted."""
    return not is_missing(v) and fmt_pct(v) not in ("0.0%", "−0.0%")


def _count(v: Any) -> bool:
    return not is_missing(v)


def _not_compared(doc: dict[str, Any], skipped: list[tuple[str, str]]) -> str:
    """The clause naming the reference periods (``(name, which)``) not compared with, and why."""
    names = " and ".join(name for name, _ in skipped)
    verb = "are" if len(skipped) > 1 else "is"
    first = str((doc.get("data_quality") or {}).get("first_payment") or "")[:10]
    if _day(first) and all(str((doc.get(w) or {}).get("start", "")) < first for _, w in skipped):
        return f"{names} {verb} not compared: the data begin on {_day(first)}"
    return f"{names} {verb} not compared: the data cover {'them' if len(skipped) > 1 else 'it'} only partly"


def findings(doc: dict[str, Any], currency: str | None = None) -> list[str]:
    """Up to 6 sentences about the period, from a metrics.json-shaped dict (fewer when there is
    less to say)."""
    cur = currency or doc.get("currency") or "EUR"
    k = doc.get("kpis") or {}
    out: list[str] = []
    refs: list[tuple[dict[str, Any], str]] = []  # reference periods that can be compared with
    skipped: list[tuple[str, str]] = []  # (name, which) of those that cannot: partly or not covered
    for block, which in (("previous", "previous_period"), ("year_ago", "year_ago_period")):
        name, cov = _period_name(doc, which), coverage(doc, which)
        if cov == "full":
            refs.append((doc.get(block) or {}, name))
        else:
            skipped.append((name, which))

    # 1. revenue and its movement
    rev = k.get("revenue")
    if not is_missing(rev) and (k.get("gross_revenue") or k.get("refunds") or rev):
        moves = (movement_phrase(rev, ref.get("revenue"), name) for ref, name in refs)
        parts = [m for m in moves if m]
        tail = f", {' and '.join(parts)}" if parts else ""
        if skipped:
            tail += f"; {_not_compared(doc, skipped)}"
        out.append(f"Net revenue was {fmt_money(rev, cur)}{tail}.")

    # 2. new vs returning
    share = k.get("new_revenue_share")
    if not is_missing(share) and k.get("gross_revenue") and (_shown(share) or _shown(1 - share)):
        if (doc.get("settings") or {}).get("split_basis") == "customer":
            text = (f"Customers acquired in the period brought {fmt_pct(share)} of gross revenue and "
                    f"earlier customers {fmt_pct(1 - share)}")
        else:
            text = (f"Repeat purchases brought {fmt_pct(1 - share)} of gross revenue and first purchases "
                    f"{fmt_pct(share)}")
        new, ret = k.get("customers_new"), k.get("customers_returning")
        if _count(new) and _count(ret) and (new or ret):
            text += (f"; {fmt_count(new)} new customers joined and {fmt_count(ret)} existing customers "
                     "bought again")
        out.append(text + ".")

    # 3. the largest movement against a fully covered previous period or year ago
    best: tuple[float, str] | None = None
    for key in _MOVERS:
        spec = kpi_spec(key, doc)
        for ref, name in refs:
            c = change(key, k.get(key), ref.get(key), cur)
            if c.absolute is None:
                continue
            size = abs(c.absolute) * 100 if spec.unit == "rate" else abs(c.relative or 0) * 100
            if spec.unit == "rate" and size < 0.5:
                continue
            if best is None or size > best[0]:
                verb = "rose" if c.absolute > 0 else "fell"
                amount = (f"{abs(100 * c.absolute):.1f} percentage points" if spec.unit == "rate"
                          else f"{abs(100 * (c.relative or 0)):.1f}%")
                tone = {"good": " (good)", "bad": " (a warning sign)"}.get(c.tone, "")
                best = (size, f"The largest movement: {_lower_label(spec.label)} {verb} {amount} "
                        f"against {name}, to {fmt_value(key, k.get(key), cur)}{tone}.")
    if best and best[0] >= 1:
        out.append(best[1])

    # 4. retention in one line
    crr, churn = k.get("crr"), k.get("churn_rate")
    counts = [k.get(x) for x in ("customers_start", "customers_churned", "customers_reactivated")]
    if not is_missing(crr) and not is_missing(churn) and all(_count(x) for x in counts) and counts[0]:
        out.append(
            f"Of {fmt_count(counts[0])} customers active at the start, {fmt_count(counts[1])} "
            f"churned ({fmt_pct(churn)}); with {fmt_count(counts[2])} reactivated, the "
            f"customer retention rate is {fmt_pct(crr)}."
        )

    # 5. the segment that brings most revenue; its share of customers is of all customers acquired
    # by the period end, lapsed included — the base of the segment table's "% of all customers"
    all_segs = doc.get("segments") or []
    segs = [s for s in all_segs if _shown(s.get("revenue_share"))]
    total = sum(s.get("customers") or 0 for s in all_segs)
    if segs and total:
        from .metrics.segments import SEGMENT_LABELS

        top = max(segs, key=lambda s: s["revenue_share"])
        text = (f"{SEGMENT_LABELS.get(top['segment'], top['segment'])} customers — "
                f"{fmt_pct((top.get('customers') or 0) / total)} of all customers, lapsed included — brought "
                f"the most revenue: {fmt_pct(top['revenue_share'])} of gross revenue")
        if not is_missing(top.get("aov")):
            text += f", at {fmt_money(top['aov'], cur)} per purchase"
        out.append(text + ".")

    # 6. the weakest recent cohort (age-1 retention among cohorts where it is observable)
    co = doc.get("cohorts") or {}
    ret = co.get("retention") or []
    cands = []
    for label, size, row in zip(co.get("cohort", []), co.get("size", []), ret, strict=False):
        if label and size and size >= 20 and len(row) > 1 and row[1] is not None:
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

    if not doc.get("complete", True):
        last = str((doc.get("data_quality") or {}).get("last_payment") or "")[:10]
        try:
            date.fromisoformat(last)
            where = f": the data end on {last}, so"
        except ValueError:
            where = ":"
        out.insert(0, f"The period is incomplete{where} totals will still grow.")
    return out[:6]
