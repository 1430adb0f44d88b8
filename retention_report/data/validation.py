"""Validation: one :class:`Rule` object per rule (name, column, predicate, message, report label),
used both to check the payments and to label the data-quality table of the report.

Row rules (:data:`ROW_RULES`) look at one converted row; one grouped pass over the source counts
every rule *and* yields the per-day summary. The ``payment_id`` rules (:data:`PAYMENT_ID_RULES`)
compare rows sharing a payment id and run only when that column is mapped (SPEC §2: identical
rows without a payment id are payments, not duplicates). With ``validation.on_invalid = "error"``
a broken rule stops the load naming the column, the count and up to five example rows; with
``"drop"`` the rows are dropped and counted by rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from ..config import Settings
from ..i18n import N_, _
from .derived import day_aggregates, days_frame
from .model import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Rule", "ROW_RULES", "rule_mode", "guest_mode", "PAYMENT_ID_RULES", "RULES", "rule_label", "validate", "row_filter",
           "payment_id_duplicates", "require_payments", "DATE_FORMS", "AMOUNT_FORMS"]

DATE_FORMS = (
    "ISO 8601 dates or timestamps with a four-digit year from 1900 on, such as 2024-01-31, "
    "2024-01-31 13:45:00 or 2024-01-31T13:45:00+01:00 (or set source.csv.date_format, e.g. "
    "'%d.%m.%Y %H:%M', or '%y-%m-%d' for two-digit years)"
)
AMOUNT_FORMS = (
    "numbers such as 1234.50 or -20 in the configured form: the decimal separator of "
    "source.csv.decimal, a source.csv.thousands separator only between groups of three digits "
    "(for '1 234,50' set decimal = ',' and thousands = ' '), no other characters"
)

Predicate = Callable[[ir.Table, Settings, datetime], "ir.BooleanValue | None"]


@dataclass(frozen=True)
class Rule:
    """A validation rule.

    Attributes
    ----------
    name
        The reason key in ``data_quality.rows_dropped``.
    role
        The canonical column it checks (its source name is quoted in the message).
    what
        The message's verb phrase: "{count} row(s) {what}".
    accepted
        What the column accepts, or how to fix it.
    label
        How the report's data-quality table names dropped rows (a gettext msgid: translated by
        :func:`rule_label`; the messages to the operator stay English).
    quote
        The converted-table column whose value the examples quote (the raw text where kept).
    predicate
        (converted table, settings, now) → True for a breaking row; None where the rule does not
        apply (no cost column, future dates allowed). None for the payment-id rules, which compare
        rows (see :func:`payment_id_duplicates`).
    """

    name: str
    role: str
    what: str
    accepted: str
    label: str
    quote: str = ""
    predicate: Predicate | None = None

    def message(self, mapping: dict[str, str], count: int, examples: list[dict[str, Any]],
                line_offset: int | None = None, detail: str = "") -> str:
        """``line_offset``: add the file's line number to each example row (rows + offset: the
        header line of a CSV file); ``detail``: the configured form, after the accepted forms."""
        src = mapping.get(self.role, self.role)
        col = f"column {src!r}" + (f" (mapped to {self.role})" if src != self.role else "")
        shown = "; ".join(
            f"row {e['row']}: {_quoted(e['value'])}"
            + (f" (line {e['row'] + line_offset})" if line_offset is not None else "")
            for e in examples
        )
        return f"{col}: {count:,} row(s) {self.what} ({self.accepted}{detail}). Examples: {shown}"


def _future(t: ir.Table, settings: Settings, now: datetime) -> ir.BooleanValue | None:
    if settings.validation.allow_future_dates:
        return None
    return t.paid_at > ibis.literal(now, type=dt.Timestamp())


ROW_RULES: tuple[Rule, ...] = (
    # validation.empty_customer_id decides (not on_invalid): "guest" keeps the rows as guest payments
    Rule("null_customer_id", "customer_id", "have an empty customer id",
         "set validation.empty_customer_id = 'error' (stop; the default), 'drop' (drop and count them) or "
         "'guest' (count them as guest payments: revenue without a customer, left out of customer metrics)",
         N_("empty customer id"), "customer_id",
         lambda t, s, now: None if s.validation.empty_customer_id == "guest" else t.customer_id.isnull()),
    # ids stored as floats are read only when whole numbers (1.0 → "1"; 1.4 is not id "1")
    *(Rule(f"fractional_{role}", role, "have an id that is a fractional number",
           "ids are text or whole numbers; a number id stored as a float is read only when it is whole "
           "(1.0 is '1')", N_("id not a whole number"), role,
           (lambda r: lambda t, s, now: t[f"_fractional_{r}"] if f"_fractional_{r}" in t.columns else None)(role))
      for role in ("customer_id", "order_id", "payment_id")),
    Rule("unparsable_paid_at", "paid_at", "have an empty or unparsable date", f"accepted: {DATE_FORMS}",
         N_("date missing or not a date"), "_raw_paid_at", lambda t, s, now: t.paid_at.isnull()),
    Rule("non_numeric_amount", "amount", "have an empty or non-numeric amount",
         f"accepted: {AMOUNT_FORMS}; NaN and infinity are not amounts",
         N_("amount missing or not a number"), "_raw_amount", lambda t, s, now: t.amount.isnull()),
    Rule("non_numeric_cost", "cost", "have a non-numeric cost",
         f"accepted: {AMOUNT_FORMS}, or empty; NaN and infinity are not amounts",
         N_("cost not a number"), "_raw_cost", lambda t, s, now: t._bad_cost if "_bad_cost" in t.columns else None),
    Rule("future_paid_at", "paid_at", "are dated in the future",
         "set validation.allow_future_dates = true if that is expected",
         N_("dated in the future"), "_raw_paid_at", _future),
)

PAYMENT_ID_RULES: tuple[Rule, ...] = (
    # dropped and counted in both modes: one payment exported twice is no error in the data
    Rule("duplicate_payment_id", "payment_id", "repeat a payment id with identical values",
         "double exports: all copies but one are dropped",
         N_("double export (payment id repeated, identical row)")),
    Rule("conflicting_payment_id", "payment_id", "repeat a payment id with different values",
         "a payment id must identify one payment",
         N_("payment id repeated with different values")),
)

RULES: dict[str, Rule] = {r.name: r for r in (*ROW_RULES, *PAYMENT_ID_RULES)}


def rule_label(name: str) -> str:
    """The data-quality table's words for the rows a rule dropped, in the report's language (the
    name when unknown)."""
    rule = RULES.get(name)
    return _(rule.label) if rule else name


def _quoted(value: object) -> str:
    """A bad value as the user would recognise it: ``'ten'``; an empty or missing one as ``(empty)``
    (never ``None`` or ``nan``)."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return "(empty)"
    return repr(value)


