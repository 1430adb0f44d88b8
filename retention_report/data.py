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

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
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
    "first_purchase_segments",
    "day_summary",
    "NONE_SEGMENT",
]

NONE_SEGMENT = "(none)"
ROLE_COLUMNS = ("customer_id", "paid_at", "amount", "order_id", "cost", "payment_id")

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

    def require_overlap(self, period: Any, source_name: str = "the data") -> None:
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
        }


@dataclass
class Dataset:
    """A validated payment log, ready for the metric functions.

    ``payments``, ``daily`` and ``customers`` are Ibis tables living in ``con``; ``daily`` and
    ``customers`` are cached (temporary tables) so every period reuses them; ``days`` is the small
    per-day summary as a pandas frame. Segment values per
    customer come from :meth:`customers_with_segments`.
    """

    con: Any
    payments: ir.Table
    daily: ir.Table
    customers: ir.Table
    days: Any  # pandas DataFrame: the day summary (module docstring)
    quality: DataQuality
    source_name: str
    segments: tuple[str, ...] = ()
    has_cost: bool = False
    has_order_id: bool = False
    settings: Settings | None = field(default=None, repr=False)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # results the metrics reuse

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
            return _acquired_between(self.customers, acquired_from, acquired_to)
        key = ("customers_with_segments", acquired_from, acquired_to)
        if key not in self.memo:
            self.memo[key] = first_purchase_segments(
                self.customers, self.payments, self.segments, acquired_from, acquired_to
            ).cache()
        return self.memo[key]


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
    if not Path(src.path).exists():  # a mistyped name is "not found", whatever its extension
        raise DataError(f"source file not found: {src.path}")
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
                return con, _read_csv(con, src_path, settings), name, True
            import pandas as pd  # Excel exports are small by nature

            frame = pd.read_excel(src_path, dtype=str)
            return con, con.create_table("_excel_source", frame, temp=True), name, True
        except DataError:
            raise
        except Exception as exc:
            if kind == "csv":
                raise DataError(_csv_problem(src_path, settings, exc)) from None
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
        from .secrets import read_secret

        password = read_secret(src.password_env)  # the environment, else a git-ignored .env
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


# DuckDB's CSV reader decodes these itself (codec name as Python's codecs.lookup spells it →
# DuckDB's name); any other encoding is transcoded to UTF-8 in a temporary file first
_DUCKDB_ENCODINGS = {"utf-8": None, "utf-8-sig": None, "iso8859-1": "latin-1", "utf-16": "utf-16"}
_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}


def _read_csv(con: Any, path: str, settings: Settings) -> ir.Table:
    """A CSV file read as text (every column varchar) with the configured dialect.

    An encoding DuckDB cannot decode itself (cp1252, cp1251, …: its ``encodings`` extension needs a
    download) is transcoded with Python's codec into a temporary UTF-8 copy that lives as long as
    the connection; the source file is only read.
    """
    import codecs

    c = settings.source.csv
    try:
        codec = codecs.lookup(c.encoding).name
    except LookupError:
        raise DataError(
            f"unknown encoding {c.encoding!r} (source.csv.encoding); use e.g. 'utf-8', 'cp1252', "
            "'cp1251', 'latin-1' or 'utf-16'"
        ) from None
    if not any(ch in path for ch in "*?[") and Path(path).is_file() and Path(path).stat().st_size == 0:
        raise DataError(f"no payments in {settings.source.name or path}: the file is empty")
    opts: dict[str, Any] = {"all_varchar": True, "header": c.header, "delim": c.delimiter}
    if codec in _DUCKDB_ENCODINGS:
        if _DUCKDB_ENCODINGS[codec]:
            opts["encoding"] = _DUCKDB_ENCODINGS[codec]
        return con.read_csv(path, **opts)
    return con.read_csv(_transcoded(con, path, codec, settings), **opts)


