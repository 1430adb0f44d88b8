"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks (initdb + pg_ctl).

A test helper, not part of the package (it runs useradd and runuser): tests import it as
``pgtemp`` (pytest puts tests/ on sys.path), benchmarks/bench_metrics.py adds tests/ to it.

``initdb`` refuses to run as root, so as root the cluster is owned by the ``postgres`` system user
(created by Debian's ``postgresql`` package; a system user ``rr-postgres`` is created when there is
none) and lives in a world-readable temporary folder, run via ``runuser``.

Why not pytest-postgresql (it was declared and never used, so it is no longer a dependency): its
``postgresql_proc`` runs ``pg_ctl`` as the current user, which fails as root (this machine, CI
containers), and it is a pytest fixture while benchmarks/bench_metrics.py needs the same cluster
outside pytest; this file is the ~150 lines of both.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TempPostgres", "find_pg_bin", "load_parquet", "temporary_postgres"]


@dataclass(frozen=True)
class TempPostgres:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    datadir: str = ""

    def server_pid(self) -> int | None:
        """The postmaster's process id (its backends are its children), for memory measurements."""
        try:
            return int((Path(self.datadir) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def url(self) -> str:
        """Connection URL without the password (pass it through ``source.password_env``)."""
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def connect(self, dbname: str | None = None, **kw):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=dbname or self.dbname, **kw)


def find_pg_bin() -> Path | None:
    """The folder with ``initdb``/``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    def version(path: str) -> tuple[int, ...]:  # numeric: 15 is newer than 9.6
        name = Path(path).parent.parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged_user() -> str:
    """As root: the ``postgres`` system user, else a system user ``rr-postgres`` created for it."""
    import pwd

    for name in ("postgres", "rr-postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "rr-postgres"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("initdb refuses to run as root and there is no 'postgres' user; "
                           f"useradd rr-postgres failed: {r.stderr.strip()}")
    return "rr-postgres"


@contextmanager
def temporary_postgres(password: str = "rr-temp-password", dbname: str = "shop",
                       settings: tuple[str, ...] = ("fsync=off", "full_page_writes=off")) -> Iterator[TempPostgres]:
    """Start a cluster with password (SCRAM) authentication on TCP, yield it, stop and delete it."""
    bindir = find_pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="rr-pg-"))
    data, sock, pwfile = base / "data", base / "sock", base / "pw"
    sock.mkdir()
    pwfile.write_text(password + "\n")
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = _unprivileged_user()
        for p in (base, sock, pwfile):
            shutil.chown(p, owner)
        os.chmod(base, 0o755)
        prefix = ["runuser", "-u", owner, "--"]
    port = _free_port()
    opts = " ".join([f"-p {port}", f"-k {sock}", "-c listen_addresses=127.0.0.1", *(f"-c {s}" for s in settings)])

    def run(*cmd: str) -> None:
        r = subprocess.run([*prefix, *cmd], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {r.stderr.strip() or r.stdout.strip()}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "rr", "--auth-host=scram-sha-256", "--auth-local=trust",
            f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o", opts, "start")
        pg = TempPostgres("127.0.0.1", port, "rr", password, dbname, str(data))
        with pg.connect("postgres", autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{dbname}"')
        yield pg
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


PAYMENTS_DDL = """CREATE TABLE {table} (customer_id text, paid_at timestamp, amount double precision,
    order_id text, cost double precision, channel text, country text, platform text)"""


def load_parquet(pg: TempPostgres, parquet: str | Path, table: str = "payments") -> int:
    """Load the sample/benchmark Parquet (file or folder) into ``table`` with COPY; returns rows."""
    import duckdb

    src = Path(parquet)
    pattern = str(src / "**" / "*.parquet") if src.is_dir() else str(src)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "payments.csv"
        duckdb.sql(f"""COPY (SELECT customer_id, strftime(paid_at, '%Y-%m-%d %H:%M:%S.%f') AS paid_at, amount,
                             order_id, cost, channel, country, platform FROM read_parquet('{pattern}'))
                       TO '{csv}' (HEADER, DELIMITER ',')""")
        with pg.connect() as con:
            con.execute(PAYMENTS_DDL.format(table=table))
            with con.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as cp, csv.open("rb") as f:
                while block := f.read(1 << 20):
                    cp.write(block)
            con.execute(f"ANALYZE {table}")
            (n,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(n)
