"""Data access: connect to the payment log, map and convert columns, validate, and derive the
per-customer-day table every metric is computed from.

This is the only module that touches data sources. Everything runs inside the engine (DuckDB by
default) through Ibis; only counts and up to five example rows of bad data ever reach Python.

Canonical payment table (one row per payment)::

    customer_id  string     opaque id ("00123" and "123" differ)
    paid_at      timestamp  local time in the report time zone (naive)
    day          date       calendar day of paid_at
    amount       float64    money received; negative = refund
    cost         float64    optional
    order_id     string     optional
    <segments>   string     optional segment columns; missing values become "(none)"

Daily table (one row per customer and day with any payment) — the base of all metrics::

    customer_id, day,
    gross      sum of positive amounts (0 when the day only has refunds/zeros)
    refunds    sum of negative amounts, as a positive number
    cost_pos   cost of the positive payments; cost_all: cost of all payments
    payments   number of positive payments; rows: number of rows
    is_purchase  gross > 0: the day is a *purchase* (SPEC §2)

Customers table: customer_id, acquired (day of first purchase in the whole history), second
(day of the second purchase, null if none), and the segment values of the first purchase.
"""

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from .config import Settings

__all__ = [
    "DataError",
    "DataQuality",
    "Dataset",
    "open_dataset",
    "dataset_from_frame",
    "connect_duckdb",
    "build_daily",
    "build_customers",
    "NONE_SEGMENT",
]

NONE_SEGMENT = "(none)"
ROLE_COLUMNS = ("customer_id", "paid_at", "amount", "order_id", "cost")

DATE_FORMS = (
    "ISO 8601 dates or timestamps such as 2024-01-31, 2024-01-31 13:45:00 or "
    "2024-01-31T13:45:00+01:00 (or set source.csv.date_format, e.g. '%d.%m.%Y %H:%M')"
)
AMOUNT_FORMS = (
    "numbers such as 1234.50 or -20 (for '1 234,50' set source.csv.decimal = ',' and "
    "source.csv.thousands = ' ')"
)


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

    @property
    def last_day(self) -> date | None:
        return date.fromisoformat(self.last_payment[:10]) if self.last_payment else None

    @property
    def first_day(self) -> date | None:
        return date.fromisoformat(self.first_payment[:10]) if self.first_payment else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "rows_dropped": dict(self.rows_dropped),
            "first_payment": self.first_payment,
            "last_payment": self.last_payment,
        }


@dataclass
class Dataset:
    """A validated payment log, ready for the metric functions.

    ``payments``, ``daily`` and ``customers`` are Ibis tables living in ``con``; ``daily`` and
    ``customers`` are cached (temporary tables) so every period reuses them. Segment values per
    customer come from :meth:`customers_with_segments`.
    """

    con: Any
    payments: ir.Table
    daily: ir.Table
    customers: ir.Table
    quality: DataQuality
    source_name: str
    segments: tuple[str, ...] = ()
    has_cost: bool = False
    has_order_id: bool = False
    settings: Settings | None = field(default=None, repr=False)

    @property
    def last_day(self) -> date | None:
        return self.quality.last_day

    @property
    def first_day(self) -> date | None:
        return self.quality.first_day

    def customers_with_segments(self) -> ir.Table:
        """``customers`` plus the segment columns of each customer's first positive payment
        (``(none)`` when missing), built and cached on first use."""
        if not self.segments:
            return self.customers
        cached = self.__dict__.get("_customers_seg")
        if cached is None:
            cached = build_customers(self.daily, self.segments, self.payments).cache()
            self.__dict__["_customers_seg"] = cached
        return cached


# --------------------------------------------------------------------------------------------
# connecting


