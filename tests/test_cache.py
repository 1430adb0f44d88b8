"""Warm runs (issue 13): a file source's validated, derived tables are kept in a DuckDB file and
reused while the source is unchanged — never for a changed file, other settings or a database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from helpers import NOW

import retention_report.data.dataset as dataset
from retention_report.config import load_settings
from retention_report.data import open_dataset
from retention_report.metrics import kpis_of, period_kpis
from retention_report.periods import parse_period

Q1 = parse_period("2024-Q1")
ROWS = ("customer_id,paid_at,amount,order_id\n"
        "a,2024-01-05 10:00,10,o1\na,2024-01-05 12:00,5,o1\nb,2024-02-06 11:00,30,o2\n"
        "b,2024-03-01 09:00,-5,o2\nc,2023-12-01 09:00,7,o0\n")


@pytest.fixture()
def settings(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(ROWS)
    return load_settings(None, **{"source.path": str(p), "columns.order_id": "order_id",
                                  "engine.cache_dir": str(tmp_path / "cache")})


@pytest.fixture()
def validations(monkeypatch):
    """Counts the validation passes (a warm load runs none)."""
    calls = []
    real = dataset.validate
    monkeypatch.setattr(dataset, "validate", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    return calls


def test_a_second_load_reuses_the_derived_tables_and_gives_the_same_numbers(settings, validations):
    cold = open_dataset(settings, now=NOW)
    assert cold.quality.cached_at is None and len(validations) == 1
    warm = open_dataset(settings, now=NOW)
    assert len(validations) == 1  # no second validation pass
    assert warm.quality.cached_at is not None
    assert warm.quality.to_dict()["derived_tables_cached_at"] == warm.quality.cached_at
    assert {k: v for k, v in warm.quality.to_dict().items() if k != "derived_tables_cached_at"} == cold.quality.to_dict()
    # every KPI, including AOV per order (read from the source's payments again)
    assert period_kpis(warm, Q1) == period_kpis(cold, Q1)
    assert period_kpis(warm, Q1)["aov"] == pytest.approx((10 + 5 + 30) / 2)


def test_a_changed_file_is_never_served_from_the_cache(settings, validations):
    path = settings.source.path
    open_dataset(settings, now=NOW)
    before = os.stat(path)
    # rewritten within the same second, with the same modification time, but another size
    with open(path, "a") as fh:
        fh.write("d,2024-03-02 09:00,100,o3\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    ds = open_dataset(settings, now=NOW)
    assert len(validations) == 2 and ds.quality.cached_at is None
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10 + 5 + 30 + 100)
    # same size, another modification time: also a new load
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    open_dataset(settings, now=NOW)
    assert len(validations) == 3


def test_other_settings_and_the_drop_mode_have_their_own_entry(settings, validations, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(ROWS + "x,never,3,o9\n")
    s = settings.with_overrides(**{"source.path": str(bad), "validation.on_invalid": "drop"})
    cold = open_dataset(s, now=NOW)
    warm = open_dataset(s, now=NOW)
    assert len(validations) == 1 and warm.quality.rows_dropped == {"unparsable_paid_at": 1}
    # the payments of a warm load leave out the rows the cached validation dropped
    assert kpis_of(warm, [Q1]) == kpis_of(cold, [Q1])
    assert int(warm.payments.count().execute()) == int(cold.payments.count().execute()) == 5
    open_dataset(s.with_overrides(**{"timezone": "Europe/Berlin"}), now=NOW)
    assert len(validations) == 2  # another time zone: other days, another entry


def test_cache_off_a_dataframe_or_a_database_writes_nothing(settings, tmp_path):
    off = settings.with_overrides(**{"engine.cache": False})
    open_dataset(off, now=NOW)
    open_dataset(off, now=NOW)
    assert not (tmp_path / "cache").exists()
    import sqlite3

    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as c:
        pd.read_csv(settings.source.path).to_sql("payments", c, index=False)
    open_dataset(settings.with_overrides(**{"source.path": str(db)}), now=NOW)
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_cache_clear_command(settings, tmp_path):
    open_dataset(settings, now=NOW)
    assert list((tmp_path / "cache").glob("*.duckdb"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\ncache_dir = "{tmp_path / "cache"}"\n')
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "cache", "clear", "--config", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "removed 1 cached table file(s)" in r.stdout
    assert not list((tmp_path / "cache").glob("*.duckdb"))


# ------------------------------------------------------------ issue 21: ownership and robustness


def _clear(tmp_path, cache_dir, cwd=None, env_dir=None):
    env = dict(os.environ)
    cfg = tmp_path / "clear.toml"
    if env_dir is not None:
        env["RETENTION_REPORT_CACHE_DIR"] = env_dir
        cfg.write_text("")
    else:
        cfg.write_text(f"[engine]\ncache_dir = {str(cache_dir)!r}\n")
    return subprocess.run([sys.executable, "-m", "retention_report.cli", "cache", "clear", "--config", str(cfg)],
                          capture_output=True, text=True, cwd=cwd or tmp_path, env=env)


def _refused(r, folder_text):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and folder_text in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_cache_clear_never_removes_a_folder_it_did_not_create(tmp_path):
    """The issue's reproducer: cache_dir = "data" (the payments and the user's notes in it)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "payments.csv").write_text(ROWS)
    (data / "notes.txt").write_text("mine")
    s = load_settings(None, **{"source.path": str(data / "payments.csv"), "engine.cache_dir": str(data)})
    open_dataset(s, now=NOW)  # a run with this cache_dir: the folder is not made a cache
    r = _clear(tmp_path, "data")
    _refused(r, "data")
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt", "payments.csv"]
    assert (data / "payments.csv").read_text() == ROWS and (data / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_cache_clear_refuses_the_working_directory_and_home(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.toml").write_text("")
    (work / "thesis.txt").write_text("four years")
    r = _clear(tmp_path, None, cwd=work, env_dir=".")
    _refused(r, "it is the working directory")
    assert sorted(p.name for p in work.iterdir()) == ["config.toml", "thesis.txt"]
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine")
    env = dict(os.environ, HOME=str(home), RETENTION_REPORT_CACHE_DIR="~")
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "cache", "clear"], capture_output=True,
                       text=True, cwd=work, env=env)
    _refused(r, str(home))
    assert (home / ".bashrc").read_text() == "# mine"