def rule_mode(rule: Rule, settings: Settings) -> str:
    """"error" or "drop": what a broken rule does — ``validation.empty_customer_id`` for empty
    customer ids (its third choice, "guest", breaks no rule), ``validation.on_invalid`` for the rest."""
    if rule.name == "null_customer_id":
        return settings.validation.empty_customer_id
    return settings.validation.on_invalid


def guest_mode(settings: Settings) -> bool:
    """Payments without a customer id are guest payments (SPEC §2)."""
    return settings.validation.empty_customer_id == "guest"


def _predicates(t: ir.Table, settings: Settings, now: datetime) -> dict[Rule, ir.BooleanValue]:
    out = {}
    for rule in ROW_RULES:
        p = rule.predicate(t, settings, now) if rule.predicate else None
        if p is not None:
            out[rule] = p
    return out


def validate(
    t: ir.Table, mapping: dict[str, str], settings: Settings, now: datetime
) -> tuple[ir.Table, dict[str, int], int, pd.DataFrame | None]:
    """Apply the row rules; return (clean table, dropped counts by rule, rows read, the per-day
    summary of :func:`~retention_report.data.derived.day_summary` when no row was dropped, else None).

    One grouped pass over the source counts every rule *and* yields the per-day summary, so the
    usual case (nothing to drop) needs no pass of its own for either.
    """
    preds = _predicates(t, settings, now)
    agg = {f"_bad_{rule.name}": p.cast("int32").sum() for rule, p in preds.items()}
    agg.update(day_aggregates(t, guest=guest_mode(settings)))
    by_day = t.group_by(day=t.paid_at.date()).aggregate(**agg).execute()
    rows_read = int(by_day["rows"].fillna(0).sum())
    bad = {rule: n for rule in preds if (n := int(by_day[f"_bad_{rule.name}"].fillna(0).sum()))}
    if not bad:
        return t, {}, rows_read, days_frame(by_day)
    errors = {rule: n for rule, n in bad.items() if rule_mode(rule, settings) == "error"}
    if errors:
        messages = []
        numbered = t.mutate(_row=ibis.row_number() + 1)  # source order; only on the error path
        offset = _line_offset(settings)
        npreds = _predicates(numbered, settings, now)
        for rule, n in errors.items():
            ex = (numbered.filter(npreds[rule]).order_by("_row")
                  .select("_row", value=numbered[rule.quote].cast("string")).limit(5))
            examples = [{"row": int(r["_row"]), "value": r["value"]} for r in ex.execute().to_dict("records")]
            messages.append(rule.message(mapping, n, examples, offset, _configured(rule, settings)))
        modes = [f"validation.{k} = 'error'" for k, hit in (
            ("on_invalid", any(r.name != "null_customer_id" for r in errors)),
            ("empty_customer_id", any(r.name == "null_customer_id" for r in errors))) if hit]
        fixes = []
        if any(r.name != "null_customer_id" for r in errors):
            fixes.append("set validation.on_invalid = 'drop' to drop and count such rows")
        if any(r.name == "null_customer_id" for r in errors):
            fixes.append("for empty customer ids set validation.empty_customer_id = 'drop' or 'guest'")
        raise DataError(
            f"invalid payment data ({', '.join(modes)}):\n  - "
            + "\n  - ".join(messages)
            + "\nRow numbers count data rows from 1 in source order"
            + ("; line numbers are the file's, its header line included" if offset is not None else "")
            + f". Fix the source, map the right columns, or {'; '.join(fixes)}."
        )
    # rows are attributed to the first rule they break, so the counts add up
    dropped = {rule.name: n for rule, n in bad.items()}
    remaining = row_filter(t, settings, now)
    if len(bad) > 1:  # overlapping rules: recount exclusively in rule order
        seen = ibis.literal(False)
        agg2 = {}
        for rule, p in preds.items():
            agg2[rule.name] = (p.fill_null(False) & ~seen).cast("int32").sum()
            seen = seen | p.fill_null(False)
        exclusive = t.aggregate(**agg2).execute().iloc[0].to_dict()
        dropped = {k: int(v) for k, v in exclusive.items() if v}
    return remaining, dropped, rows_read, None