def connect_duckdb(settings: Settings, database: str = ":memory:", read_only: bool = False) -> Any:
    """An Ibis DuckDB connection with the engine limits and the report time zone set.

    The session time zone makes DuckDB read naive timestamps as report-zone local time and convert
    values with an offset into it (SPEC §2).
    """
    config: dict[str, Any] = {}
    eng = settings.engine
    if eng.memory_limit:
        config["memory_limit"] = eng.memory_limit
    if eng.threads:
        config["threads"] = eng.threads
    if eng.temp_directory:
        config["temp_directory"] = eng.temp_directory
    try:
        con = ibis.duckdb.connect(database, read_only=read_only, **config)
    except Exception as exc:  # duckdb raises its own IOException/InvalidInputException
        raise DataError(f"cannot open DuckDB database {database}: {_first_line(exc)}") from None
    con.raw_sql(f"SET TimeZone = '{settings.timezone}'")
    return con


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _source_kind(settings: Settings) -> str:
    src = settings.source
    if src.kind != "auto":
        return src.kind
    if src.url:
        scheme = src.url.split("://", 1)[0].lower()
        return {"postgresql": "postgres", "postgres": "postgres", "duckdb": "duckdb",
                "sqlite": "sqlite", "spark": "spark", "pyspark": "spark"}.get(scheme, "url")
    if not src.path:
        return "sample"
    p = src.path.lower()
    if p.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")):
        return "csv"
    if p.endswith((".parquet", ".pq")) or Path(src.path).is_dir() or "*" in p:
        return "parquet"
    if p.endswith((".duckdb", ".ddb", ".db.duckdb")):
        return "duckdb"
    if p.endswith((".sqlite", ".sqlite3", ".db")):
        return "sqlite"
    if p.endswith((".xlsx", ".xls")):
        return "excel"
    raise DataError(
        f"cannot tell the format of source.path {src.path!r} from its extension; set source.kind "
        "to one of csv, parquet, excel, duckdb, sqlite, postgres, spark, url"
    )


def _read_raw(settings: Settings) -> tuple[Any, ir.Table, str, bool]:
    """Connect and return (connection, raw table, source name, columns-are-text)."""
    src = settings.source
    kind = _source_kind(settings)
    if kind == "sample":
        from .sample import ensure_sample

        path, _ = ensure_sample()
        settings_path = str(path)
        kind, src_path = "parquet", settings_path
    else:
        src_path = src.path
    name = src.name or src_path or _redacted(src.url)

    if kind in ("csv", "parquet", "excel"):
        _check_path(src_path)
        con = connect_duckdb(settings)
        try:
            if kind == "parquet":
                target = src_path
                if Path(src_path).is_dir():
                    target = str(Path(src_path) / "**" / "*.parquet")
                raw = con.read_parquet(target, hive_partitioning=True)
                return con, raw, name, False
            if kind == "csv":
                c = src.csv
                opts: dict[str, Any] = {"all_varchar": True, "header": c.header, "delim": c.delimiter}
                if c.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
                    opts["encoding"] = c.encoding
                raw = con.read_csv(src_path, **opts)
                return con, raw, name, True
            import pandas as pd  # Excel exports are small by nature

            frame = pd.read_excel(src_path, dtype=str)
            return con, con.create_table("_excel_source", frame, temp=True), name, True
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read {kind} source {src_path}: {_first_line(exc)}") from None

    if kind == "duckdb":
        db = src_path or src.url.split("://", 1)[1]
        _check_path(db)
        con = connect_duckdb(settings, db, read_only=True)
        return con, _table_or_query(con, settings), name, False
    if kind == "sqlite":
        db = src_path or src.url.split("://", 1)[1]
        _check_path(db)
        try:
            con = ibis.sqlite.connect(db)
        except Exception as exc:
            raise DataError(f"cannot open SQLite database {db}: {_first_line(exc)}") from None
        return con, _table_or_query(con, settings), name, False
    if kind == "spark":
        return _read_spark(settings, src_path, name)
    # postgres and any other Ibis URL
    url = src.url
    if not url:
        raise DataError(f"source.kind = {kind!r} needs source.url")
    kwargs: dict[str, Any] = {}
    if src.password_env:
        password = os.environ.get(src.password_env)
        if password is None:
            raise DataError(f"environment variable {src.password_env} (source.password_env) is not set")
        kwargs["password"] = password
    try:
        con = ibis.connect(url, **kwargs)
    except Exception as exc:
        raise DataError(f"cannot connect to {_redacted(url)}: {_first_line(exc)}") from None
    if kind == "postgres":
        con.raw_sql(f"SET TIME ZONE '{settings.timezone}'")
    return con, _table_or_query(con, settings), name, False


