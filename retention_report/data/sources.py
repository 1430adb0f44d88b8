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
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from ..config import ConfigError, Settings, redact_url
from .model import DataError, first_line

if TYPE_CHECKING:
    import codecs

    import duckdb
    from ibis.backends import BaseBackend
    from ibis.backends.duckdb import Backend as DuckDBBackend
    from pyspark.sql import SparkSession
    from sqlglot import exp

__all__ = ["READERS", "RawSource", "connect_duckdb", "read_raw", "source_kind", "spark_session",
           "csv_problem", "delimiter_hint", "check_source_keys", "SourceKeyError", "WHITESPACE", "FILE_TABLE"]


def connect_duckdb(settings: Settings, database: str = ":memory:", read_only: bool = False) -> DuckDBBackend:
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
    if p.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")):
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

    con: BaseBackend
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
            raw = RawSource(con, con.read_parquet(target, hive_partitioning=True), name)
        elif kind == "csv":
            raw = RawSource(con, _read_csv(con, path, settings), name, text=True)
        else:
            if path.lower().endswith(".xls"):
                raise DataError(f"{path} is an old Excel 97-2003 workbook (.xls), which is not read: save it "
                                "as .xlsx (Excel workbook) or as CSV")
            import pandas as pd  # Excel exports are small by nature

            frame = pd.read_excel(path, dtype=str, engine="openpyxl")
            raw = RawSource(con, con.create_table("_excel_source", frame, temp=True), name, text=True)
    except DataError:
        raise
    except Exception as exc:
        if kind == "csv":
            raise DataError(csv_problem(path, settings, exc)) from None
        raise DataError(f"cannot read {kind} source {path}: {first_line(exc)}") from None
    if settings.source.query:
        return _file_query(raw, settings)
    return raw


FILE_TABLE = "payments"  # the name a file source has in source.query
_QUERY_VIEW = "_rr_source_query"


def _duckdb_query(con: DuckDBBackend, query: str) -> ir.Table:
    """A DuckDB query as an Ibis table, through a temporary view (Ibis's ``con.sql`` asks DuckDB 2
    for the schema with a call it no longer has)."""
    _consume(con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_QUERY_VIEW} AS {query}"))
    return con.table(_QUERY_VIEW)


def _consume(result: duckdb.DuckDBPyConnection) -> None:
    try:
        result.fetchall()
    except Exception:  # statements without a result set
        pass


_NUM_MACRO = "rr_num"


def _numbers_in_dialect(con: DuckDBBackend, query: str, settings: Settings) -> str:
    """``query`` with every column it computes with read as a number written in the
    ``[source.csv]`` dialect (decimal and thousands separators): the operands of arithmetic
    (``+ - * / %``, unary minus), of ``sum``/``avg``/``abs``/``round`` and of comparisons with a
    number. Text that is no number becomes NULL there, so a computed amount is NULL and validation
    names the row ("non-numeric amount"), never a silent 0. A column inside an explicit ``CAST``
    is left to the cast. The query is parsed with sqlglot (DuckDB dialect); one it cannot parse
    is run as written."""
    import sqlglot
    from sqlglot import exp

    c = settings.source.csv
    text = "regexp_replace(trim(CAST(x AS VARCHAR)), '[\\s\u00a0\u202f]', '', 'g')"
    if c.thousands and not c.thousands.isspace():
        text = f"replace({text}, '{c.thousands.replace(chr(39), chr(39) * 2)}', '')"
    if c.decimal == ",":
        text = f"replace({text}, ',', '.')"
    _consume(con.raw_sql(f"CREATE OR REPLACE TEMP MACRO {_NUM_MACRO}(x) AS TRY_CAST(nullif({text}, '') AS DOUBLE)"))
    arithmetic = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.IntDiv, exp.Neg,
                  exp.Sum, exp.Avg, exp.Abs, exp.Round)
    comparisons = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ)

    def numeric(node: exp.Expression) -> bool:
        return (isinstance(node, exp.Literal) and node.is_number) or (
            isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and node.this.is_number)

    def rewrite(node: exp.Expression) -> exp.Expression:
        parent = node.parent
        if not isinstance(node, exp.Column) or parent is None:
            return node
        if isinstance(parent, arithmetic) or (
                isinstance(parent, comparisons) and any(numeric(side) for side in (parent.left, parent.right))):
            return exp.Anonymous(this=_NUM_MACRO, expressions=[node.copy()])
        return node

    try:
        return sqlglot.parse_one(query, read="duckdb").transform(rewrite).sql("duckdb")
    except Exception:  # sqlglot cannot parse it: DuckDB will say what is wrong
        return query