def _transcoded(con: Any, path: str, codec: str, settings: Settings) -> str:
    import gzip
    import shutil
    import tempfile
    import weakref

    if any(ch in path for ch in "*?["):
        raise DataError(
            f"encoding {settings.source.csv.encoding!r} is read for single files only; source.path "
            f"{path!r} is a pattern (convert the files to UTF-8, or read them one at a time)"
        )
    folder = tempfile.mkdtemp(prefix="rr-csv-", dir=settings.engine.temp_directory or None)
    weakref.finalize(con, shutil.rmtree, folder, True)  # also at interpreter exit
    target = Path(folder) / "source.utf8.csv"
    opener: Any = gzip.open if path.lower().endswith(".gz") else open
    offset = 0
    try:
        with opener(path, "rb") as raw, target.open("w", encoding="utf-8", newline="") as out:
            decoder = _decoder(codec)
            while chunk := raw.read(1 << 20):
                out.write(decoder.decode(chunk))
                offset += len(chunk)
            out.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not valid {settings.source.csv.encoding}: byte 0x{exc.object[exc.start]:02x} at "
            f"byte offset {offset + exc.start:,} cannot be decoded; set source.csv.encoding to the "
            "file's encoding (e.g. 'utf-8', 'cp1252', 'cp1251', 'latin-1')"
        ) from None
    return str(target)


def _decoder(codec: str) -> Any:
    import codecs

    return codecs.getincrementaldecoder(codec)(errors="strict")


def _first_invalid_utf8(path: str) -> tuple[int, int, int] | None:
    """(byte offset, line number, byte) of the first byte that is not valid UTF-8, or None."""
    base, lines, carry = 0, 0, b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            data = carry + chunk
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as exc:
                if chunk and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                    good = exc.start  # a character split by the chunk boundary
                else:
                    return base + exc.start, lines + data[: exc.start].count(b"\n") + 1, data[exc.start]
            lines += data[:good].count(b"\n")
            base += good
            carry = data[good:]
            if not chunk:
                return None


def _line_endings(path: str, limit: int = 16 << 20) -> tuple[int, int] | None:
    """When the file mixes Windows (CRLF) and Unix (LF) line endings: the first line ending in
    CRLF and the first ending in a bare LF (line numbers from 1); else None."""
    head = Path(path).open("rb").read(limit)
    crlf, lf = head.find(b"\r\n"), -1
    pos = head.find(b"\n")
    while pos != -1:
        if pos == 0 or head[pos - 1 : pos] != b"\r":
            lf = pos
            break
        pos = head.find(b"\n", pos + 1)
    if crlf == -1 or lf == -1:
        return None
    return head[:crlf].count(b"\n") + 1, head[:lf].count(b"\n") + 1


def _csv_problem(path: str, settings: Settings, exc: BaseException) -> str:
    """What went wrong reading a CSV file, in terms of the fix (DuckDB's own message blames the
    dialect sniffer or quotes the wrong line)."""
    c = settings.source.csv
    single = Path(path).is_file() and not path.lower().endswith(".gz")
    import codecs

    try:
        codec = codecs.lookup(c.encoding).name
    except LookupError:
        codec = ""
    if single and codec in ("utf-8", "utf-8-sig"):
        bad = _first_invalid_utf8(path)
        if bad:
            offset, line, byte = bad
            return (
                f"{path} is not valid UTF-8: byte 0x{byte:02x} at byte offset {offset:,} (line {line}). "
                "The file was probably exported with a Windows code page: set source.csv.encoding = "
                "\"cp1252\" (Western European), \"cp1251\" (Cyrillic) or \"latin-1\""
            )
    if single:
        mixed = _line_endings(path)
        if mixed:
            return (
                f"{path} mixes Windows (CRLF) and Unix (LF) line endings (line {mixed[0]} ends in CRLF, "
                f"line {mixed[1]} in LF), which the CSV reader cannot parse: convert the file to one "
                "style (e.g. dos2unix, or save it again from the spreadsheet)"
            )
    hint = _delimiter_hint(path, settings)
    return f"cannot read csv source {path}: {_first_line(exc)}" + (f". {hint}" if hint else "")