def spark_session(settings: Settings) -> Any:
    """A Spark session for the report: the report time zone as the session time zone (so day
    buckets match every other backend), few shuffle partitions, no UI. The master is
    ``RETENTION_REPORT_SPARK_MASTER`` (default ``local[*]``; ``spark://host:7077`` or ``yarn`` for a
    cluster)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise DataError("source.kind = 'spark' needs PySpark: pip install -e '.[spark]'") from None
    master = os.environ.get("RETENTION_REPORT_SPARK_MASTER", "local[*]")
    builder = (
        SparkSession.builder.master(master)
        .appName("retention-report")
        .config("spark.sql.session.timeZone", settings.timezone)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("RETENTION_REPORT_SPARK_PARTITIONS", "8"))
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.driver.memory", os.environ.get("RETENTION_REPORT_SPARK_DRIVER_MEMORY", "4g"))
    )
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise DataError(f"cannot start Spark (master {master}): {_first_line(exc)}") from None
    session.conf.set("spark.sql.session.timeZone", settings.timezone)
    session.sparkContext.setLogLevel("ERROR")
    return session


def _read_spark(settings: Settings, path: str, name: str) -> tuple[Any, ir.Table, str, bool]:
    session = spark_session(settings)
    con = ibis.pyspark.connect(session)
    # Ibis's connect() resets the session time zone to UTC; set the report zone again, or
    # offset-aware timestamps (Spark's TIMESTAMP) would be bucketed into UTC days
    session.conf.set("spark.sql.session.timeZone", settings.timezone)
    if path:
        _check_path(path)
        try:
            raw = con.read_parquet(path)  # a file, a folder (hive partitions too) or a glob
        except Exception as exc:
            raise DataError(f"Spark cannot read {path}: {_first_line(exc)}") from None
        return con, raw, name, False
    return con, _table_or_query(con, settings), name, False


def _redacted(url: str) -> str:
    from .config import _redact_url

    return _redact_url(url)


def _check_path(path: str) -> None:
    if not path:
        raise DataError("source.path is empty")
    if any(ch in path for ch in "*?["):
        if not _glob.glob(path, recursive=True):
            raise DataError(f"no file matches source.path {path!r}")
    elif not Path(path).exists():
        raise DataError(f"source file not found: {path}")


def _table_or_query(con: Any, settings: Settings) -> ir.Table:
    """``source.query``, else ``source.table`` — ``name``, ``schema.name`` or ``catalog.schema.name``."""
    from ibis.common.exceptions import TableNotFound

    src = settings.source
    try:
        if src.query:
            return con.sql(src.query)
        *database, name = src.table.split(".") if src.table.count(".") <= 2 else [src.table]
        if database:
            return con.table(name, database=tuple(database) if len(database) > 1 else database[0])
        return con.table(name)
    except TableNotFound:
        raise DataError(f"table {src.table!r} not found in the source (source.table)") from None
    except Exception as exc:
        what = "query" if src.query else f"table {src.table!r}"
        raise DataError(f"cannot read {what} from the source: {_first_line(exc)}") from None


# --------------------------------------------------------------------------------------------
# mapping and conversion


def _mapping(settings: Settings) -> dict[str, str]:
    """canonical name -> source column name, for the roles and segments in use."""
    cols = settings.columns
    m = {"customer_id": cols.customer_id, "paid_at": cols.paid_at, "amount": cols.amount}
    if cols.order_id:
        m["order_id"] = cols.order_id
    if cols.cost:
        m["cost"] = cols.cost
    for s in cols.segments:
        if s in ROLE_COLUMNS:
            raise DataError(f"segment column {s!r} clashes with a canonical column name")
        m[s] = s
    return m


def _check_columns(raw: ir.Table, mapping: dict[str, str]) -> None:
    available = list(raw.columns)
    missing = [(canon, src) for canon, src in mapping.items() if src not in available]
    if missing:
        parts = [
            f"{src!r}" + (f" (mapped to {canon})" if canon != src else "") for canon, src in missing
        ]
        raise DataError(
            f"missing column(s) {', '.join(parts)} in the source; available columns: {available}. "
            "Map your column names in the [columns] section of the config."
        )


def _try_cast(col: ir.Value, to: Any, lenient: bool) -> ir.Value:
    """TRY_CAST where the engine has it (DuckDB, PostgreSQL via Ibis, Spark); a plain cast
    elsewhere (SQLite's CAST already yields NULL/0 instead of failing)."""
    return col.try_cast(to) if lenient else col.cast(to)


def _parse_amount(col: ir.Value, settings: Settings, lenient: bool = True) -> ir.FloatingValue:
    if col.type().is_numeric():
        return col.cast("float64")
    if not col.type().is_string():
        return col.cast("float64")  # will raise on execution with a clear type error upstream
    c = settings.source.csv
    s = col.strip()
    s = s.re_replace("[\\s\u00a0\u202f]", "")
    if c.thousands and not c.thousands.isspace():
        s = s.replace(c.thousands, "")
    if c.decimal == ",":
        s = s.replace(",", ".")
    return _try_cast(s.nullif(""), "float64", lenient)


def _parse_timestamp(col: ir.Value, settings: Settings, lenient: bool = True) -> ir.TimestampValue:
    typ = col.type()
    if typ.is_timestamp():
        # tz-aware → local time of the session zone; naive → taken as report-zone local time
        return col.cast(dt.Timestamp()) if typ.timezone else col
    if typ.is_date():
        return col.cast(dt.Timestamp())
    if typ.is_string():
        s = col.strip().nullif("")
        fmt = settings.source.csv.date_format
        if fmt:
            return _try_strptime(s, fmt)
        if not lenient:
            return s.cast(dt.Timestamp())
        return s.try_cast(dt.Timestamp(timezone="UTC")).cast(dt.Timestamp())
    raise DataError(f"column paid_at has type {typ}, which is not a date, timestamp or text")


@ibis.udf.scalar.builtin(name="try_strptime")
def _try_strptime_udf(s: str, fmt: str) -> datetime:  # type: ignore[empty-body]
    """DuckDB's TRY_STRPTIME."""


def _try_strptime(s: ir.StringValue, fmt: str) -> ir.TimestampValue:
    return _try_strptime_udf(s, fmt).cast(dt.Timestamp())


def _as_text(col: ir.Value) -> ir.StringValue:
    if col.type().is_string():
        return col.strip()
    if col.type().is_floating():
        # ids stored as floats (123.0) become "123", never "123.0"
        return col.cast("int64").cast("string")
    return col.cast("string")


def _convert(raw: ir.Table, mapping: dict[str, str], settings: Settings, backend: str = "duckdb") -> ir.Table:
    """Raw source → typed canonical columns plus the raw text of the checked columns."""
    lenient = backend != "sqlite"
    cols: dict[str, ir.Value] = {}
    cid = raw[mapping["customer_id"]]
    cols["customer_id"] = _as_text(cid).nullif("")
    cols["paid_at"] = _parse_timestamp(raw[mapping["paid_at"]], settings, lenient)
    cols["amount"] = _parse_amount(raw[mapping["amount"]], settings, lenient)
    if "cost" in mapping:
        cols["cost"] = _parse_amount(raw[mapping["cost"]], settings, lenient)
    if "order_id" in mapping:
        cols["order_id"] = _as_text(raw[mapping["order_id"]]).nullif("")
    for s in settings.columns.segments:
        cols[s] = _as_text(raw[s]).nullif("").fill_null(NONE_SEGMENT)
    for role in ("paid_at", "amount", "cost"):
        # the raw text is only needed to tell "empty" from "unparsable" in text columns and to
        # quote bad values; typed columns (Parquet, databases) cannot hold unparsable values
        if role in mapping and raw[mapping[role]].type().is_string():
            cols[f"_raw_{role}"] = raw[mapping[role]]
    return raw.select(**cols)


# --------------------------------------------------------------------------------------------
# validation

_RULES = {
    "null_customer_id": "customer_id is empty",
    "unparsable_paid_at": "paid_at is not a date",
    "non_numeric_amount": "amount is not a number",
    "non_numeric_cost": "cost is not a number",
    "future_paid_at": "paid_at is in the future",
}


def _rule_predicates(t: ir.Table, settings: Settings, now: datetime) -> dict[str, ir.BooleanValue]:
    preds: dict[str, ir.BooleanValue] = {
        "null_customer_id": t.customer_id.isnull(),
        "unparsable_paid_at": t.paid_at.isnull(),
        "non_numeric_amount": t.amount.isnull(),
    }
    if "cost" in t.columns and "_raw_cost" in t.columns:
        preds["non_numeric_cost"] = t.cost.isnull() & t._raw_cost.notnull() & (t._raw_cost.strip() != "")
    if not settings.validation.allow_future_dates:
        preds["future_paid_at"] = t.paid_at > ibis.literal(now, type=dt.Timestamp())
    return preds


def _rule_message(rule: str, mapping: dict[str, str], count: int, examples: list[dict[str, Any]]) -> str:
    role = {"null_customer_id": "customer_id", "unparsable_paid_at": "paid_at",
            "non_numeric_amount": "amount", "non_numeric_cost": "cost",
            "future_paid_at": "paid_at"}[rule]
    src = mapping.get(role, role)
    col = f"column {src!r}" + (f" (mapped to {role})" if src != role else "")
    if rule == "null_customer_id":
        what = "have an empty customer id"
        accepted = "every payment needs a customer id"
    elif rule == "unparsable_paid_at":
        what = "have an empty or unparsable date"
        accepted = f"accepted: {DATE_FORMS}"
    elif rule == "non_numeric_amount":
        what = "have an empty or non-numeric amount"
        accepted = f"accepted: {AMOUNT_FORMS}"
    elif rule == "non_numeric_cost":
        what = "have a non-numeric cost"
        accepted = f"accepted: {AMOUNT_FORMS}"
    else:
        what = "are dated in the future"
        accepted = "set validation.allow_future_dates = true if that is expected"
    shown = "; ".join(f"row {e['row']}: {e['value']!r}" for e in examples)
    return f"{col}: {count:,} row(s) {what} ({accepted}). Examples: {shown}"


def _validate(
    t: ir.Table, mapping: dict[str, str], settings: Settings, now: datetime
) -> tuple[ir.Table, dict[str, int], int, dict[str, Any]]:
    """Apply the validation rules; return (clean table, dropped counts by reason, rows read, hints
    for the next steps: ``_rows``, ``_first``/``_last`` paid_at and, on DuckDB, ``_distinct_hash``)."""
    preds = _rule_predicates(t, settings, now)
    agg = {name: p.cast("int32").sum() for name, p in preds.items()}
    agg["_rows"] = t.count()
    # in the same pass: what the clean table's statistics and duplicate check need when no row
    # is bad (the usual case), so those need no pass of their own
    agg["_first"] = t.paid_at.min()
    agg["_last"] = t.paid_at.max()
    if backend_supports_hash(t):
        canon = [c for c in t.columns if not c.startswith("_")]
        agg["_distinct_hash"] = ibis.struct({c: t[c] for c in canon}).hash().nunique()
    counts = t.aggregate(**agg).execute().iloc[0].to_dict()
    rows_read = int(counts.pop("_rows"))
    hints = {k: counts.pop(k) for k in ("_first", "_last", "_distinct_hash") if k in counts}
    hints["_rows"] = rows_read
    counts = {k: int(v or 0) for k, v in counts.items()}
    bad = {k: v for k, v in counts.items() if v}
    dropped: dict[str, int] = {}
    if bad and settings.validation.on_invalid == "error":
        messages = []
        numbered = t.mutate(_row=ibis.row_number() + 1)  # source order; only on the error path
        npreds = _rule_predicates(numbered, settings, now)
        for rule, n in bad.items():
            raw_col = {"null_customer_id": "customer_id", "unparsable_paid_at": "_raw_paid_at",
                       "non_numeric_amount": "_raw_amount", "non_numeric_cost": "_raw_cost",
                       "future_paid_at": "_raw_paid_at"}[rule]
            if raw_col not in numbered.columns:  # typed source column: quote the typed value
                raw_col = {"_raw_paid_at": "paid_at", "_raw_amount": "amount"}.get(raw_col, raw_col)
            ex = numbered.filter(npreds[rule]).order_by("_row").select("_row", value=numbered[raw_col].cast("string")).limit(5)
            examples = [{"row": int(r["_row"]), "value": r["value"]} for r in ex.execute().to_dict("records")]
            messages.append(_rule_message(rule, mapping, n, examples))
        raise DataError(
            "invalid payment data (validation.on_invalid = 'error'):\n  - "
            + "\n  - ".join(messages)
            + "\nRow numbers count data rows from 1 in source order. Fix the source, map the right "
            "columns, or set validation.on_invalid = 'drop' to drop and count such rows."
        )
    # rows are attributed to the first rule they break, so the counts add up
    remaining = t
    for rule in preds:
        if counts.get(rule):
            dropped[rule] = counts[rule]
    if bad:
        any_bad = ibis.literal(False)
        for p in preds.values():
            any_bad = any_bad | p.fill_null(False)
        remaining = t.filter(~any_bad)
        if len(bad) > 1:  # overlapping rules: recount exclusively in rule order
            seen = ibis.literal(False)
            agg2 = {}
            for rule, p in preds.items():
                agg2[rule] = (p.fill_null(False) & ~seen).cast("int32").sum()
                seen = seen | p.fill_null(False)
            exclusive = t.aggregate(**agg2).execute().iloc[0].to_dict()
            dropped = {k: int(v) for k, v in exclusive.items() if v}
    return remaining, dropped, rows_read, hints


def backend_supports_hash(t: ir.Table) -> bool:
    """DuckDB hashes a whole row cheaply; elsewhere the exact DISTINCT count is used."""
    try:
        return t._find_backend().name == "duckdb"  # noqa: SLF001
    except Exception:  # noqa: BLE001
        return False


def _dedupe(t: ir.Table, settings: Settings, hints: dict[str, Any] | None = None) -> tuple[ir.Table, int]:
    """Exact duplicate payments (all canonical columns equal).

    ``hints`` (from the validation pass over the same rows) may carry ``_rows`` and
    ``_distinct_hash``, the number of distinct row hashes: equal counts prove there is no duplicate
    (equal rows hash equally), so the exact DISTINCT — the costliest query of the load — is only
    run when a duplicate (or a hash collision) is possible.
    """
    canon = [c for c in t.columns if not c.startswith("_")]
    if hints and hints.get("_distinct_hash") is not None and int(hints["_distinct_hash"]) == int(hints["_rows"]):
        return t.select(canon), 0
    n_all = t.count().execute()
    distinct = t.select(canon).distinct()
    n_distinct = distinct.count().execute()
    dups = int(n_all - n_distinct)
    if dups and settings.validation.on_invalid == "error":
        numbered = t.mutate(_row=ibis.row_number() + 1)
        g = numbered.group_by(canon).agg(n=numbered.count(), row=numbered._row.min()).filter(lambda x: x.n > 1)
        ex = g.order_by("row").limit(5).execute()
        shown = "; ".join(
            f"row {int(r['row'])}: customer {r['customer_id']!r} at {r['paid_at']} amount {r['amount']}"
            f" ({int(r['n'])} copies)"
            for r in ex.to_dict("records")
        )
        raise DataError(
            f"invalid payment data (validation.on_invalid = 'error'): {dups:,} duplicate row(s) — "
            f"payments identical in every mapped column. Examples: {shown}. Deduplicate the source, "
            "map order_id so distinct payments differ, or set validation.on_invalid = 'drop'."
        )
    return (distinct if dups else t.select(canon)), dups


# --------------------------------------------------------------------------------------------
# derived tables


def build_daily(payments: ir.Table, segments: tuple[str, ...] = ()) -> ir.Table:
    """Canonical payments → one row per customer and day (see module docstring).

    ``segments`` is accepted for compatibility and ignored: segment values belong to customers
    (their first purchase, see :func:`build_customers`), and leaving them out of this, the largest
    derived table, halves the time to build it.
    """
    p = payments
    pos = p.amount > 0
    aggs: dict[str, ir.Value] = {
        "gross": ibis.cases((pos, p.amount), else_=0.0).sum(),
        "refunds": ibis.cases((p.amount < 0, -p.amount), else_=0.0).sum(),
        "payments": pos.cast("int32").sum(),
        "rows": p.count(),
    }
    if "cost" in p.columns:
        aggs["cost_pos"] = ibis.cases((pos, p.cost.fill_null(0.0)), else_=0.0).sum()
        aggs["cost_all"] = p.cost.fill_null(0.0).sum()
    daily = p.group_by(["customer_id", "day"]).aggregate(**aggs)
    return daily.mutate(is_purchase=daily.gross > 0)


def build_customers(daily: ir.Table, segments: tuple[str, ...] = (), payments: ir.Table | None = None) -> ir.Table:
    """Daily table → one row per customer with a purchase: acquired, second, and the segment values
    of the customer's first positive payment (from ``payments``; ``(none)`` when missing)."""
    pur = daily.filter(daily.is_purchase)
    ranked = pur.mutate(
        _n=ibis.row_number().over(group_by=pur.customer_id, order_by=pur.day)
    )
    first = ranked.filter(ranked._n == 0).select("customer_id", acquired=ranked.day)
    second = ranked.filter(ranked._n == 1).select("customer_id", second=ranked.day)
    customers = first.left_join(second, "customer_id").select(first, second.second)
    if not segments or payments is None:
        return customers
    pos = payments.filter(payments.amount > 0)
    segs = pos.group_by("customer_id").aggregate(**{s: pos[s].argmin(pos.paid_at) for s in segments})
    j = customers.left_join(segs, "customer_id")
    return j.select(customers, **{s: j[s].fill_null(NONE_SEGMENT) for s in segments})


# --------------------------------------------------------------------------------------------
# entry points


def _finish(
    con: Any,
    converted: ir.Table,
    mapping: dict[str, str],
    settings: Settings,
    source_name: str,
    now: datetime | None = None,
) -> Dataset:
    if now is None:
        now = datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    clean, dropped, rows_read, hints = _validate(converted, mapping, settings, now)
    hints = None if dropped else hints
    clean, dups = _dedupe(clean, settings, hints)
    if dups:
        dropped["duplicate_row"] = dups
    segments = tuple(settings.columns.segments)
    payments = clean.mutate(day=clean.paid_at.date())
    if hints and not dups:  # nothing dropped: the validation pass saw exactly these rows
        stats = {"n": hints["_rows"], "first": hints["_first"], "last": hints["_last"]}
    else:
        stats = payments.aggregate(
            n=payments.count(), first=payments.paid_at.min(), last=payments.paid_at.max()
        ).execute().iloc[0]
    daily = build_daily(payments).cache()
    # segment values of each customer's first purchase are only needed for the per-segment cohort
    # curves: built on first use (Dataset.customers_with_segments), not on every load
    customers = build_customers(daily).cache()

    def _iso(v: Any) -> str | None:
        if v is None or (hasattr(v, "isoformat") is False) or str(v) == "NaT":
            return None
        return v.isoformat(sep=" ") if isinstance(v, datetime) else str(v)

    quality = DataQuality(
        rows_read=rows_read,
        rows_used=int(stats["n"]),
        rows_dropped=dropped,
        first_payment=_iso(stats["first"]),
        last_payment=_iso(stats["last"]),
    )
    return Dataset(
        con=con,
        payments=payments,
        daily=daily,
        customers=customers,
        quality=quality,
        source_name=source_name,
        segments=segments,
        has_cost="cost" in mapping,
        has_order_id="order_id" in mapping,
        settings=settings,
    )


def open_dataset(settings: Settings, now: datetime | None = None) -> Dataset:
    """Connect to the configured source, validate it and build the derived tables.

    Raises
    ------
    DataError
        The source cannot be reached or read, a mapped column is missing, or (with
        ``validation.on_invalid = "error"``) a validation rule is broken. The message names the
        column, the number of rows and up to five example rows.
    """
    con, raw, name, _ = _read_raw(settings)
    mapping = _mapping(settings)
    _check_columns(raw, mapping)
    converted = _convert(raw, mapping, settings, getattr(con, "name", "duckdb"))
    try:
        return _finish(con, converted, mapping, settings, name, now)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read the payment data from {name}: {_first_line(exc)}") from None


def dataset_from_frame(
    frame: Any, settings: Settings | None = None, name: str = "in-memory data", now: datetime | None = None
) -> Dataset:
    """Build a :class:`Dataset` from a pandas DataFrame (tests, notebooks, small exports)."""
    settings = settings or Settings()
    con = connect_duckdb(settings)
    raw = con.create_table("_frame_source", frame, temp=True)
    mapping = _mapping(settings)
    _check_columns(raw, mapping)
    return _finish(con, _convert(raw, mapping, settings), mapping, settings, name, now)
