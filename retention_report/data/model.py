"""The data layer's vocabulary: its error, what validation saw (:class:`DataQuality`) and the
canonical column names. Imports nothing heavy: every layer may read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..periods import Period

__all__ = ["DataError", "DataQuality", "NONE_SEGMENT", "ROLE_COLUMNS", "first_line"]

NONE_SEGMENT = "(none)"
ROLE_COLUMNS = ("customer_id", "paid_at", "amount", "order_id", "cost", "payment_id")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (engines' messages run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class DataError(ValueError):
    """The source cannot be read, or its data break a validation rule."""


@dataclass(frozen=True)
class DataQuality:
    """What validation saw: the ``data_quality`` block of metrics.json."""

    rows_read: int
    rows_used: int
    rows_dropped: dict[str, int]
    first_payment: str | None
    last_payment: str | None
    # when the validated, derived tables came from the cache of an earlier load: when it ran
    cached_at: str | None = None
    # validation.empty_customer_id = "guest": the rows without a customer id (in rows_used) and
    # their net revenue (positive payments − refunds) over the whole source; None otherwise
    guest_rows: int | None = None
    guest_revenue: float | None = None

    @property
    def last_day(self) -> date | None:
        return date.fromisoformat(self.last_payment[:10]) if self.last_payment else None

    @property
    def first_day(self) -> date | None:
        return date.fromisoformat(self.first_payment[:10]) if self.first_payment else None

    def require_overlap(self, period: Period, source_name: str = "the data") -> None:
        """A period with no day in common with the data is an error (SPEC §2/§3), raised before
        any notebook runs; a period that only partly overlaps is reported as incomplete."""
        first, last = self.first_day, self.last_day
        if first is None or last is None:
            raise DataError(f"no payments in {source_name}")
        if period.end < first or period.start > last:
            where = "before the first" if period.end < first else "after the last"
            raise DataError(
                f"no payments in {period.label} ({period.start.isoformat()} to {period.end.isoformat()}): "
                f"the period lies entirely {where} payment in {source_name}, whose payments run from "
                f"{first.isoformat()} to {last.isoformat()}. Choose a period that overlaps these days."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "rows_dropped": dict(self.rows_dropped),
            "first_payment": self.first_payment,
            "last_payment": self.last_payment,
            **({"guest_rows": self.guest_rows, "guest_revenue": self.guest_revenue}
               if self.guest_rows is not None else {}),
            **({"derived_tables_cached_at": self.cached_at} if self.cached_at else {}),
        }