def _file_query(raw: RawSource, settings: Settings) -> RawSource:
    """``source.query`` over a file source: the file (as read with the ``[source.csv]`` dialect)
    is the view ``payments``; the query's result is the source (DuckDB SQL).

    A CSV or Excel file is read as text (ids keep their leading zeros), so a column the query
    computes with (``Quantity * UnitPrice``, ``Quantity < 0``, ``sum(Quantity)``) is read as a
    number in the configured dialect first: :func:`_numbers_in_dialect`. Columns the query passes
    through stay text and are converted like any source's."""
    con = raw.con
    query = settings.source.query
    try:
        con.create_view(FILE_TABLE, raw.table, overwrite=True)
        if raw.text:
            query = _numbers_in_dialect(con, query, settings)
        table = _duckdb_query(con, query)  # bound now: a wrong column or syntax fails here, with its name
    except Exception as exc:
        raise DataError(
            f"cannot run source.query over {raw.name} (the file is the table {FILE_TABLE!r}): {first_line(exc)}"
        ) from None
    # computed columns are numbers or dates already; the columns passed through stay text
    return RawSource(con, table, raw.name, text=raw.text)


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


def _check_id_types(con: DuckDBBackend, target: str, settings: Settings) -> None:
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


class SourceKeyError(DataError, ConfigError):
    """A ``[source]`` key the chosen source kind does not read: a configuration error (exit 2)
    found where the source is resolved."""


_FILE_KINDS = ("csv", "parquet", "excel", "sample")
# [source] keys → the source kinds they apply to (kind, name: all; csv.decimal, csv.thousands and
# csv.date_format: how text values are read, from any source)
_SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "path": ("csv", "parquet", "excel", "duckdb", "sqlite", "spark"),
    "url": ("duckdb", "sqlite", "postgres", "spark", "url"),
    "password_env": ("postgres", "url"),
    "table": ("duckdb", "sqlite", "postgres", "spark", "url"),
    "query": ("csv", "parquet", "excel", "duckdb", "sqlite", "postgres", "spark", "url", "sample"),
    "csv.delimiter": ("csv",),
    "csv.encoding": ("csv",),
    "csv.header": ("csv",),
}


def check_source_keys(settings: Settings) -> None:
    """A ``[source]`` key set (to other than its default) that the chosen source kind does not read
    is an error naming the key, never silently ignored: ``source.table`` with a CSV file, ``source.csv.delimiter``
    with a database, ``source.query`` and ``source.table`` both …"""
    from ..config import SourceSettings

    src, default = settings.source, SourceSettings()
    kind = source_kind(settings)
    for key, kinds in _SOURCE_KEYS.items():
        head, _, leaf = key.partition(".")
        value, base = (getattr(src.csv, leaf), getattr(default.csv, leaf)) if leaf else (getattr(src, head), getattr(default, head))
        if value == base or kind in kinds:
            continue
        if key == "table" and kind in _FILE_KINDS:
            why = (f"a {kind} source is read from source.path; to select from it use source.query "
                   f"(the file is the table {FILE_TABLE!r})")
        elif kind == "sample":
            why = "without source.path or source.url the embedded sample data is used"
        else:
            why = f"it applies to source kind(s) {', '.join(k for k in kinds if k != 'sample')} only"
        raise SourceKeyError(f"source.{key} = {value!r} does not apply to a {kind} source ({why}); remove it "
                        "or set source.kind / source.path to the source it is meant for")
    if src.query and src.table != default.table and kind not in _FILE_KINDS:
        raise SourceKeyError("give either source.table or source.query, not both (the query is read instead of the table)")
    if kind == "spark" and src.path and src.query:
        raise SourceKeyError("source.query does not apply to a spark source read from source.path (Parquet); "
                        "remove source.query, or read a table of the session's catalog with source.table")


