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
from typing import Any, TypeGuard

from babel.dates import format_date

from .formatting import (
    coverage,
    doc_change,
    fmt_count,
    fmt_date,
    fmt_money,
    fmt_month,
    fmt_number,
    fmt_pct,
    fmt_value,
    is_missing,
    kpi_spec,
    movement_phrase,
    period_title,
    segment_label,
)
from .i18n import _, get_language, locale, ngettext
from .kpis import MOVER_KPIS
from .metrics.cohorts import MIN_GROUP_SIZE, weakest_group

__all__ = ["findings"]

# KPIs considered for "the largest movement" (relative change for amounts, pp for rates)
_MOVERS = MOVER_KPIS


def _period_name(doc: dict[str, Any], which: str) -> str:
    from .periods import parse_period

    info = doc.get(which) or {}
    try:
        return period_title(parse_period(info["period"]))
    except Exception:
        return str(info.get("period") or which.replace("_period", "").replace("_", " "))


def _month(iso: str, grain: str) -> str:
    d = date.fromisoformat(str(iso)[:10])
    if grain == "month":
        return fmt_month(d)
    # TRANSLATORS: a weekly cohort, named by its first day: "week of 01 Jan 2024"
    day = format_date(d, "dd MMM y", locale=locale()) if get_language() == "en" else fmt_date(d)  # Babel, not strftime
    return _("week of %(day)s") % {"day": day}


def _day(iso: object) -> str | None:
    try:
        d = date.fromisoformat(str(iso)[:10])
    except ValueError:
        return None
    return fmt_date(d)


def _lower_label(label: str) -> str:
    """"Churn rate" → "churn rate", but "AOV per order" stays (in German every noun keeps its
    capital: labels stay as they are)."""
    if get_language() == "de":
        return label
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def _shown(v: float | None) -> bool:
    """A share worth a sentence: present and not 0.0% once rounded to a tenth of a percent."""
    return _known(v) and round(100 * float(v), 1) != 0


def _known(v: object) -> TypeGuard[float]:
    """A number: present and not NaN."""
    return not is_missing(v)


def _not_compared(doc: dict[str, Any], skipped: list[tuple[str, str]]) -> str:
    """The clause naming the reference periods (``(name, which)``) not compared with, and why."""
    first = str((doc.get("data_quality") or {}).get("first_payment") or "")[:10]
    begin = _day(first) and all(str((doc.get(w) or {}).get("start", "")) < first for _n, w in skipped)
    if len(skipped) > 1:
        names = {"period": skipped[0][0], "other": skipped[1][0], "day": _day(first)}
        if begin:
            # TRANSLATORS: %(period)s and %(other)s are period names ("Q4 2023"), %(day)s a date
            return _("%(period)s and %(other)s are not compared: the data begin on %(day)s") % names
        return _("%(period)s and %(other)s are not compared: the data cover them only partly") % names
    one = {"period": skipped[0][0], "day": _day(first)}
    if begin:
        return _("%(period)s is not compared: the data begin on %(day)s") % one
    return _("%(period)s is not compared: the data cover it only partly") % one