@pytest.mark.slow
def test_cache_clear_removes_only_its_cache_files_and_keeps_a_users_duckdb(settings, tmp_path):
    import duckdb

    cache = tmp_path / "cache"
    open_dataset(settings, now=NOW)
    assert (cache / ".retention-report-cache").is_file()
    [written] = [p for p in cache.glob("*.duckdb")]
    # a DuckDB database of the user's, even named like a cache file, is not one
    mine = cache / ("ab" * 16 + ".duckdb")
    duckdb.connect(str(mine)).execute("CREATE TABLE sales AS SELECT 1 AS x").close()
    r = _clear(tmp_path, cache)
    _refused(r, str(cache))
    assert written.is_file() and mine.is_file()
    mine.unlink()
    r = _clear(tmp_path, cache)
    assert r.returncode == 0 and "removed 1 cached table file(s)" in r.stdout, r.stderr
    assert not cache.exists()  # made by the tool and left empty: removed
    assert _clear(tmp_path, cache).returncode == 0  # nothing there: nothing to do


@pytest.mark.slow
def test_pruning_touches_only_proven_cache_files(tmp_path, monkeypatch):
    """The issue's reproducer: a plain metrics run deleted 5 of a user's 20 DuckDB databases."""
    import duckdb

    from retention_report.data import cache

    folder = tmp_path / "dbs"
    folder.mkdir()
    for i in range(20):  # the user's databases, some named like cache files
        name = f"{i:032x}.duckdb" if i % 2 else f"shop{i}.duckdb"
        duckdb.connect(str(folder / name)).execute(f"CREATE TABLE t AS SELECT {i} AS x").close()
    (folder / ".retention-report-cache").write_text('{"tool": "retention-report", "what": "cache"}')
    monkeypatch.setattr(cache, "KEEP", 2)
    for n in range(4):  # four sources: four cache files, the oldest two pruned
        p = tmp_path / f"p{n}.csv"
        p.write_text(ROWS)
        open_dataset(load_settings(None, **{"source.path": str(p), "engine.cache_dir": str(folder)}), now=NOW)
    ours = [p for p in folder.glob("*.duckdb") if cache.is_cache_file(p)]
    assert len(ours) == 2
    theirs = sorted(p.name for p in folder.glob("*.duckdb") if p not in ours)
    assert len(theirs) == 20
    for i in range(20):
        name = f"{i:032x}.duckdb" if i % 2 else f"shop{i}.duckdb"
        assert duckdb.connect(str(folder / name), read_only=True).execute("SELECT x FROM t").fetchone() == (i,)