def read_raw(settings: Settings) -> RawSource:
    """Connect to the configured source with the reader of its kind (after
    :func:`check_source_keys`)."""
    from ..config import ConfigError, refuse_inline_secrets

    try:
        refuse_inline_secrets(settings)  # before connecting: the URL would be shown and kept
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    src = settings.source
    check_source_keys(settings)
    kind = source_kind(settings)
    path = src.path
    if kind == "sample":
        from ..sample import ensure_sample

        sample, _ = ensure_sample()
        kind, path = "parquet", str(sample)
    name = _redacted(src.name or path or src.url)
    return READERS[kind](settings, path, name)


# DuckDB's CSV reader decodes these itself (codec name as Python's codecs.lookup spells it →
# DuckDB's name); any other encoding is transcoded to UTF-8 in a temporary file first
_DUCKDB_ENCODINGS = {"utf-8": None, "utf-8-sig": None, "iso8859-1": "latin-1", "utf-16": "utf-16"}
_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}


def _read_csv(con: DuckDBBackend, path: str, settings: Settings) -> ir.Table:
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
    if c.delimiter == WHITESPACE:
        opts: dict[str, Any] = {}
    else:
        opts = {"all_varchar": True, "header": c.header, "delim": c.delimiter}
    if codec in _DUCKDB_ENCODINGS:
        if _DUCKDB_ENCODINGS[codec]:
            opts["encoding"] = _DUCKDB_ENCODINGS[codec]
    else:
        path, codec = _transcoded(con, path, codec, settings), "utf-8"
    if c.delimiter == WHITESPACE:
        return _read_whitespace(con, path, settings, opts, codec)
    return con.read_csv(path, **opts)


WHITESPACE = "whitespace"  # source.csv.delimiter for fields separated by runs of spaces and tabs
_LINE_DELIM = "\x1f"  # the ASCII unit separator: a whitespace-separated text file does not hold it


def _header_fields(path: str, codec: str) -> tuple[list[str], int]:
    """The fields of the (first) file's first non-empty line, split on runs of spaces/tabs, and
    the number of blank lines before it."""
    import gzip

    files = sorted(_glob.glob(path, recursive=True)) if any(ch in path for ch in "*?[") else [path]
    opener: Any = gzip.open if files[0].lower().endswith(".gz") else open
    with opener(files[0], "rt", encoding=codec, errors="replace", newline="") as fh:
        for blank, line in enumerate(fh):
            if line.strip():
                return line.split(), blank
    return [], 0


def _read_whitespace(con: DuckDBBackend, path: str, settings: Settings, opts: dict[str, Any], codec: str) -> ir.Table:
    """A file whose fields are separated by runs of spaces or tabs (``00001 19970101 1 11.77``,
    the CDNOW log; leading and trailing blanks and CRLF line ends allowed), read as text.

    DuckDB's CSV reader takes one delimiter, no pattern: each line is read whole (no quoting) and
    split inside DuckDB with ``string_split_regex`` — one streaming pass, no Python per row, and
    values stay text (``00001`` stays ``"00001"``). The column names are the header's fields
    (``source.csv.header = true``) or ``column0``, ``column1`` … A line with another number of
    fields is an error naming the count and the first such line.
    """
    c = settings.source.csv
    first, blank = _header_fields(path, codec)
    names = first if c.header else [f"column{i}" for i in range(len(first))]
    if not names:
        raise DataError(f"no payments in {settings.source.name or path}: the file has no non-empty line")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"the header line of {path} names the column(s) {twice} more than once")
    # the header is the first non-empty line: blank lines before it are skipped with it
    skip = {"skip": blank} if c.header and blank else {}
    lines = con.read_csv(path, columns={"line": "VARCHAR"}, delim=_LINE_DELIM, quote="", escape="",
                         header=c.header, auto_detect=False, **skip, **opts)
    name = f"_ws_lines_{id(lines)}"
    con.create_view(name, lines, overwrite=True)
    split = (f"SELECT string_split_regex(regexp_replace(line, '^[ \\t\\r]+|[ \\t\\r]+$', '', 'g'), "
             f"'[ \\t]+') AS f FROM {name} WHERE trim(line, ' \t\r') <> ''")
    bad = con.raw_sql(f"SELECT count(*) AS n, min(array_to_string(f, ' ')) AS example FROM ({split}) "
                      f"WHERE len(f) <> {len(names)}").fetchall()
    n_bad = int(bad[0][0] or 0)
    if n_bad:
        raise DataError(
            f"{path}: {n_bad:,} line(s) have another number of fields than the {len(names)} of the "
            f"{'header' if c.header else 'first line'} {names} (source.csv.delimiter = \"whitespace\": "
            f"fields are separated by runs of spaces or tabs), e.g. {bad[0][1]!r}"
        )
    cols = ", ".join(f"f[{i + 1}] AS \"{n.replace(chr(34), chr(34) * 2)}\"" for i, n in enumerate(names))
    _consume(con.raw_sql(f"CREATE OR REPLACE TEMP VIEW _rr_whitespace AS SELECT {cols} FROM ({split})"))
    return con.table("_rr_whitespace")


