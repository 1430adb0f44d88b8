"""The :class:`Dataset` — a validated payment log with its derived tables — and the two ways to
get one: :func:`open_dataset` (the configured source) and :func:`dataset_from_frame` (a pandas
frame, for tests, notebooks and small exports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import ibis.expr.types as ir

from ..config import Settings
from . import cache
from .columns import check_columns, column_mapping, convert
from .derived import (
    acquired_between,
    build_customers,
    build_daily,
    day_summary,
    days_frame,
    first_purchase_segments,
)
from .model import DataError, DataQuality, first_line
from .sources import connect_duckdb, csv_problem, read_raw, source_kind
from .validation import (
    PAYMENT_ID_RULES,
    guest_mode,
    payment_id_duplicates,
    require_payments,
    row_filter,
    validate,
)

if TYPE_CHECKING:
    import pandas as pd
    from ibis.backends import BaseBackend

__all__ = ["Dataset", "open_dataset", "dataset_from_frame"]


@dataclass
class Dataset:
    """A validated payment log, ready for the metric functions.

    ``payments``, ``daily`` and ``customers`` are Ibis tables living in ``con``; ``daily`` and
    ``customers`` are cached (temporary tables) so every period reuses them; ``days`` is the small
    per-day summary as a pandas frame. Segment values per
    customer come from :meth:`customers_with_segments`.
    """

    con: BaseBackend
    payments: ir.Table
    daily: ir.Table
    customers: ir.Table
    days: pd.DataFrame  # the day summary (module docstring)
    quality: DataQuality
    source_name: str
    segments: tuple[str, ...] = ()
    has_cost: bool = False
    has_order_id: bool = False
    settings: Settings | None = field(default=None, repr=False)
    # derived tables built on demand (customers with segments, per acquisition window); the
    # metrics cache nothing here: results are memoised by the report context
    _derived: dict[tuple[str, date | None, date | None], ir.Table] = field(default_factory=dict, repr=False)

    @property
    def last_day(self) -> date | None:
        return self.quality.last_day

    @property
    def first_day(self) -> date | None:
        return self.quality.first_day

    def customers_with_segments(self, acquired_from: date | None = None, acquired_to: date | None = None) -> ir.Table:
        """``customers`` plus the segment columns of each customer's first positive payment
        (``(none)`` when missing), cached per bounds on first use.

        With ``acquired_from`` / ``acquired_to`` (inclusive) only the customers acquired then, and
        only the payments of those days are read (a year of cohorts reads a fraction of the log).
        """
        if not self.segments:
            return acquired_between(self.customers, acquired_from, acquired_to)
        key = ("customers_with_segments", acquired_from, acquired_to)
        if key not in self._derived:
            self._derived[key] = first_purchase_segments(
                self.customers, self.payments, self.segments, acquired_from, acquired_to
            ).cache()
        return self._derived[key]


def _now(settings: Settings, now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)


def _iso(v: object) -> str | None:
    if v is None or (hasattr(v, "isoformat") is False) or str(v) == "NaT":
        return None
    return v.isoformat(sep=" ") if isinstance(v, datetime) else str(v)


def _finish(
    con: BaseBackend,
    converted: ir.Table,
    mapping: dict[str, str],
    settings: Settings,
    source_name: str,
    now: datetime | None = None,
    key: str | None = None,
) -> Dataset:
    now = _now(settings, now)
    clean, dropped, rows_read, days = validate(converted, mapping, settings, now)
    canon = [c for c in clean.columns if not c.startswith("_")]
    payments = clean.select(canon).mutate(day=clean.paid_at.date())
    # identical rows are legitimate and all count (SPEC §2); only a payment_id defines duplicates
    payments, doubles = payment_id_duplicates(payments, settings, mapping)
    if doubles:
        dropped.update(doubles)
        payments = payments.cache()
        days = None
    guest = guest_mode(settings)
    if days is None:  # rows were dropped: summarise what is left
        days = day_summary(payments, guest)
    require_payments(days, rows_read, dropped, source_name)
    if guest:  # guest payments are in the day summary (revenue), never in a customer table
        payments = _identified(payments)
    daily = build_daily(payments).cache()
    # segment values of each customer's first purchase are only needed for the per-segment cohort
    # curves: built on first use (Dataset.customers_with_segments), not on every load
    customers = build_customers(daily).cache()
    quality = DataQuality(
        rows_read=rows_read,
        rows_used=int(days["rows"].sum()),
        rows_dropped=dropped,
        first_payment=_iso(days["first"].min()) if len(days) else None,
        last_payment=_iso(days["last"].max()) if len(days) else None,
        **_guest_quality(days, guest),
    )
    if key is not None:  # kept for the next load of the same, unchanged source (data/cache.py)
        meta = {"quality": quality.to_dict(), "now": now.isoformat(), "validated_on": now.date().isoformat(),
                "future_dropped": dropped.get("future_paid_at", 0),
                "created_at": datetime.now().astimezone().isoformat(timespec="seconds")}
        cache.store(con, settings, key, daily, customers, days, meta)
    return _dataset(con, payments, daily, customers, days, quality, source_name, settings, mapping)


def _identified(payments: ir.Table) -> ir.Table:
    """The payments with a customer id: what every customer metric reads."""
    return payments.filter(payments.customer_id.notnull())


def _guest_quality(days: pd.DataFrame, guest: bool) -> dict[str, Any]:
    """The data-quality counts of guest payments (SPEC §2): rows and net revenue; none unless guest."""
    if not guest:
        return {}
    return {"guest_rows": int(days["guest_rows"].sum()),
            "guest_revenue": round(float(days["guest_gross"].sum() - days["guest_refunds"].sum()), 2)}


def _dataset(con: BaseBackend, payments: ir.Table, daily: ir.Table, customers: ir.Table, days: pd.DataFrame,
             quality: DataQuality,
             source_name: str, settings: Settings, mapping: dict[str, str]) -> Dataset:
    return Dataset(
        con=con,
        payments=payments,
        daily=daily,
        customers=customers,
        days=days,
        quality=quality,
        source_name=source_name,
        segments=tuple(settings.columns.segments),
        has_cost="cost" in mapping,
        has_order_id="order_id" in mapping,
        settings=settings,
    )


def _from_cache(con: BaseBackend, converted: ir.Table, mapping: dict[str, str], settings: Settings, source_name: str,
                entry: cache.CacheEntry) -> Dataset:
    """A Dataset from cached derived tables: no validation pass, no derived table built. The
    payments are the source's again, with the rows the cached validation dropped left out (an
    expression: it runs only for the metrics that read payment rows)."""
    meta = entry.meta
    q = meta["quality"]
    dropped = dict(q["rows_dropped"])
    clean = converted
    if set(dropped) - {r.name for r in PAYMENT_ID_RULES}:
        clean = row_filter(converted, settings, datetime.fromisoformat(meta["now"]))
    canon = [c for c in clean.columns if not c.startswith("_")]
    payments = clean.select(canon).mutate(day=clean.paid_at.date())
    if set(dropped) & {r.name for r in PAYMENT_ID_RULES}:
        payments, _ = payment_id_duplicates(payments, settings, mapping)
    if guest_mode(settings):
        payments = _identified(payments)
    quality = DataQuality(
        rows_read=q["rows_read"], rows_used=q["rows_used"], rows_dropped=dropped,
        first_payment=q["first_payment"], last_payment=q["last_payment"], cached_at=meta.get("created_at"),
        guest_rows=q.get("guest_rows"), guest_revenue=q.get("guest_revenue"),
    )
    days = days_frame(entry.days)
    return _dataset(con, payments, entry.daily, entry.customers, days, quality, source_name, settings, mapping)


def open_dataset(settings: Settings, now: datetime | None = None) -> Dataset:
    """Connect to the configured source, validate it and build the derived tables.

    Raises
    ------
    DataError
        The source cannot be reached or read, a mapped column is missing, or (with
        ``validation.on_invalid = "error"``) a validation rule is broken. The message names the
        column, the number of rows and up to five example rows.
    """
    raw = read_raw(settings)
    mapping = column_mapping(settings)
    check_columns(raw.table, mapping, settings)
    converted = convert(raw.table, mapping, settings, getattr(raw.con, "name", "duckdb"), raw.text)
    try:
        key = cache.cache_key(settings) if getattr(raw.con, "name", "") == "duckdb" else None
        entry = cache.lookup(raw.con, settings, key, _now(settings, now).date().isoformat())
        if entry is not None:
            return _from_cache(raw.con, converted, mapping, settings, raw.name, entry)
        return _finish(raw.con, converted, mapping, settings, raw.name, now, key)
    except DataError:
        raise
    except Exception as exc:
        src = settings.source
        if src.path and source_kind(settings) == "csv":  # DuckDB reads lazily: errors surface here
            raise DataError(csv_problem(src.path, settings, exc)) from None
        raise DataError(f"cannot read the payment data from {raw.name}: {first_line(exc)}") from None


def dataset_from_frame(
    frame: pd.DataFrame, settings: Settings | None = None, name: str = "in-memory data", now: datetime | None = None
) -> Dataset:
    """Build a :class:`Dataset` from a pandas DataFrame (tests, notebooks, small exports)."""
    settings = settings or Settings()
    con = connect_duckdb(settings)
    raw = con.create_table("_frame_source", frame, temp=True)
    mapping = column_mapping(settings)
    check_columns(raw, mapping)
    return _finish(con, convert(raw, mapping, settings), mapping, settings, name, now)