def test_a_foreign_folder_is_not_written_to(tmp_path, capfd):
    data = tmp_path / "data"
    data.mkdir()
    (data / "p.csv").write_text(ROWS)
    s = load_settings(None, **{"source.path": str(data / "p.csv"), "engine.cache_dir": str(data)})
    ds = open_dataset(s, now=NOW)
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10 + 5 + 30)
    assert sorted(p.name for p in data.iterdir()) == ["p.csv"]
    err = capfd.readouterr().err
    assert err.count("warning:") == 1 and str(data) in err


@pytest.mark.slow
@pytest.mark.parametrize("restore", ["touch -r", "cp -p"])
def test_a_same_size_edit_with_the_old_mtime_is_not_served_stale(settings, validations, tmp_path, restore):
    """The issue's reproducer: 30 -> 110 in one amount, same size, the old modification time back."""
    path = settings.source.path
    ds = open_dataset(settings, now=NOW)
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10 + 5 + 30)
    ref = tmp_path / "ref"
    shutil.copy2(path, ref)
    edited = ROWS.replace("b,2024-02-06 11:00,30,", "b,2024-02-06 11:00,110,").replace("o0\n", "o\n")
    assert len(edited) == len(ROWS)
    if restore == "touch -r":
        with open(path, "w") as fh:
            fh.write(edited)
        subprocess.run(["touch", "-r", str(ref), path], check=True)
    else:
        other = tmp_path / "export.csv"
        other.write_text(edited)
        os.utime(other, ns=(os.stat(ref).st_atime_ns, os.stat(ref).st_mtime_ns))
        subprocess.run(["cp", "-p", str(other), path], check=True)
    assert os.stat(path).st_mtime_ns == os.stat(ref).st_mtime_ns and os.stat(path).st_size == os.stat(ref).st_size
    ds = open_dataset(settings, now=NOW)
    assert ds.quality.cached_at is None and len(validations) == 2
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10 + 5 + 110)
    warm = open_dataset(settings, now=NOW)  # unchanged since: warm again, without hashing again
    assert warm.quality.cached_at is not None and len(validations) == 2


def test_the_digest_is_reused_while_the_file_is_unchanged(settings, monkeypatch):
    from retention_report.data import cache

    calls = []
    real = cache._digest
    monkeypatch.setattr(cache, "_digest", lambda p: (calls.append(p), real(p))[1])
    k1 = cache.cache_key(settings)
    k2 = cache.cache_key(settings)
    assert k1 == k2 and len(calls) == 1
    os.utime(settings.source.path, ns=(os.stat(settings.source.path).st_atime_ns,
                                       os.stat(settings.source.path).st_mtime_ns))  # status change: hashed again
    assert cache.cache_key(settings) == k1 and len(calls) == 2


def _damage(path, start):
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        for offset in range(start, size, 8192):  # every other block from ``start``
            fh.seek(offset)
            fh.write(os.urandom(512))


@pytest.mark.parametrize("start", [3 * 4096, 4096, 0], ids=["data blocks", "database header", "file header"])
def test_a_damaged_cache_file_is_ignored_with_one_warning(settings, validations, tmp_path, capfd, start):
    cold = open_dataset(settings, now=NOW)
    expected = period_kpis(cold, Q1)
    [path] = list((tmp_path / "cache").glob("*.duckdb"))
    _damage(path, start)
    capfd.readouterr()
    for _ in range(2):  # and the next run too: the damaged file was replaced by a good one
        ds = open_dataset(settings, now=NOW)
        assert period_kpis(ds, Q1) == expected
    err = capfd.readouterr().err
    assert err.count("warning:") == 1 and "Traceback" not in err
    assert "p.csv" not in err  # the source is not blamed
    assert open_dataset(settings, now=NOW).quality.cached_at is not None


def test_a_cache_folder_removed_mid_run_or_a_dangling_link_never_fails_the_load(settings, tmp_path, monkeypatch,
                                                                                 capfd):
    from retention_report.data import cache

    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "0123.duckdb").symlink_to(tmp_path / "gone.duckdb")  # a dangling link
    (folder / ("cd" * 16 + ".duckdb")).symlink_to(tmp_path / "gone2.duckdb")
    ds = open_dataset(settings, now=NOW)
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(45)
    assert (folder / "0123.duckdb").is_symlink()
    shutil.rmtree(folder)
    real = cache._exec

    def removing(con, sql):  # the folder disappears while the new cache file is written
        real(con, sql)
        if sql.startswith("DETACH rr_new"):
            shutil.rmtree(folder, ignore_errors=True)

    monkeypatch.setattr(cache, "_exec", removing)
    capfd.readouterr()
    ds = open_dataset(settings.with_overrides(**{"timezone": "Europe/Berlin"}), now=NOW)
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(45)
    err = capfd.readouterr().err
    assert err.count("warning:") == 1 and "p.csv" not in err, err


