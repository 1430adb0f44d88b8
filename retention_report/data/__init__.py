"""Data access: connect to the payment log, map and convert columns, validate, and derive the
per-customer-day table every metric is computed from.

This is the only package that touches data sources. Modules: :mod:`.sources` (a reader per source
kind), :mod:`.columns` (mapping and conversion), :mod:`.validation` (one rule object per rule),
:mod:`.derived` (the derived tables), :mod:`.dataset` (the :class:`Dataset` and the entry points),
:mod:`.model` (errors, data quality, canonical names). Everything runs inside the engine (DuckDB by
default) through Ibis; only counts and up to five example rows of bad data ever reach Python.

Canonical payment table (one row per payment)::

    customer_id  string     opaque id ("00123" and "123" differ)
    paid_at      timestamp  local time in the report time zone (naive)
    day          date       calendar day of paid_at
    amount       float64    money received; negative = refund
    cost         float64    optional
    order_id     string     optional
    payment_id   string     optional: unique id of a payment row (defines double exports)
    <segments>   string     optional segment columns; missing values become "(none)"

Daily table (one row per customer and day with any payment) — the base of all
customer metrics::

    customer_id, day,
    gross      sum of positive amounts (0 when the day only has refunds/zeros)
    cost_pos   cost of the positive payments (with a cost column)
    payments   number of positive payments; rows: number of rows
    is_purchase  gross > 0: the day is a *purchase* (SPEC §2)

Day summary (``Dataset.days``, a small pandas frame, one row per calendar day): rows, payments,
gross, refunds (negative amounts as a positive number), first/last paid_at and, with a cost column,
cost_all (cost of all rows) and cost_pos — the period sums that need no customer.

Customers table: customer_id, acquired (day of first purchase in the whole history), second
(day of the second purchase, null if none), and the segment values of the first purchase.
"""

from .dataset import Dataset, dataset_from_frame, open_dataset
from .derived import build_customers, build_daily, day_summary, first_purchase_segments
from .model import NONE_SEGMENT, DataError, DataQuality
from .sources import connect_duckdb, spark_session
from .validation import RULES, Rule, rule_label

__all__ = [
    "DataError",
    "DataQuality",
    "Dataset",
    "open_dataset",
    "dataset_from_frame",
    "connect_duckdb",
    "spark_session",
    "build_daily",
    "build_customers",
    "first_purchase_segments",
    "day_summary",
    "NONE_SEGMENT",
    "RULES",
    "Rule",
    "rule_label",
]