def _line_offset(settings: Settings) -> int | None:
    """Row n of a single CSV file is on line n + 1 with a header line (n without): the number the
    user sees in an editor. None for other sources (and for several files, or a file whose quoted
    values may hold line breaks cannot be told cheaply: one row per line is assumed)."""
    from .sources import source_kind

    path = settings.source.path
    if not path or any(ch in path for ch in "*?[") or source_kind(settings) != "csv":
        return None
    return 1 if settings.source.csv.header else 0


def _configured(rule: Rule, settings: Settings) -> str:
    """The amount form the config declares, for the amount and cost rules."""
    if rule.role not in ("amount", "cost"):
        return ""
    c = settings.source.csv
    return f"; configured: decimal = {c.decimal!r}, thousands = {c.thousands!r}" + (" (none)" if not c.thousands else "")


def row_filter(t: ir.Table, settings: Settings, now: datetime) -> ir.Table:
    """``t`` without the rows any row rule drops (an expression; nothing runs): what
    :func:`validate` returns under ``on_invalid = "drop"``, rebuilt for a cached load."""
    any_bad = ibis.literal(False)
    for p in _predicates(t, settings, now).values():
        any_bad = any_bad | p.fill_null(False)
    return t.filter(~any_bad)


def require_payments(days: pd.DataFrame, rows_read: int, dropped: dict[str, int], source_name: str) -> None:
    """No data is an error, not a report of zeros (SPEC §2): a source without a single usable
    payment (no rows, only invalid rows dropped, or only refunds and zero amounts) fails here."""
    if len(days) and float(days["payments"].sum()) > 0:
        return
    if rows_read == 0:
        why = "the source has no data rows"
    elif not len(days):
        why = f"all {rows_read:,} rows were dropped as invalid ({', '.join(f'{k}: {v:,}' for k, v in dropped.items())})"
    else:
        why = f"its {int(days['rows'].sum()):,} rows are refunds or zero amounts; none is a payment received"
    raise DataError(f"no payments in {source_name}: {why}")


