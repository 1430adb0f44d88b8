"""Warm runs: the validated, derived tables of a file source kept between runs (issue 13).

A load validates the whole source and builds the customer-day table, the customers table and the
day summary — most of a cold ``metrics`` run. They are kept in a DuckDB file under
``[engine] cache_dir`` (default ``.cache/retention-report/``), named by a key over everything they
depend on: each source file's absolute path, size and modification time (nanoseconds), the source,
column, time-zone and validation settings, and the package version. A changed file — another size
or another modification time, even within the same second — gives another key: it is never served
from the cache. The next load of the same source attaches the file read-only and skips validation
and the derived tables; the payments themselves are still read from the source, lazily, by the few
metrics that need payment rows (orders, first-purchase segments).

Only sources read through DuckDB from files are cached (CSV, Parquet, Excel, DuckDB files, the
sample): a database or remote source cannot be fingerprinted cheaply (``[engine] cache = false``
turns caching off for files too). A validation that dropped rows dated in the future is reused only
on the day it ran (tomorrow some of them may no longer be in the future).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis.expr.types as ir

from ..config import Settings
from .sources import source_kind

__all__ = ["CACHED_KINDS", "CacheEntry", "cache_dir", "cache_key", "lookup", "store", "clear"]

CACHE_FORMAT = 1
CACHED_KINDS = ("csv", "parquet", "excel", "duckdb", "sample")
KEEP = 16  # cache files kept per folder (the oldest beyond are removed when one is written)
_ALIAS = "rr_cache"


def _exec(con: Any, sql: str) -> None:
    """A statement through Ibis's DuckDB connection, its (empty) result consumed: DuckDB refuses
    further work on a connection with an unfinished result."""
    result = con.raw_sql(sql)
    try:
        result.fetchall()
    except Exception:  # statements without a result set
        pass


def cache_dir(settings: Settings) -> Path:
    return Path(settings.engine.cache_dir).expanduser()


def _files(settings: Settings) -> list[Path] | None:
    kind = source_kind(settings)
    if kind not in CACHED_KINDS or not settings.engine.cache:
        return None
    if kind == "sample":
        from ..sample import DEFAULT_SAMPLE_PATH

        return [Path(DEFAULT_SAMPLE_PATH)]
    path = settings.source.path
    if any(ch in path for ch in "*?["):
        found = [Path(p) for p in glob.glob(path, recursive=True)]
    elif Path(path).is_dir():
        found = [p for p in Path(path).rglob("*") if p.is_file()]
    else:
        found = [Path(path)]
    return sorted(found) if found else None


def cache_key(settings: Settings) -> str | None:
    """The key of the source's derived tables, or None when the source is not cached."""
    from .. import __version__

    files = _files(settings)
    if not files:
        return None
    ident = []
    for f in files:
        st = f.stat()
        ident.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    payload = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "files": ident,
        "source": settings.source.model_dump(exclude={"name"}),
        "columns": settings.columns.model_dump(),
        "timezone": settings.timezone,
        "validation": settings.validation.model_dump(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheEntry:
    """What a load takes from the cache: the derived tables (in the load's connection), the small
    day summary, and what validation found (``meta``: quality, the ``now`` it validated with)."""

    daily: ir.Table
    customers: ir.Table
    days: Any
    meta: dict[str, Any]


def lookup(con: Any, settings: Settings, key: str | None, today: str) -> CacheEntry | None:
    """The cached tables of ``key`` attached to ``con`` (a DuckDB connection), or None."""
    if key is None:
        return None
    path = cache_dir(settings) / f"{key}.duckdb"
    if not path.is_file():
        return None
    try:
        _exec(con, f"ATTACH '{path}' AS {_ALIAS} (READ_ONLY)")
        meta = json.loads(con.table("meta", database=(_ALIAS, "main")).execute().iloc[0, 0])
        if meta.get("future_dropped") and meta.get("validated_on") != today:
            _exec(con, f"DETACH {_ALIAS}")
            return None
        daily = con.table("daily", database=(_ALIAS, "main"))
        customers = con.table("customers", database=(_ALIAS, "main"))
        days = con.table("days", database=(_ALIAS, "main")).execute()
    except Exception:  # an unreadable or foreign file: a cold load (and a new file) instead
        return None
    return CacheEntry(daily, customers, days, meta)


def store(con: Any, settings: Settings, key: str | None, daily: ir.Table, customers: ir.Table, days: Any,
          meta: dict[str, Any]) -> Path | None:
    """Write the derived tables of ``key`` (atomically: a temporary file renamed into place, so a
    concurrent run reads the old file or the new one); None when not cached or not writable."""
    if key is None:
        return None
    folder = cache_dir(settings)
    tmp: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{key}.", suffix=".duckdb", dir=folder)
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()  # DuckDB creates the file itself
        alias = f"rr_new_{os.getpid()}"
        _exec(con, f"ATTACH '{tmp}' AS {alias}")
        try:
            con.create_table("daily", daily, database=(alias, "main"))
            con.create_table("customers", customers, database=(alias, "main"))
            con.create_table("days", days, database=(alias, "main"))
            text = json.dumps(meta, default=str).replace("'", "''")
            _exec(con, f"CREATE TABLE {alias}.main.meta AS SELECT '{text}'::VARCHAR AS meta")
        finally:
            _exec(con, f"DETACH {alias}")
    except Exception:  # a read-only or full disk must not fail the report: no cache then
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return None
    final = folder / f"{key}.duckdb"
    os.replace(tmp, final)
    _prune(folder)
    return final


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)


def clear(settings: Settings) -> int:
    """Remove the cache folder's files; returns how many there were."""
    folder = cache_dir(settings)
    if not folder.is_dir():
        return 0
    n = len(list(folder.glob("*.duckdb")))
    shutil.rmtree(folder, ignore_errors=True)
    return n
