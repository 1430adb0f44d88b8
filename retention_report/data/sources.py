"""Connecting to a payment source and reading it as an Ibis table: files (CSV, Parquet, Excel),
database files (DuckDB, SQLite), servers (PostgreSQL and any Ibis URL) and Spark.

One reader per source kind (:data:`READERS`); :func:`read_raw` picks it from ``source.kind`` or the
path's extension / the URL's scheme. CSV problems DuckDB reports obscurely (encoding, line endings,
a wrong delimiter) are turned into messages that say the fix.
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from ..config import Settings, redact_url
from .model import DataError, first_line

__all__ = ["READERS", "RawSource", "connect_duckdb", "read_raw", "source_kind", "spark_session",
           "csv_problem", "delimiter_hint"]


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
        raise DataError(f"cannot open DuckDB database {database}: {first_line(exc)}") from None
    con.raw_sql(f"SET TimeZone = '{settings.timezone}'")
    return con


def source_kind(settings: Settings) -> str:
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


@dataclass(frozen=True)
class RawSource:
    """A connected source: the Ibis connection, the raw table (source column names and types), the
    name shown in the report and whether its columns were read as text (CSV, Excel: ids and segment
    values are trimmed, dates and amounts parsed in the configured dialect)."""

    con: Any
    table: ir.Table
    name: str
    text: bool = False


Reader = Callable[[Settings, str, str], RawSource]


def _read_file(settings: Settings, path: str, name: str, kind: str) -> RawSource:
    _check_path(path)
    con = connect_duckdb(settings)
    try:
        if kind == "parquet":
            target = str(Path(path) / "**" / "*.parquet") if Path(path).is_dir() else path
            _check_id_types(con, target, settings)
            return RawSource(con, con.read_parquet(target, hive_partitioning=True), name)
        if kind == "csv":
            return RawSource(con, _read_csv(con, path, settings), name, text=True)
        import pandas as pd  # Excel exports are small by nature

        frame = pd.read_excel(path, dtype=str)
        return RawSource(con, con.create_table("_excel_source", frame, temp=True), name, text=True)
    except DataError:
        raise
    except Exception as exc:
        if kind == "csv":
            raise DataError(csv_problem(path, settings, exc)) from None
        raise DataError(f"cannot read {kind} source {path}: {first_line(exc)}") from None


def _type_family(duckdb_type: str) -> str:
    t = duckdb_type.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT"):
        return "integer"
    if t in ("FLOAT", "DOUBLE"):
        return "floating-point"
    if t == "VARCHAR":
        return "text"
    return t


def _check_id_types(con: Any, target: str, settings: Settings) -> None:
    """Ids (customer, order, payment) and segment values typed differently across the files of a
    Parquet folder or glob are refused (SPEC §2: ``00123`` is not ``123``): DuckDB reads every file
    with the first file's schema, so text ids of a later file would be cast to integers (``"00123"``
    → 123, one customer with another's payments) and float ids rounded. Reads the files' footers
    only, and only when there is more than one file."""
    files = [target] if Path(target).is_file() else _glob.glob(target, recursive=True)
    if len(files) < 2:
        return
    cols = settings.columns
    wanted = [c for c in (cols.customer_id, cols.order_id, cols.payment_id, *cols.segments) if c]
    rows = con.con.execute(
        "SELECT file_name, name, duckdb_type FROM parquet_schema(?) WHERE name IN (SELECT unnest(?))",
        [target, wanted],
    ).fetchall()
    by_column: dict[str, dict[str, list[str]]] = {}
    for file_name, column, typ in rows:
        by_column.setdefault(column, {}).setdefault(_type_family(str(typ)), []).append(file_name)
    for column in wanted:
        families = by_column.get(column, {})
        if len(families) < 2:
            continue
        shown = "; ".join(
            f"{family} in {Path(found[0]).name}" + (f" and {len(found) - 1} more file(s)" if len(found) > 1 else "")
            for family, found in families.items()
        )
        raise DataError(
            f"column {column!r} has different types in the Parquet files of {target}: {shown}. Read with "
            "one schema, the values would be converted (text '00123' would become the number 123, 1.5 "
            "would become 1 or 2): write the column with one type in every file (text for ids)"
        )


def _read_duckdb(settings: Settings, path: str, name: str) -> RawSource:
    db = path or settings.source.url.split("://", 1)[1]
    _check_path(db)
    con = connect_duckdb(settings, db, read_only=True)
    return RawSource(con, _table_or_query(con, settings), name)


def _read_sqlite(settings: Settings, path: str, name: str) -> RawSource:
    db = path or settings.source.url.split("://", 1)[1]
    _check_path(db)
    try:
        con = ibis.sqlite.connect(db)
    except Exception as exc:
        raise DataError(f"cannot open SQLite database {db}: {first_line(exc)}") from None
    return RawSource(con, _table_or_query(con, settings), name)


def _read_url(settings: Settings, path: str, name: str) -> RawSource:
    """PostgreSQL and any other URL ``ibis.connect`` takes; the password only from
    ``source.password_env`` (the environment, else a git-ignored ``.env``)."""
    src = settings.source
    url = src.url
    if not url:
        raise DataError(f"source.kind = {src.kind!r} needs source.url")
    kwargs: dict[str, Any] = {}
    if src.password_env:
        from ..secrets import read_secret

        password = read_secret(src.password_env)  # the environment, else a git-ignored .env
        if password is None:
            raise DataError(f"environment variable {src.password_env} (source.password_env) is not set")
        kwargs["password"] = password
    try:
        con = ibis.connect(url, **kwargs)
    except Exception as exc:
        raise DataError(f"cannot connect to {_redacted(url)}: {first_line(exc)}") from None
    if source_kind(settings) == "postgres":
        con.raw_sql(f"SET TIME ZONE '{settings.timezone}'")
    return RawSource(con, _table_or_query(con, settings), name)


# source kind → reader(settings, path, display name); "sample" is the embedded Parquet file
READERS: dict[str, Reader] = {
    "csv": lambda s, p, n: _read_file(s, p, n, "csv"),
    "parquet": lambda s, p, n: _read_file(s, p, n, "parquet"),
    "excel": lambda s, p, n: _read_file(s, p, n, "excel"),
    "duckdb": _read_duckdb,
    "sqlite": _read_sqlite,
    "spark": lambda s, p, n: _read_spark(s, p, n),
    "postgres": _read_url,
    "url": _read_url,
}


def read_raw(settings: Settings) -> RawSource:
    """Connect to the configured source with the reader of its kind."""
    src = settings.source
    kind = source_kind(settings)
    path = src.path
    if kind == "sample":
        from ..sample import ensure_sample

        path, _ = ensure_sample()
        kind, path = "parquet", str(path)
    name = src.name or path or _redacted(src.url)
    return READERS[kind](settings, path, name)


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


def csv_problem(path: str, settings: Settings, exc: BaseException) -> str:
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
    hint = delimiter_hint(path, settings)
    return f"cannot read csv source {path}: {first_line(exc)}" + (f". {hint}" if hint else "")


def delimiter_hint(path: str, settings: Settings) -> str:
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
        raise DataError(f"cannot start Spark (master {master}): {first_line(exc)}") from None
    session.conf.set("spark.sql.session.timeZone", settings.timezone)
    session.sparkContext.setLogLevel("ERROR")
    return session


def _read_spark(settings: Settings, path: str, name: str) -> RawSource:
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
            raise DataError(f"Spark cannot read {path}: {first_line(exc)}") from None
        return RawSource(con, raw, name)
    return RawSource(con, _table_or_query(con, settings), name)


def _redacted(url: str) -> str:
    return redact_url(url)


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
        raise DataError(f"cannot read {what} from the source: {first_line(exc)}") from None