def payment_id_duplicates(
    payments: ir.Table, settings: Settings, mapping: dict[str, str]
) -> tuple[ir.Table, dict[str, int]]:
    """Double exports, defined by ``payment_id`` only (SPEC §2); returns (payments, dropped counts).

    Rows repeating a ``payment_id`` with identical values in every column are one payment exported
    twice: all copies but one are dropped and counted (``duplicate_payment_id``), whatever
    ``on_invalid`` says. Rows repeating a ``payment_id`` with different values cannot be told
    apart: an error, or under ``on_invalid = "drop"`` all of them are dropped and counted
    (``conflicting_payment_id``). Rows without a payment id are kept as they are.

    Without a ``payment_id`` column nothing runs: identical rows are legitimate (two equal items
    bought on one day in a date-only log) and every row counts.

    Cost: one grouped pass over the ids; the comparison reads only the rows of repeated ids.
    """
    if "payment_id" not in payments.columns:
        return payments, {}
    ids = payments.filter(payments.payment_id.notnull())
    repeated = ids.group_by("payment_id").aggregate(_n=ids.count()).filter(lambda t: t._n > 1).cache()
    if int(repeated.count().execute()) == 0:
        return payments, {}
    rows = payments.semi_join(repeated, "payment_id")
    variants = rows.distinct().group_by("payment_id").aggregate(_v=lambda t: t.count())
    stats = repeated.inner_join(variants, "payment_id")
    summary = stats.aggregate(
        identical=(stats._n - 1).sum(where=stats._v == 1),
        conflicting_ids=stats.count(where=stats._v > 1),
        conflicting_rows=stats._n.sum(where=stats._v > 1),
    ).execute().iloc[0]
    identical = int(summary["identical"] or 0)
    conflicting = int(summary["conflicting_rows"] or 0)
    if conflicting and settings.validation.on_invalid == "error":
        raise _conflict_error(payments, stats.filter(stats._v > 1), mapping, int(summary["conflicting_ids"]), conflicting)
    same = stats.filter(stats._v == 1).select("payment_id")
    kept = payments.anti_join(repeated, "payment_id").union(rows.semi_join(same, "payment_id").distinct())
    dropped = {PAYMENT_ID_RULES[0].name: identical, PAYMENT_ID_RULES[1].name: conflicting}
    return kept, {k: v for k, v in dropped.items() if v}


def _conflict_error(payments: ir.Table, conflicts: ir.Table, mapping: dict[str, str], n_ids: int, n_rows: int) -> DataError:
    numbered = payments.mutate(_row=ibis.row_number() + 1)  # source order (error mode drops nothing)
    rows = numbered.semi_join(conflicts, "payment_id")
    ex = rows.group_by("payment_id").aggregate(_first=rows._row.min(), _rows=rows._row.collect(order_by=rows._row))
    shown = "; ".join(
        f"{r['payment_id']!r} in rows {', '.join(str(int(x)) for x in list(r['_rows'])[:5])}"
        for r in ex.order_by("_first").limit(5).execute().to_dict("records")
    )
    src = mapping["payment_id"]
    col = f"column {src!r}" + (" (mapped to payment_id)" if src != "payment_id" else "")
    return DataError(
        f"invalid payment data (validation.on_invalid = 'error'): {col}: {n_ids:,} payment id(s) "
        f"repeat with different values ({n_rows:,} rows); a payment id must identify one payment. "
        f"Examples: {shown}. Rows repeating a payment id with identical values are double exports "
        "and are dropped anyway; fix the source, map the right column as payment_id, or set "
        "validation.on_invalid = 'drop' to drop and count the conflicting rows."
    )
