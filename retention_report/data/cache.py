"""Warm runs: the validated, derived tables of a file source kept between runs (issue 13).

A load validates the whole source and builds the customer-day table, the customers table and the
day summary — most of a cold ``metrics`` run. They are kept in a DuckDB file under
``[engine] cache_dir`` (default ``.cache/retention-report/``), named by a key over everything they
depend on: each source file's absolute path, size, modification time and **content** (a SHA-256 of
the whole file), the source, column, time-zone and validation settings, and the package version. A
file edited to the same size with its old modification time restored (``touch -r``, ``cp -p``,
``rsync -t``, an unzipped re-export) has another content, so another key: it is never served from
the cache. Hashing a file costs 1.5–8.5% of loading it cold (README, measured at 10M rows); the
digest is remembered (``digests.json`` in the cache folder) for as long as the file's identity —
device, inode, size, modification and status-change time — is unchanged, so a warm run does not
read the file again (any write, or restoring a modification time, changes the status-change time:
the file is hashed again). The next load of the same source attaches the file read-only and skips validation and the
derived tables; the payments themselves are still read from the source, lazily, by the few metrics
that need payment rows (orders, first-purchase segments).

Only sources read through DuckDB from files are cached (CSV, Parquet, Excel, the sample): a
database — a DuckDB or SQLite file included, already a database read in place — or a remote source
is not (``[engine] cache = false`` turns caching off for files too). A validation that dropped rows
dated in the future is reused only on the day it ran (tomorrow some of them may no longer be in the
future).

Ownership: the tool deletes only what it can prove it wrote. The cache folder holds the marker
:data:`MARKER` (written when the tool makes the folder, or adopts an empty one or one of its own
older cache files); a cache file is ``<32 hex digits>.duckdb`` **and** holds the table
``rr_cache_ident`` naming this tool and the cache format (older cache files: exactly the tables
``meta``, ``daily``, ``customers``, ``days``). Pruning to the newest :data:`KEEP` files and
``cache clear`` touch nothing else; ``cache clear`` refuses (:class:`CacheError`) a folder that is not
a cache — no marker, or files the tool did not write — and never removes a folder with anything left
in it. A folder that is not a cache is not written to either (one warning line, no caching).

Any cache problem — a damaged or foreign cache file, the folder removed or made read-only during the
run, a dangling link in it — is one warning line on stderr and a normal (cold) load: never a failed
report.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis.expr.types as ir

from ..config import Settings
from ..fsio import pid_alive, protected_folder, write_atomic
from .sources import source_kind

if TYPE_CHECKING:
    import pandas as pd
    from ibis.backends import BaseBackend
    from ibis.backends.duckdb import Backend as DuckDBBackend

__all__ = ["CACHED_KINDS", "CacheEntry", "CacheError", "cache_dir", "cache_key", "lookup", "store", "clear",
           "is_cache_file"]

CACHE_FORMAT = 2
CACHED_KINDS = ("csv", "parquet", "excel", "sample")
KEEP = 16  # cache files kept per folder (the oldest proven cache files beyond are removed when one is written)
MARKER = ".retention-report-cache"  # in the cache folder: the folder is a cache of this tool
DIGESTS = "digests.json"  # the content digests of source files, by file identity
IDENT = "rr_cache_ident"  # the table in every cache file naming the tool and the format
_KIND = "derived-tables"
_ALIAS = "rr_cache"
_NAME = re.compile(r"^[0-9a-f]{32}\.duckdb$")
# temporary files of a store: .<key>.<pid>.<random>.duckdb (and DuckDB's .wal beside one)
_TEMP = re.compile(r"^\.(?P<key>[0-9a-f]{32})\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.duckdb(\.wal)?$")
_DIGESTS_TEMP = re.compile(r"^\.(digests\.json|retention-report-cache)\.[A-Za-z0-9_]+$")
_LEGACY_TABLES = {"meta", "daily", "customers", "days"}


class CacheError(ValueError):
    """``cache clear`` refused: the folder is not a cache of this tool (exit code 2)."""


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _exec(con: DuckDBBackend, sql: str) -> None:
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


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read_digests(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / DIGESTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else {}


def _write_state(folder: Path, section: str, value: dict[str, Any]) -> None:
    """Replace one section (``files``: source digests, ``verified``: cache files read in full) of
    ``digests.json`` (atomically; a concurrent run's update may be lost: it is only recomputed)."""
    state = _read_digests(folder) or {"format": CACHE_FORMAT}
    state[section] = value
    write_atomic(folder / DIGESTS, json.dumps(state))


def _verified_identity(folder: Path, path: Path) -> object:
    rec = _read_digests(folder).get("verified")
    return rec.get(path.name) if isinstance(rec, dict) else None


def _record_verified(folder: Path, path: Path) -> None:
    """Record the identity of cache file ``path`` as known to be whole (written or read in full by
    this tool): until the file is written to again, a load need not read it in full."""
    if not _owned(folder):
        return
    state = _read_digests(folder).get("verified")
    verified = {k: v for k, v in (state if isinstance(state, dict) else {}).items() if (folder / k).is_file()}
    verified[path.name] = _identity(path.stat())
    _write_state(folder, "verified", verified)


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def content_digests(files: list[Path], folder: Path | None) -> list[str]:
    """The SHA-256 of each file's content; taken from ``folder``'s ``digests.json`` when the file's
    identity (device, inode, size, modification and status-change time) is the one recorded there,
    else computed (and recorded, when ``folder`` is a cache folder of this tool)."""
    known = _read_digests(folder) if folder is not None else {}
    files_known: dict[str, Any] = known.get("files", {}) if isinstance(known.get("files"), dict) else {}
    out, changed = [], False
    for f in files:
        name = str(f.resolve())
        ident = _identity(f.stat())
        rec = files_known.get(name)
        if isinstance(rec, dict) and rec.get("identity") == ident and isinstance(rec.get("sha256"), str):
            out.append(rec["sha256"])
            continue
        digest = _digest(f)
        if _identity(f.stat()) == ident:  # not written while it was read
            files_known[name] = {"identity": ident, "sha256": digest}
            changed = True
        out.append(digest)
    if changed and folder is not None and (_owned(folder) or not (folder.exists() or folder.is_symlink())):
        keep = dict(list(files_known.items())[-4096:])
        with contextlib.suppress(OSError):
            if _prepare(folder):  # a missing folder is made the cache folder (as a store would)
                _write_state(folder, "files", keep)
    return out


def cache_key(settings: Settings) -> str | None:
    """The key of the source's derived tables, or None when the source is not cached. A source file
    that cannot be read (missing, a dangling link) gives None: the load reports it, not the cache."""
    from .. import __version__

    files = _files(settings)
    if not files:
        return None
    try:
        digests = content_digests(files, cache_dir(settings))
        ident = []
        for f, digest in zip(files, digests, strict=True):
            st = f.stat()
            ident.append([str(f.resolve()), st.st_size, st.st_mtime_ns, digest])
    except OSError:
        return None
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


# ------------------------------------------------------------------------------------- ownership

def _marker_ok(folder: Path) -> bool:
    path = folder / MARKER
    try:
        if path.is_symlink() or not path.is_file():
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tool") == "retention-report" and data.get("what") == "cache"


def _owned(folder: Path) -> bool:
    """``folder`` is a cache folder of this tool: it holds the marker."""
    return folder.is_dir() and _marker_ok(folder)


def _adoptable(folder: Path) -> bool:
    """An existing folder the tool may make its cache: empty, or holding only proven cache files
    (a cache folder of an older version, which wrote no marker)."""
    try:
        entries = [e for e in folder.iterdir() if not _is_sample_folder(e)]
    except OSError:
        return False
    return all(_NAME.match(e.name) and is_cache_file(e) for e in entries)


def _is_sample_folder(entry: Path) -> bool:
    """The embedded sample's folder (installed: ``~/.cache/retention-report/sample/``, inside the
    default cache folder when the tool runs in the home folder): left alone, neither "other files"
    nor removed by ``cache clear``."""
    from ..paths import SAMPLE_PATH

    try:
        return entry.is_dir() and not entry.is_symlink() and entry.resolve() == SAMPLE_PATH.parent.resolve()
    except OSError:
        return False


def is_cache_file(path: Path) -> bool:
    """``path`` is a cache file this tool wrote: named ``<32 hex>.duckdb``, a regular file (not a
    link) starting like a DuckDB database, holding the table :data:`IDENT` that names this tool
    (files of format 1: exactly the tables meta, daily, customers and days). Opened read-only."""
    path = Path(path)
    if not _NAME.match(path.name) or path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head[8:12] != b"DUCK":
            return False
        import duckdb

        con = duckdb.connect()
        try:
            con.execute(f"ATTACH '{_sql_path(path)}' AS rr_probe (READ_ONLY)")
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'rr_probe'").fetchall()}
            if IDENT in tables:
                row = con.execute(f"SELECT tool, kind FROM rr_probe.main.{IDENT}").fetchone()
                return row is not None and tuple(row) == ("retention-report", _KIND)
            return tables == _LEGACY_TABLES
        finally:
            con.close()
    except Exception:  # unreadable, locked, not DuckDB: not provably ours
        return False


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _prepare(folder: Path) -> bool:
    """Make ``folder`` usable as the cache (create it with the marker, or mark an adoptable one);
    False — with a warning — when it is somebody else's folder."""
    if folder.is_dir() and _marker_ok(folder):
        return True
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir() or not _adoptable(folder):
            _warn(f"not caching the derived tables: {folder} ([engine] cache_dir) is not a cache folder of "
                  f"retention-report (no {MARKER} marker, other files in it); name a folder of its own")
            return False
    else:
        folder.mkdir(parents=True, exist_ok=True)
    from .. import __version__

    write_atomic(folder / MARKER, json.dumps({"tool": "retention-report", "what": "cache", "format": CACHE_FORMAT,
                                              "version": __version__}) + "\n")
    return True


@dataclass(frozen=True)
class CacheEntry:
    """What a load takes from the cache: the derived tables (in the load's connection), the small
    day summary, and what validation found (``meta``: quality, the ``now`` it validated with)."""

    daily: ir.Table
    customers: ir.Table
    days: pd.DataFrame
    meta: dict[str, Any]


def lookup(con: BaseBackend, settings: Settings, key: str | None, today: str) -> CacheEntry | None:
    """The cached tables of ``key`` attached to ``con`` (a DuckDB connection), or None — also, with
    one warning line, when the file is damaged or not a cache file of this tool (a cold load then
    writes a good one in its place)."""
    if key is None:
        return None
    path = cache_dir(settings) / f"{key}.duckdb"
    try:
        if path.is_symlink() or not path.is_file():
            return None
    except OSError:
        return None
    attached = False
    try:
        _exec(con, f"ATTACH '{_sql_path(path)}' AS {_ALIAS} (READ_ONLY)")
        attached = True
        ident = con.table(IDENT, database=(_ALIAS, "main")).execute()
        if ident.empty or ident.iloc[0]["tool"] != "retention-report" or int(ident.iloc[0]["format"]) != CACHE_FORMAT:
            raise ValueError("not a cache file of this format")
        meta = json.loads(con.table("meta", database=(_ALIAS, "main")).execute().iloc[0, 0])
        q = meta["quality"]  # what a warm load reads: a file without it is not a usable cache file
        _ = (q["rows_read"], q["rows_used"], dict(q["rows_dropped"]), q["first_payment"], q["last_payment"],
             datetime.fromisoformat(meta["now"]))
        if meta.get("future_dropped") and meta.get("validated_on") != today:
            _exec(con, f"DETACH {_ALIAS}")
            return None
        daily = con.table("daily", database=(_ALIAS, "main"))
        customers = con.table("customers", database=(_ALIAS, "main"))
        days = con.table("days", database=(_ALIAS, "main")).execute()
        if _verified_identity(path.parent, path) != _identity(path.stat()):
            _verify(con)  # written to since the tool wrote or last checked it
            with contextlib.suppress(OSError):
                _record_verified(path.parent, path)
    except Exception as exc:  # damaged or foreign: a cold load (and a new file) instead
        if attached:
            with contextlib.suppress(Exception):
                _exec(con, f"DETACH {_ALIAS}")
        _warn(f"ignoring the unreadable cache file {path} ({_first_line(exc)}); reading the source again")
        return None
    return CacheEntry(daily, customers, days, meta)


def _verify(con: DuckDBBackend) -> None:
    """Read every block of the cached tables once: DuckDB checks a block's checksum when it reads
    it, so a damaged file fails here — before the load is built on it — and not in a metric. Done
    only when the file's identity (inode, size, modification and status-change time) is not the
    one recorded when the tool wrote or last read it in full: any write to the file changes it
    (at 10M payments the full read costs more than the rest of a warm load)."""
    for table in ("daily", "customers"):
        _exec(con, f"SELECT count(*), max(hash(t)) FROM {_ALIAS}.main.{table} AS t")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _fast_strings(con: BaseBackend) -> Callable[[], None]:
    """Keep DuckDB from compressing strings with DICT_FSST while a cache file is written; returns
    the function restoring the setting. The customer ids are nearly unique per block: DICT_FSST
    shrank them 2.4x but took 85% of the write (1.4 of 1.7 s for the daily table at 1M payments),
    dictionary and FSST alone do not shrink them, and the uncompressed column reads as fast
    (README "Performance"). A DuckDB without the setting or the method writes as before."""
    name = "disabled_compression_methods"
    try:
        before = con.raw_sql(f"SELECT current_setting('{name}')").fetchone()[0] or ""
        methods = [m for m in str(before).split(",") if m]
        if "dict_fsst" not in [m.strip().lower() for m in methods]:
            _exec(con, f"SET {name} = '{','.join([*methods, 'dict_fsst'])}'")
    except Exception:  # an older DuckDB: compress as it does
        return lambda: None

    def restore() -> None:
        _exec(con, f"SET {name} = '{before}'" if before else f"RESET {name}")

    return restore


def store(con: BaseBackend, settings: Settings, key: str | None, daily: ir.Table, customers: ir.Table,
          days: pd.DataFrame,
          meta: dict[str, Any]) -> Path | None:
    """Write the derived tables of ``key`` (atomically: a temporary file renamed into place, so a
    concurrent run reads the old file or the new one); None — with one warning line — when not
    cached: the folder is somebody else's, not writable, full, or disappeared during the run."""
    if key is None:
        return None
    from .. import __version__

    folder = cache_dir(settings)
    tmp: Path | None = None
    alias = f"rr_new_{os.getpid()}"
    attached = False
    restore: Any = lambda: None  # noqa: E731
    try:
        if not _prepare(folder):
            return None
        fd, name = tempfile.mkstemp(prefix=f".{key}.{os.getpid()}.", suffix=".duckdb", dir=folder)
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()  # DuckDB creates the file itself
        restore = _fast_strings(con)
        _exec(con, f"ATTACH '{_sql_path(tmp)}' AS {alias}")
        attached = True
        _exec(con, f"CREATE TABLE {alias}.main.{IDENT} AS SELECT 'retention-report' AS tool, '{_KIND}' AS kind, "
                   f"{CACHE_FORMAT} AS format, '{key}' AS key, '{__version__}' AS version")
        con.create_table("daily", daily, database=(alias, "main"))
        con.create_table("customers", customers, database=(alias, "main"))
        con.create_table("days", days, database=(alias, "main"))
        text = json.dumps(meta, default=str).replace("'", "''")
        _exec(con, f"CREATE TABLE {alias}.main.meta AS SELECT '{text}'::VARCHAR AS meta")
        _exec(con, f"DETACH {alias}")  # the tables are compressed and written here
        attached = False
        restore()
        final = folder / f"{key}.duckdb"
        # the file of this very key in the tool's own (marked) folder is its own, even damaged; a
        # link of that name is not replaced
        if final.is_symlink() or (final.exists() and not final.is_file()):
            raise OSError(f"{final.name} there is not a cache file of retention-report; left as it is")
        os.replace(tmp, final)
        tmp = None
        _record_verified(folder, final)
        _prune(folder, final)
        return final
    except Exception as exc:  # a cache problem must not fail the report: no cache then
        if attached:
            with contextlib.suppress(Exception):
                _exec(con, f"DETACH {alias}")
        with contextlib.suppress(Exception):
            restore()
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
                Path(f"{tmp}.wal").unlink(missing_ok=True)
        _warn(f"the derived tables were not cached in {folder}: {_first_line(exc)}")
        return None


def _dead_temp(entry: Path) -> bool:
    """A temporary file of a store whose process is gone (empty, or a DuckDB file)."""
    m = _TEMP.match(entry.name)
    if not m or entry.is_symlink() or not entry.is_file() or pid_alive(int(m["pid"])):
        return False
    try:
        with open(entry, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return entry.name.endswith(".wal") or not head or head[8:12] == b"DUCK"


def _prune(folder: Path, written: Path) -> None:
    """Keep the newest :data:`KEEP` cache files of ``folder`` (``written`` among them): only files
    proven to be this tool's cache files are counted and removed (:func:`is_cache_file`), and the
    temporary files of stores whose process is gone."""
    entries = [e for e in folder.iterdir() if e != written]
    for e in entries:
        if _dead_temp(e):
            e.unlink(missing_ok=True)
    proven = []
    for e in entries:
        if _NAME.match(e.name) and is_cache_file(e):
            with contextlib.suppress(OSError):  # removed meanwhile by a concurrent run
                proven.append((e.stat().st_mtime, e))
    proven.sort(reverse=True)
    for _, old in proven[KEEP - 1:]:
        old.unlink(missing_ok=True)


def clear(settings: Settings) -> int:
    """Remove the cache files of the cache folder, proven to be this tool's (:func:`is_cache_file`),
    with its marker and digests, and the folder itself when nothing else is left; returns how many
    cache files were removed. Raises :class:`CacheError`, removing nothing, when the folder is not a
    cache of this tool: the working directory, the home folder or one containing them, a folder
    without the marker, or one holding anything the tool did not write (named)."""
    folder = cache_dir(settings)
    if not folder.exists() and not folder.is_symlink():
        return 0
    refuse = f"refusing to clear {folder} ([engine] cache_dir): "
    fix = "; nothing was removed — point [engine] cache_dir (or RETENTION_REPORT_CACHE_DIR) at the cache's own folder"
    if not folder.is_dir():
        raise CacheError(refuse + "it is not a folder" + fix)
    reason = protected_folder(folder)
    if reason:
        raise CacheError(refuse + reason + ", not a cache folder of retention-report" + fix)
    entries = sorted(folder.iterdir())
    caches = [e for e in entries if is_cache_file(e)]
    dead = [e for e in entries if _dead_temp(e)]
    live = [e for e in entries if _TEMP.match(e.name) and e not in dead]  # a concurrent run's
    helpers = [e for e in entries if e.name == DIGESTS or _DIGESTS_TEMP.match(e.name)]
    marker = folder / MARKER
    others = [e for e in entries if e not in {*caches, *dead, *live, *helpers, marker} and not _is_sample_folder(e)]
    if others:
        names = ", ".join(e.name for e in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise CacheError(refuse + f"it holds files that are not cache files of retention-report ({names})" + fix)
    if not _marker_ok(folder) and not (caches or dead):
        if not entries:
            return 0  # an empty folder: nothing to clear (and not ours to remove)
        raise CacheError(refuse + f"it is not a cache folder of retention-report (no {MARKER} marker)" + fix)
    for e in [*caches, *dead, *helpers]:
        e.unlink(missing_ok=True)
    if not live:
        marker.unlink(missing_ok=True)
        if not folder.is_symlink():
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
    return len(caches)