def test_duckdb_file_sources_are_not_cached(tmp_path):
    import duckdb

    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE payments AS SELECT 'a' AS customer_id, TIMESTAMP '2024-01-05 10:00' AS paid_at, "
                "10.0 AS amount")
    con.close()
    s = load_settings(None, **{"source.path": str(db), "source.table": "payments",
                               "engine.cache_dir": str(tmp_path / "cache")})
    from retention_report.data import cache

    assert cache.cache_key(s) is None
    open_dataset(s, now=NOW)
    assert not (tmp_path / "cache").exists()


def test_a_cache_file_without_usable_tables_is_replaced(settings, tmp_path, capfd):
    import duckdb

    expected = period_kpis(open_dataset(settings, now=NOW), Q1)
    [path] = list((tmp_path / "cache").glob("*.duckdb"))
    path.unlink()
    con = duckdb.connect(str(path))  # names the tool, but holds no derived tables
    con.execute("CREATE TABLE rr_cache_ident AS SELECT 'retention-report' AS tool, 'derived-tables' AS kind, "
                "2 AS format")
    con.execute("CREATE TABLE meta AS SELECT '{\"quality\": {}}' AS meta")
    con.close()
    capfd.readouterr()
    assert period_kpis(open_dataset(settings, now=NOW), Q1) == expected
    err = capfd.readouterr().err
    assert err.count("warning:") == 1 and "Traceback" not in err
    assert open_dataset(settings, now=NOW).quality.cached_at is not None


def test_the_sample_folder_inside_the_cache_folder_is_left_alone(tmp_path, monkeypatch):
    """Installed and run in the home folder, ~/.cache/retention-report holds the sample and the cache."""
    from retention_report import paths
    from retention_report.data import cache

    folder = tmp_path / ".cache" / "retention-report"
    sample = folder / "sample" / "payments.parquet"
    sample.parent.mkdir(parents=True)
    sample.write_bytes(b"PAR1")
    monkeypatch.setattr(paths, "SAMPLE_PATH", sample)
    p = tmp_path / "p.csv"
    p.write_text(ROWS)
    s = load_settings(None, **{"source.path": str(p), "engine.cache_dir": str(folder)})
    open_dataset(s, now=NOW)
    assert len([f for f in folder.glob("*.duckdb") if cache.is_cache_file(f)]) == 1
    assert cache.clear(s) == 1
    assert sample.read_bytes() == b"PAR1" and not list(folder.glob("*.duckdb"))


def test_a_cache_file_is_read_in_full_only_when_written_to_since(settings, tmp_path, monkeypatch):
    from retention_report.data import cache

    calls = []
    real = cache._verify
    monkeypatch.setattr(cache, "_verify", lambda con: (calls.append(1), real(con))[1])
    open_dataset(settings, now=NOW)
    open_dataset(settings, now=NOW)
    assert calls == []  # written by the tool, untouched since: not read in full
    [path] = list((tmp_path / "cache").glob("*.duckdb"))
    with open(path, "r+b") as fh:  # written to (the same bytes): checked once, then trusted again
        head = fh.read(16)
        fh.seek(0)
        fh.write(head)
    assert open_dataset(settings, now=NOW).quality.cached_at is not None
    open_dataset(settings, now=NOW)
    assert calls == [1]


def test_another_source_query_is_another_cache_entry(settings, validations):
    """source.query shapes the payments (issue 22: SQL over a file): a changed query never reuses
    the derived tables of another one."""
    everything = settings.with_overrides(**{"source.query": "select * from payments"})
    positive = settings.with_overrides(**{"source.query": "select * from payments where amount::double > 0"})
    open_dataset(everything, now=NOW)
    assert period_kpis(open_dataset(everything, now=NOW), Q1)["refunds"] == pytest.approx(5.0)
    assert len(validations) == 1  # the same query: warm
    warm = open_dataset(positive, now=NOW)
    assert len(validations) == 2 and warm.quality.cached_at is None
    assert period_kpis(warm, Q1)["refunds"] == 0.0
    guests = settings.with_overrides(**{"validation.empty_customer_id": "guest"})
    open_dataset(guests, now=NOW)
    assert len(validations) == 3  # validation settings are in the key too
