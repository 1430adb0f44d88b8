"""Warm runs (issue 13): a file source's validated, derived tables are kept in a DuckDB file and
reused while the source is unchanged — never for a changed file, other settings or a database."""

from __future__ import annotations

import os
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


def test_cache_clear_command(settings, tmp_path):
    open_dataset(settings, now=NOW)
    assert list((tmp_path / "cache").glob("*.duckdb"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\ncache_dir = "{tmp_path / "cache"}"\n')
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "cache", "clear", "--config", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "removed 1 cached table file(s)" in r.stdout
    assert not list((tmp_path / "cache").glob("*.duckdb"))


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