def findings(doc: dict[str, Any], currency: str | None = None) -> list[str]:
    """Up to 6 sentences about the period, from a metrics.json-shaped dict (fewer when there is
    less to say)."""
    cur = currency or doc.get("currency") or "EUR"
    k = doc.get("kpis") or {}
    # SPEC §4.4: groups smaller than this are never named in a finding nor in the averages quoted
    min_size = (doc.get("settings") or {}).get("min_group_size") or MIN_GROUP_SIZE
    out: list[str] = []
    refs: list[tuple[dict[str, Any], str, str]] = []  # (kpis, name, block) of those that can be compared with
    skipped: list[tuple[str, str]] = []  # (name, which) of those that cannot: partly or not covered
    for block, which in (("previous", "previous_period"), ("year_ago", "year_ago_period")):
        name, cov = _period_name(doc, which), coverage(doc, which)
        if cov == "full":
            refs.append((doc.get(block) or {}, name, block))
        else:
            skipped.append((name, which))

    # 1. revenue and its movement
    rev = k.get("revenue")
    if not is_missing(rev) and (k.get("gross_revenue") or k.get("refunds") or rev):
        def move(ref: dict[str, Any], name: str, block: str) -> str | None:
            phrase = movement_phrase(rev, ref.get("revenue"), name)
            if phrase is None or doc_change(doc, "revenue", block, cur).real:
                return phrase
            # not significant or below report.min_change (SPEC §4.6): no direction is claimed
            # TRANSLATORS: part of a sentence about revenue: "Net revenue was €280.00, within noise of Q4 2023"
            return _("within noise of %(period)s") % {"period": name}

        moves = (move(ref, name, block) for ref, name, block in refs)
        parts = [m for m in moves if m]
        # TRANSLATORS: joins two movements: "up 12.3% on Q4 2023 and down 4.0% on Q1 2023"
        tail = ", " + _("%(first)s and %(second)s") % {"first": parts[0], "second": parts[1]} \
            if len(parts) == 2 else f", {parts[0]}" if parts else ""
        if skipped:
            tail += f"; {_not_compared(doc, skipped)}"
        # TRANSLATORS: %(tail)s is empty or ", up 12.3% on Q4 2023 …" (starting with its comma)
        out.append(_("Net revenue was %(amount)s%(tail)s.") % {"amount": fmt_money(rev, cur), "tail": tail})

    # 1b. why gross revenue changed (the revenue bridge, SPEC §4.7), against a fully covered previous
    # period: the largest part that added and the largest that took away (parts of 0 are not news);
    # only when the change of gross revenue is real (SPEC §4.6: a change within noise has no "why")
    rb = doc.get("revenue_bridge") or {}
    bridge = ("previous", "current", "new", "reactivated", "expansion", "contraction", "lost")
    if coverage(doc, "previous_period") == "full" and all(not is_missing(rb.get(x)) for x in bridge) \
            and doc_change(doc, "gross_revenue", "previous", cur).real:
        before, now = float(rb["previous"]), float(rb["current"])
        if before > 0 and round(100 * abs(now / before - 1), 1) >= 0.1:
            gains = {"new": _("new customers brought %(amount)s"),
                     "reactivated": _("customers back after a break brought %(amount)s"),
                     "expansion": _("customers who bought more brought %(amount)s")}
            losses = {"lost": _("customers who bought then but not now took %(amount)s"),
                      "contraction": _("customers who bought less took %(amount)s")}
            clauses = []
            for phrases in ((losses, gains) if now < before else (gains, losses)):
                key = max(phrases, key=lambda x: float(rb[x]))
                if float(rb[key]) > 0:
                    clauses.append(phrases[key] % {"amount": fmt_money(rb[key], cur)})
            words = {"change": fmt_pct(abs(now / before - 1), 1), "period": _period_name(doc, "previous_period"),
                     # TRANSLATORS: joins the clauses "new customers brought €X" and "… took €Y"
                     "parts": _("%(first)s and %(second)s") % {"first": clauses[0], "second": clauses[1]}
                     if len(clauses) == 2 else clauses[0]}
            if now < before:
                # TRANSLATORS: %(period)s is the previous period's name ("Q4 2023"); %(parts)s says which
                # customers took or brought how much ("customers who bought then but not now took €X and …")
                why = _("Gross revenue fell %(change)s on %(period)s: %(parts)s.") % words
            else:
                why = _("Gross revenue rose %(change)s on %(period)s: %(parts)s.") % words
            # the why of the revenue line, in its finding: the six findings keep their room
            if out:
                out[-1] = f"{out[-1]} {why}"
            else:
                out.append(why)

    # 2. new vs returning
    share = k.get("new_revenue_share")
    if _known(share) and k.get("gross_revenue") and (_shown(share) or _shown(1 - share)):
        # guest payments (SPEC §2) are a third part of gross revenue: new + returning + guest
        guest = (k.get("revenue_guest") or 0.0) / k["gross_revenue"]
        shares = {"new": fmt_pct(share), "returning": fmt_pct(1 - share - guest), "guest": fmt_pct(guest)}
        customer_basis = (doc.get("settings") or {}).get("split_basis") == "customer"
        if guest and customer_basis:
            text = _("Customers acquired in the period brought %(new)s of gross revenue, earlier "
                     "customers %(returning)s and guest payments %(guest)s") % shares
        elif guest:
            text = _("Repeat purchases brought %(returning)s of gross revenue, first purchases "
                     "%(new)s and guest payments %(guest)s") % shares
        elif customer_basis:
            text = _("Customers acquired in the period brought %(new)s of gross revenue and "
                     "earlier customers %(returning)s") % shares
        else:
            text = _("Repeat purchases brought %(returning)s of gross revenue and first purchases "
                     "%(new)s") % shares
        new, ret = k.get("customers_new"), k.get("customers_returning")
        if _known(new) and _known(ret) and (new or ret):
            joined = ngettext("%(count)s new customer joined", "%(count)s new customers joined",
                              int(new)) % {"count": fmt_count(new)}
            again = ngettext("%(count)s existing customer bought again",
                             "%(count)s existing customers bought again", int(ret)) % {"count": fmt_count(ret)}
            # TRANSLATORS: "<share sentence>; <N new customers joined> and <N existing customers bought again>"
            text = _("%(shares)s; %(joined)s and %(again)s") % {"shares": text, "joined": joined, "again": again}
        out.append(text + ".")

    # 3. the largest movement against a fully covered previous period or year ago
    best: tuple[float, str] | None = None
    for key in _MOVERS:
        spec = kpi_spec(key, doc)
        for _ref, name, block in refs:
            # only a real change: significant at 95% and larger than report.min_change (SPEC §4.6)
            c = doc_change(doc, key, block, cur)
            if c.absolute is None or not c.real:
                continue
            size = abs(c.absolute) * 100 if spec.unit == "rate" else abs(c.relative or 0) * 100
            if best is None or size > best[0]:
                if spec.unit == "rate":
                    amount = _("%(value)s percentage points") % {"value": fmt_number(abs(100 * c.absolute), 1)}
                else:
                    amount = fmt_pct(abs(c.relative or 0), 1, group=False)
                words = {"kpi": _lower_label(spec.label), "amount": amount, "period": name,
                         "value": fmt_value(key, k.get(key), cur)}
                if c.absolute > 0:
                    # TRANSLATORS: %(kpi)s is a KPI's label ("churn rate"), %(period)s a period name
                    text = _("The largest movement: %(kpi)s rose %(amount)s against %(period)s, to %(value)s") % words
                else:
                    text = _("The largest movement: %(kpi)s fell %(amount)s against %(period)s, to %(value)s") % words
                if c.tone == "good":
                    text = _("%(sentence)s (good)") % {"sentence": text}
                elif c.tone == "bad":
                    text = _("%(sentence)s (a warning sign)") % {"sentence": text}
                best = (size, text + ".")
    if best and best[0] >= 1:
        out.append(best[1])

    # 4. retention in one line
    crr, churn = k.get("crr"), k.get("churn_rate")
    counts = [k.get(x) for x in ("customers_start", "customers_churned", "customers_reactivated")]
    if not is_missing(crr) and not is_missing(churn) and all(_known(x) for x in counts) and counts[0]:
        out.append(
            _("Of %(start)s customers active at the start, %(churned)s churned (%(churn)s); with "
              "%(reactivated)s reactivated, the customer retention rate is %(crr)s.")
            % {"start": fmt_count(counts[0]), "churned": fmt_count(counts[1]), "churn": fmt_pct(churn),
               "reactivated": fmt_count(counts[2]), "crr": fmt_pct(crr)}
        )

    # 5. the segment that brings most revenue; its share of customers is of all customers acquired
    # by the period end, lapsed included — the base of the segment table's "% of all customers"
    all_segs = doc.get("segments") or []
    segs = [s for s in all_segs if _shown(s.get("revenue_share"))]
    total = sum(s.get("customers") or 0 for s in all_segs)
    top = max(segs, key=lambda s: s["revenue_share"]) if segs else None
    # a segment below min_group_size is never named; nor is another one "the most" in its place
    if top is not None and total and (top.get("customers") or 0) >= min_size:
        words = {"segment": segment_label(top["segment"]), "customers": fmt_pct((top.get("customers") or 0) / total),
                 "revenue": fmt_pct(top["revenue_share"])}
        # TRANSLATORS: %(segment)s is a segment's name ("Frequent (X)"); the two others are percentages
        text = _("%(segment)s customers — %(customers)s of all customers, lapsed included — brought the most "
                 "revenue: %(revenue)s of gross revenue") % words
        if not is_missing(top.get("aov")):
            text = _("%(sentence)s, at %(aov)s per purchase") % {"sentence": text, "aov": fmt_money(top["aov"], cur)}
        out.append(text + ".")

    # 6. the weakest recent cohort (age-1 retention among cohorts of at least min_group_size
    # customers where it is observable) against their size-weighted average — the cohort chart's
    co = doc.get("cohorts") or {}
    ret = co.get("retention") or []
    cands = []
    for label, size, row in zip(co.get("cohort", []), co.get("size", []), ret, strict=False):
        if label and size and len(row) > 1 and row[1] is not None:
            cands.append((row[1], label, size))
    # named only when it is below the average beyond noise (its 95% interval under the average)
    weak = weakest_group([r for r, _l, _s in cands], [s for _r, _l, s in cands], min_size)
    if weak is not None:
        worst, avg = cands[weak[0]], weak[1]
        words = {"cohort": _month(worst[1], co.get("grain", "month")), "share": fmt_pct(worst[0]),
                 "size": fmt_count(worst[2]), "average": fmt_pct(avg)}
        if co.get("grain", "month") == "week":
            text = _("The weakest recent cohort is %(cohort)s: %(share)s of its %(size)s customers bought "
                     "again one week later, against %(average)s on average.")
        else:
            text = _("The weakest recent cohort is %(cohort)s: %(share)s of its %(size)s customers bought "
                     "again one month later, against %(average)s on average.")
        out.append(text % words)

    if not doc.get("complete", True):
        last = str((doc.get("data_quality") or {}).get("last_payment") or "")[:10]
        try:
            date.fromisoformat(last)
            # TRANSLATORS: %(day)s is an ISO date (2024-03-15)
            out.insert(0, _("The period is incomplete: the data end on %(day)s, so totals will still grow.")
                       % {"day": last})
        except ValueError:
            out.insert(0, _("The period is incomplete: totals will still grow."))
    return out[:6]