def _transcoded(con: DuckDBBackend, path: str, codec: str, settings: Settings) -> str:
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


def _decoder(codec: str) -> codecs.IncrementalDecoder:
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
    reason = duckdb_reason(exc)
    if single and not hint:
        fields = _field_count_problem(path, settings)
        if fields and "Expected Number of Columns" not in reason:
            reason += f"; {fields}"
    return f"cannot read csv source {path}: {reason}" + (f". {hint}" if hint else "")


def duckdb_reason(exc: BaseException, width: int = 200) -> str:
    """DuckDB's reason for a failed read on one line: the lines of its message before the list of
    "Possible fixes" and the sniffer's search space (``CSV Error on Line: 25001; Original Line:
    x,2024-01-10,5,7; Expected Number of Columns: 3 Found: 4``), each cut to ``width`` characters."""
    kept: list[str] = []
    for line in str(exc).splitlines():
        line = line.strip()
        if line.startswith(("Possible fixes", "The search space used was")):
            break
        if line:
            kept.append(line if len(line) <= width else line[: width - 1] + "…")
    return "; ".join(k.rstrip(".") for k in kept) or type(exc).__name__


def _field_count_problem(path: str, settings: Settings, limit: int = 64 << 20) -> str:
    """"line 3 has 4 fields, the header line has 3" for the first record (in the first ``limit``
    bytes) whose number of fields differs from the first line's; '' when none does or the file
    cannot be read as text."""
    import csv
    import io

    c = settings.source.csv
    try:
        with open(path, encoding=c.encoding, errors="replace", newline="") as fh:
            reader = csv.reader(io.StringIO(fh.read(limit)), delimiter=c.delimiter)
            first = next(reader, None)
            if first is None:
                return ""
            start = reader.line_num
            for row in reader:
                if row and len(row) != len(first):
                    return (f"line {reader.line_num} has {len(row)} fields, line {start} has {len(first)} "
                            f"(delimiter {c.delimiter!r})")
    except (OSError, LookupError, csv.Error, ValueError):
        return ""
    return ""


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
    if c.delimiter == WHITESPACE:
        return ""
    fields = header.strip().split()
    if c.delimiter not in header and len(fields) > 1 and not any(d in header for d in _DELIMITERS if d != " "):
        return ("The header line looks whitespace-separated: set source.csv.delimiter = \"whitespace\" "
                f"(it is {c.delimiter!r})")
    if c.delimiter in header:
        return ""
    found = [(header.count(d), d) for d in _DELIMITERS if d != c.delimiter and d in header]
    if not found:
        return ""
    best = max(found)[1]
    key = "\\t" if best == "\t" else best
    return (f"The header line looks {_DELIMITERS[best]}-separated: set source.csv.delimiter = "
            f"\"{key}\" (it is {c.delimiter!r})")


def spark_session(settings: Settings) -> SparkSession:
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


def _table_or_query(con: BaseBackend, settings: Settings) -> ir.Table:
    """``source.query``, else ``source.table`` — ``name``, ``schema.name`` or ``catalog.schema.name``."""
    from ibis.common.exceptions import TableNotFound

    src = settings.source
    try:
        if src.query:
            if getattr(con, "name", "") == "duckdb":
                return _duckdb_query(con, src.query)
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