def _delimiter_hint(path: str, settings: Settings) -> str:
    """"looks like ';'-separated: set source.csv.delimiter" when the header line has no configured
    delimiter but another common one ('' when it cannot tell)."""
    c = settings.source.csv
    try:
        if not Path(path).is_file():
            return ""
        import gzip

        opener: Any = gzip.open if path.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            header = fh.readline(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        return ""
    if c.delimiter in header:
        return ""
    found = [(header.count(d), d) for d in _DELIMITERS if d != c.delimiter and d in header]
    if not found:
        return ""
    best = max(found)[1]
    key = "\\t" if best == "\t" else best
    return (f"The header line looks {_DELIMITERS[best]}-separated: set source.csv.delimiter = "
            f"\"{key}\" (it is {c.delimiter!r})")


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
    if master.startswith("local"):
        # local mode: Spark's default warehouse folder would appear in the working directory
        import tempfile

        builder = builder.config("spark.sql.warehouse.dir", str(Path(tempfile.gettempdir()) / "rr-spark-warehouse"))
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
    if cols.payment_id:
        m["payment_id"] = cols.payment_id
    for s in cols.segments:
        if s in ROLE_COLUMNS:
            raise DataError(f"segment column {s!r} clashes with a canonical column name")
        m[s] = s
    return m


def _check_columns(raw: ir.Table, mapping: dict[str, str], settings: Settings | None = None) -> None:
    available = list(raw.columns)
    missing = [(canon, src) for canon, src in mapping.items() if src not in available]
    if missing:
        parts = [
            f"{src!r}" + (f" (mapped to {canon})" if canon != src else "") for canon, src in missing
        ]
        hint = ""
        if settings is not None and settings.source.path and _source_kind(settings) == "csv":
            hint = _delimiter_hint(settings.source.path, settings)
        shown = [a if len(a) <= 60 else a[:57] + "…" for a in available[:50]]
        more = f" and {len(available) - 50} more" if len(available) > 50 else ""
        raise DataError(
            (f"{hint}. " if hint else "")
            + f"missing column(s) {', '.join(parts)} in the source; available columns: {shown}{more}. "
            "Map your column names in the [columns] section of the config."
        )


def _try_cast(col: ir.Value, to: Any, lenient: bool) -> ir.Value:
    """TRY_CAST where the engine has it (DuckDB, PostgreSQL via Ibis, Spark); a plain cast
    elsewhere (SQLite's CAST already yields NULL/0 instead of failing)."""
    return col.try_cast(to) if lenient else col.cast(to)


@ibis.udf.scalar.builtin(name="isfinite")
def _isfinite(x: float) -> bool:  # type: ignore[empty-body]
    """DuckDB's ISFINITE."""


def _not_finite(x: ir.FloatingValue, backend: str) -> ir.BooleanValue:
    """NaN, +inf or -inf: values a float column or a text "NaN"/"inf" can hold that are no amount
    of money (one NaN would turn every sum into NaN, one inf every total into inf).

    DuckDB: ``NOT isfinite(x)``. DuckDB 2.0 folds ``isnan(x)`` and ``isinf(x)`` to false from a
    Parquet file's min/max statistics, which leave NaN out, so a real NaN passed; ``isfinite`` is not
    folded (tests/test_data.py checks a Parquet NaN).
    """
    if backend == "duckdb":
        return ~_isfinite(x)
    inf = ibis.literal(float("inf"))
    if backend == "sqlite":  # SQLite has no NaN (stored as NULL) and no isnan()
        return (x == inf) | (x == -inf)
    return x.isnan() | (x == inf) | (x == -inf)


def _finite_or_null(x: ir.FloatingValue, backend: str) -> ir.FloatingValue:
    return ibis.ifelse(_not_finite(x, backend).fill_null(False), ibis.null("float64"), x)


def _parse_amount(col: ir.Value, settings: Settings, lenient: bool = True) -> ir.FloatingValue:
    """Text or a number → float64; empty, unparsable text → NULL. NaN and ±inf are left as they
    are here (see :func:`_finite_or_null`)."""
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


def _as_text(col: ir.Value, trim: bool = False) -> ir.StringValue:
    """An id or segment value as text. ``trim``: strip surrounding whitespace, for sources read as
    text (CSV, Excel), where it is an artefact of the format; typed string columns (Parquet,
    databases) are opaque and kept as they are (SPEC §2) — and not trimming them saves the costliest
    string operation of the load."""
    if col.type().is_string():
        return col.strip() if trim else col
    if col.type().is_floating():
        # ids stored as floats (123.0) become "123", never "123.0"
        return col.cast("int64").cast("string")
    return col.cast("string")


def _convert(
    raw: ir.Table, mapping: dict[str, str], settings: Settings, backend: str = "duckdb", text_source: bool = False
) -> ir.Table:
    """Raw source → typed canonical columns plus the raw text of the checked columns.

    ``text_source``: the source was read as text (CSV, Excel): ids and segment values are trimmed.
    """
    lenient = backend != "sqlite"
    cols: dict[str, ir.Value] = {}
    cid = raw[mapping["customer_id"]]
    cols["customer_id"] = _as_text(cid, text_source).nullif("")
    cols["paid_at"] = _parse_timestamp(raw[mapping["paid_at"]], settings, lenient)
    # NaN / inf amounts (a float column, or the text "NaN" / "inf") are not numbers: NULL, so the
    # non-numeric rule catches them like "ten"
    cols["amount"] = _finite_or_null(_parse_amount(raw[mapping["amount"]], settings, lenient), backend)
    if "cost" in mapping:
        raw_cost = raw[mapping["cost"]]
        parsed = _parse_amount(raw_cost, settings, lenient)
        cols["cost"] = _finite_or_null(parsed, backend)
        # an empty cost is allowed (unknown); text that is no number, NaN or inf is not
        bad = _not_finite(parsed, backend).fill_null(False)
        if raw_cost.type().is_string():
            bad = bad | (parsed.isnull() & raw_cost.strip().nullif("").notnull())
        cols["_bad_cost"] = bad
    if "order_id" in mapping:
        cols["order_id"] = _as_text(raw[mapping["order_id"]], text_source).nullif("")
    if "payment_id" in mapping:
        cols["payment_id"] = _as_text(raw[mapping["payment_id"]], text_source).nullif("")
    for s in settings.columns.segments:
        cols[s] = _as_text(raw[s], text_source).nullif("").fill_null(NONE_SEGMENT)
    for role in ("paid_at", "amount", "cost"):
        # the raw value, to tell "empty" from "unparsable" in text columns and to quote bad values
        # (a typed NaN is quoted as 'nan', not as an empty value); only read on the error path
        if role in mapping:
            col = raw[mapping[role]]
            cols[f"_raw_{role}"] = col if col.type().is_string() else col.cast("string")
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
    if "_bad_cost" in t.columns:
        preds["non_numeric_cost"] = t._bad_cost
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
        accepted = f"accepted: {AMOUNT_FORMS}; NaN and infinity are not amounts"
    elif rule == "non_numeric_cost":
        what = "have a non-numeric cost"
        accepted = f"accepted: {AMOUNT_FORMS}, or empty; NaN and infinity are not amounts"
    else:
        what = "are dated in the future"
        accepted = "set validation.allow_future_dates = true if that is expected"
    shown = "; ".join(f"row {e['row']}: {_quoted(e['value'])}" for e in examples)
    return f"{col}: {count:,} row(s) {what} ({accepted}). Examples: {shown}"


def _quoted(value: Any) -> str:
    """A bad value as the user would recognise it: ``'ten'``; an empty or missing one as ``(empty)``
    (never ``None`` or ``nan``)."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return "(empty)"
    return repr(value)


def _day_aggregates(t: ir.Table) -> dict[str, ir.Value]:
    """The per-day summary (see :func:`day_summary`) as aggregates over payment rows."""
    pos = t.amount > 0
    aggs: dict[str, ir.Value] = {
        "rows": t.count(),
        "payments": t.count(where=pos),
        "gross": t.amount.sum(where=pos),
        "refunds": (-t.amount).sum(where=t.amount < 0),
        "first": t.paid_at.min(),
        "last": t.paid_at.max(),
    }
    if "cost" in t.columns:
        aggs["cost_all"] = t.cost.sum()
        aggs["cost_pos"] = t.cost.sum(where=pos)
    return aggs


def _days_frame(frame: Any) -> Any:
    """The executed per-day summary as a small pandas frame: ``day`` as datetime64, sorted, sums
    of no rows as 0."""
    import pandas as pd

    frame = frame[frame["day"].notna()].copy()
    frame["day"] = pd.to_datetime(frame["day"])
    for col in ("rows", "payments"):
        frame[col] = frame[col].fillna(0).astype("int64")
    for col in ("gross", "refunds", "cost_all", "cost_pos"):
        if col in frame.columns:
            frame[col] = frame[col].astype("float64").fillna(0.0)
    keep = ["day", "rows", "payments", "gross", "refunds", "first", "last",
            *[c for c in ("cost_all", "cost_pos") if c in frame.columns]]
    return frame[keep].sort_values("day").reset_index(drop=True)


def day_summary(payments: ir.Table) -> Any:
    """One row per calendar day with payments (a pandas frame, at most a few thousand rows):
    ``day, rows, payments`` (positive ones), ``gross, refunds, first, last`` (paid_at)
    ``[, cost_all, cost_pos]`` — the period sums that need no customer (refunds, cost of all rows)
    and the data-quality dates."""
    p = payments if "day" in payments.columns else payments.mutate(day=payments.paid_at.date())
    return _days_frame(p.group_by("day").aggregate(**_day_aggregates(p)).execute())


def _validate(
    t: ir.Table, mapping: dict[str, str], settings: Settings, now: datetime
) -> tuple[ir.Table, dict[str, int], int, Any]:
    """Apply the validation rules; return (clean table, dropped counts by reason, rows read, the
    per-day summary of :func:`day_summary` when no row was dropped, else None).

    One grouped pass over the source counts every rule *and* yields the per-day summary, so the
    usual case (nothing to drop) needs no pass of its own for either.
    """
    preds = _rule_predicates(t, settings, now)
    agg = {f"_bad_{name}": p.cast("int32").sum() for name, p in preds.items()}
    agg.update(_day_aggregates(t))
    by_day = t.group_by(day=t.paid_at.date()).aggregate(**agg).execute()
    rows_read = int(by_day["rows"].fillna(0).sum())
    counts = {name: int(by_day[f"_bad_{name}"].fillna(0).sum()) for name in preds}
    bad = {k: v for k, v in counts.items() if v}
    if not bad:
        return t, {}, rows_read, _days_frame(by_day)
    if settings.validation.on_invalid == "error":
        messages = []
        numbered = t.mutate(_row=ibis.row_number() + 1)  # source order; only on the error path
        npreds = _rule_predicates(numbered, settings, now)
        for rule, n in bad.items():
            raw_col = {"null_customer_id": "customer_id", "unparsable_paid_at": "_raw_paid_at",
                       "non_numeric_amount": "_raw_amount", "non_numeric_cost": "_raw_cost",
                       "future_paid_at": "_raw_paid_at"}[rule]
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
    dropped = dict(bad)
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
    return remaining, dropped, rows_read, None


def _payment_id_duplicates(
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
    dropped = {"duplicate_payment_id": identical, "conflicting_payment_id": conflicting}
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


# --------------------------------------------------------------------------------------------
# derived tables


def build_daily(payments: ir.Table) -> ir.Table:
    """Canonical payments (with ``day``) → one row per customer and day (see module docstring).

    Not sorted: ordering the 9.7M rows of 10M payments by day let period filters skip row groups,
    but the sort cost more (time and peak memory) than the skipping saved in the metric queries,
    whose cost is mostly their joins and aggregations (interleaved runs at 10M, 2026-11-23).

    Segment values belong to customers (their first purchase, see :func:`first_purchase_segments`), not to
    this, the largest derived table. Refunds and the cost of all rows are summed per period from the
    per-day summary (:func:`day_summary`), not per customer.
    """
    p = payments
    pos = p.amount > 0
    aggs: dict[str, ir.Value] = {
        "gross": p.amount.sum(where=pos),
        "payments": p.count(where=pos),
        "rows": p.count(),
    }
    if "cost" in p.columns:
        aggs["cost_pos"] = p.cost.sum(where=pos)
    g = p.group_by(["customer_id", "day"]).aggregate(**aggs)
    cols: dict[str, ir.Value] = {
        "customer_id": g.customer_id,
        "day": g.day,
        "gross": g.gross.fill_null(0.0),
        "payments": g.payments,
        "rows": g.rows,
    }
    if "cost_pos" in g.columns:
        cols["cost_pos"] = g.cost_pos.fill_null(0.0)
    cols["is_purchase"] = g.gross.fill_null(0.0) > 0
    return g.select(**cols)


@ibis.udf.agg.builtin(name="min")
def _two_smallest(x: date, n: int) -> dt.Array(dt.date):  # type: ignore[empty-body,valid-type]
    """DuckDB's ``min(x, n)``: the ``n`` smallest values, ascending, as a list."""


def _backend_name(t: ir.Table) -> str:
    try:
        return str(t._find_backend().name)
    except Exception:  # an unbound expression
        return ""


def build_customers(daily: ir.Table) -> ir.Table:
    """Daily table → one row per customer with a purchase: ``acquired`` and ``second`` (first and
    second purchase day). Segment values: :func:`first_purchase_segments`."""
    pur = daily.filter(daily.is_purchase).select("customer_id", "day")
    if _backend_name(daily) == "duckdb":
        # DuckDB's min(day, 2) takes the two earliest days in one grouped pass (1.7x faster than
        # the window at 10M payments)
        g = pur.group_by("customer_id").aggregate(_m=_two_smallest(pur.day, 2))
        customers = g.select("customer_id", acquired=g._m[0], second=g._m[1])
    else:
        ranked = pur.mutate(_n=ibis.row_number().over(group_by=pur.customer_id, order_by=pur.day))
        first_two = ranked.filter(ranked._n <= 1)
        customers = first_two.group_by("customer_id").aggregate(
            acquired=first_two.day.min(), second=first_two.day.min(where=first_two._n == 1)
        )
    # ordered by acquisition, so filters on it (the customers acquired in a period or a cohort)
    # skip most of the table
    return customers.order_by("acquired")


def _acquired_between(customers: ir.Table, first: date | None, last: date | None) -> ir.Table:
    if first is not None:
        customers = customers.filter(customers.acquired >= ibis.literal(first, type="date"))
    if last is not None:
        customers = customers.filter(customers.acquired <= ibis.literal(last, type="date"))
    return customers


def first_purchase_segments(
    customers: ir.Table,
    payments: ir.Table,
    segments: tuple[str, ...] | list[str],
    acquired_from: date | None = None,
    acquired_to: date | None = None,
) -> ir.Table:
    """The customers (acquired in ``[acquired_from, acquired_to]`` when given) with the segment
    values of their first positive payment; ``(none)`` when missing.

    The first positive payment is on the acquisition day (the first day with one), so only the
    payments of the window's days are read — filtered on ``paid_at`` itself, so a time-ordered
    file skips the other row groups — and only those of each customer's acquisition day compared.
    """
    c = _acquired_between(customers, acquired_from, acquired_to)
    pos = payments.filter(payments.amount > 0)
    if acquired_from is not None:
        pos = pos.filter(pos.paid_at >= ibis.literal(datetime.combine(acquired_from, time()), type="timestamp"))
    if acquired_to is not None:
        nxt = datetime.combine(acquired_to, time()) + timedelta(days=1)
        pos = pos.filter(pos.paid_at < ibis.literal(nxt, type="timestamp"))
    key = c.select(_cid=c.customer_id, _acq=c.acquired)
    first = pos.inner_join(key, [pos.customer_id == key._cid, pos.day == key._acq])
    segs = first.group_by(_cid=first.customer_id).aggregate(
        **{s: first[s].argmin(first.paid_at) for s in segments}
    )
    j = c.left_join(segs, c.customer_id == segs._cid)
    return j.select(*customers.columns, **{s: j[s].fill_null(NONE_SEGMENT) for s in segments})


# --------------------------------------------------------------------------------------------
# entry points


def _require_payments(days: Any, rows_read: int, dropped: dict[str, int], source_name: str) -> None:
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
    clean, dropped, rows_read, days = _validate(converted, mapping, settings, now)
    canon = [c for c in clean.columns if not c.startswith("_")]
    payments = clean.select(canon).mutate(day=clean.paid_at.date())
    # identical rows are legitimate and all count (SPEC §2); only a payment_id defines duplicates
    payments, doubles = _payment_id_duplicates(payments, settings, mapping)
    if doubles:
        dropped.update(doubles)
        payments = payments.cache()
        days = None
    if days is None:  # rows were dropped: summarise what is left
        days = day_summary(payments)
    _require_payments(days, rows_read, dropped, source_name)
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
        rows_used=int(days["rows"].sum()),
        rows_dropped=dropped,
        first_payment=_iso(days["first"].min()) if len(days) else None,
        last_payment=_iso(days["last"].max()) if len(days) else None,
    )
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


def open_dataset(settings: Settings, now: datetime | None = None) -> Dataset:
    """Connect to the configured source, validate it and build the derived tables.

    Raises
    ------
    DataError
        The source cannot be reached or read, a mapped column is missing, or (with
        ``validation.on_invalid = "error"``) a validation rule is broken. The message names the
        column, the number of rows and up to five example rows.
    """
    con, raw, name, text_source = _read_raw(settings)
    mapping = _mapping(settings)
    _check_columns(raw, mapping, settings)
    converted = _convert(raw, mapping, settings, getattr(con, "name", "duckdb"), text_source)
    try:
        return _finish(con, converted, mapping, settings, name, now)
    except DataError:
        raise
    except Exception as exc:
        src = settings.source
        if src.path and _source_kind(settings) == "csv":  # DuckDB reads lazily: errors surface here
            raise DataError(_csv_problem(src.path, settings, exc)) from None
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
