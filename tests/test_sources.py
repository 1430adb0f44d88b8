"""Real sources through the same Ibis code path: a PostgreSQL server started by the tests (marked
slow; table and SQL-query sources, password from an environment variable, a non-UTC report time
zone), Spark local mode (marked spark/slow) and unreachable sources with one-line errors."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import NOW, assert_same
from pgtemp import find_pg_bin, load_parquet, temporary_postgres

from retention_report.config import load_settings
from retention_report.data import DataError, open_dataset
from retention_report.document import metrics_document
from retention_report.periods import parse_period
from retention_report.sample import generate_payments

PG_PASSWORD = "pg-Secret-42"
PERIODS = ["2023-Q4", "2024-Q1", "2024-03", "2024-W05", "2024"]
COLUMNS = {"columns.order_id": "order_id", "columns.cost": "cost", "columns.segments": ["channel", "country"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def payments_frame() -> pd.DataFrame:
    return generate_payments(n_customers=20_000, seed=5).to_pandas()


@pytest.fixture(scope="module")
def postgres(parquet_path):
    """A throwaway PostgreSQL cluster (initdb + pg_ctl on 127.0.0.1) loaded with the sample data by
    COPY. Yields ``(url_without_password, port)``."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not found (scripts/ensure-system-deps.sh installs them)")
    with temporary_postgres(password=PG_PASSWORD) as pg:
        load_parquet(pg, parquet_path)
        yield pg.url, pg.port


@pytest.fixture(scope="module")
def parquet_path(tmp_path_factory, payments_frame) -> Path:
    path = tmp_path_factory.mktemp("pq") / "payments.parquet"
    payments_frame.to_parquet(path, index=False)
    return path


def _docs(settings, periods=PERIODS) -> dict[str, dict]:
    ds = open_dataset(settings, now=NOW)
    opts = settings.metrics
    out = {}
    for p in periods:
        doc = metrics_document(ds, parse_period(p), opts)
        for key in ("source", "generated_at"):
            doc.pop(key, None)
        out[p] = doc
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("retention-report")
    return subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_postgres_table_equals_parquet(postgres, parquet_path, monkeypatch, tz):
    url, _ = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    pg = load_settings(None, **{"source.url": url, "source.table": "payments", "source.password_env": "RR_TEST_PG_PASSWORD",
                                "timezone": tz, **COLUMNS})
    pq_ = load_settings(None, **{"source.path": str(parquet_path), "timezone": tz, **COLUMNS})
    a, b = _docs(pq_), _docs(pg)
    for p in PERIODS:
        assert a[p]["kpis"]["customers"] > 100
        assert_same(a[p], b[p], p)
        assert PG_PASSWORD not in str(b[p])


@pytest.mark.slow
def test_clv_fit_from_postgres_equals_parquet(postgres, parquet_path, monkeypatch):
    """Issue 17: the same data from DuckDB (Parquet) and PostgreSQL give the same compressed
    histories and so the same fits: parameters equal to 1e-6 (in fact to the last digit: money sums
    are rounded to 1e-6 before the engines' summation order could show)."""
    from retention_report.metrics import predictive

    url, _ = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    pg = load_settings(None, **{"source.url": url, "source.table": "payments", "source.password_env": "RR_TEST_PG_PASSWORD"})
    pq_ = load_settings(None, **{"source.path": str(parquet_path)})
    blocks = {}
    for name, settings in (("pq", pq_), ("pg", pg)):
        blocks[name] = predictive.clv_block(open_dataset(settings, now=NOW), parse_period("2024-Q1"), settings).block
    a, b = blocks["pq"], blocks["pg"]
    assert a is not None and a["customers"] > 1000 and a["backtest"] is not None
    for key in ("customers", "repeat_customers", "at_risk_customers", "calibration_end"):
        assert a[key] == b[key], key
    assert a["backtest"]["actual_purchases"] == b["backtest"]["actual_purchases"]
    for key, value in a["params"].items():
        assert abs(value - b["params"][key]) <= 1e-6 * abs(value), key
    for key in ("expected_purchases", "expected_revenue", "clv_mean"):
        assert abs(a[key] - b[key]) <= 1e-6 * abs(a[key]), key
    assert abs(a["backtest"]["predicted_purchases"] - b["backtest"]["predicted_purchases"]) <= 1e-6 * a["backtest"]["predicted_purchases"]


@pytest.mark.slow
def test_postgres_query_source(postgres, parquet_path, monkeypatch):
    url, _ = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    query = "SELECT customer_id, paid_at, amount, order_id, cost, channel, country FROM payments WHERE country <> 'AT'"
    pg = load_settings(None, **{"source.url": url, "source.query": query, "source.password_env": "RR_TEST_PG_PASSWORD",
                                **COLUMNS})
    frame = pd.read_parquet(parquet_path)
    sub = parquet_path.with_name("no_at.parquet")
    frame[frame.country != "AT"].drop(columns=["platform"]).to_parquet(sub, index=False)
    pq_ = load_settings(None, **{"source.path": str(sub), **COLUMNS})
    a, b = _docs(pq_, ["2024-Q1"]), _docs(pg, ["2024-Q1"])
    assert_same(a["2024-Q1"], b["2024-Q1"])


@pytest.mark.slow
def test_postgres_wrong_password_and_missing_table(postgres, monkeypatch):
    url, port = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", "wrong-one")
    s = load_settings(None, **{"source.url": url, "source.table": "payments", "source.password_env": "RR_TEST_PG_PASSWORD"})
    with pytest.raises(DataError) as e:
        open_dataset(s, now=NOW)
    assert f"127.0.0.1:{port}" in str(e.value) and "wrong-one" not in str(e.value)
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    s = load_settings(None, **{"source.url": url, "source.table": "no_such_table",
                               "source.password_env": "RR_TEST_PG_PASSWORD"})
    with pytest.raises(DataError) as e:
        open_dataset(s, now=NOW)
    assert "no_such_table" in str(e.value)
    # schema-qualified table names
    s = load_settings(None, **{"source.url": url, "source.table": "public.payments",
                               "source.password_env": "RR_TEST_PG_PASSWORD"})
    assert open_dataset(s, now=NOW).quality.rows_read > 50_000




@pytest.mark.parametrize("data, expect", [
    ("postgresql://rr@127.0.0.1:{port}/shop", "127.0.0.1:{port}"),  # a password in it: test_secrets.py
    ("/nonexistent/payments.parquet", "/nonexistent/payments.parquet"),
])
@pytest.mark.slow
def test_unreachable_source_is_one_clear_line(data, expect):
    port = _free_port()
    t0 = time.perf_counter()
    r = _cli("metrics", "--period", "2024-Q1", "--data", data.format(port=port), "--stdout")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "topsecret" not in r.stderr + r.stdout
    assert expect.format(port=port) in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 3
    assert time.perf_counter() - t0 < 60


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
def test_postgres_timestamptz_converted_to_report_zone(postgres, parquet_path, monkeypatch, tz):
    """A ``timestamptz`` column holds instants: they are bucketed into days of the report time zone,
    exactly as DuckDB does with an offset-aware Parquet column (and not as if they were local)."""
    url, _ = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    with _pg_admin(url).cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS payments_tz AS SELECT customer_id, paid_at AT TIME ZONE 'UTC' AS paid_at,"
                    " amount, order_id, cost, channel, country FROM payments")
    frame = pd.read_parquet(parquet_path).drop(columns=["platform"])
    frame["paid_at"] = frame["paid_at"].dt.tz_localize("UTC")
    aware = parquet_path.with_name("aware.parquet")
    frame.to_parquet(aware, index=False)
    periods = ["2024-01", "2024-W05"]
    pg = load_settings(None, **{"source.url": url, "source.table": "payments_tz",
                                "source.password_env": "RR_TEST_PG_PASSWORD", "timezone": tz, **COLUMNS})
    pq_ = load_settings(None, **{"source.path": str(aware), "timezone": tz, **COLUMNS})
    naive = load_settings(None, **{"source.path": str(parquet_path), "timezone": tz, **COLUMNS})
    a, b, c = _docs(pq_, periods), _docs(pg, periods), _docs(naive, periods)
    for p in periods:
        assert_same(a[p], b[p], p)
    # the conversion really happened: taken as local time the same clock readings give other days
    assert a["2024-01"]["data_quality"]["first_payment"] != c["2024-01"]["data_quality"]["first_payment"]


@pytest.mark.slow
def test_postgres_nan_and_infinity_are_invalid_null_is_empty(postgres, monkeypatch):
    """double precision holds NaN and ±Infinity besides NULL: all three fail the amount rule, each
    quoted as the user would see it."""
    url, _ = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    with _pg_admin(url).cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS payments_nan")
        cur.execute("CREATE TABLE payments_nan (customer_id text, paid_at timestamp, amount double precision)")
        cur.execute("INSERT INTO payments_nan VALUES ('a', '2024-01-05 10:00', 10), ('b', '2024-01-06', 'NaN'),"
                    " ('c', '2024-01-07', 'Infinity'), ('d', '2024-01-08', NULL), ('e', '2024-01-09', 30)")
    s = load_settings(None, **{"source.url": url, "source.query": "SELECT * FROM payments_nan ORDER BY customer_id",
                               "source.password_env": "RR_TEST_PG_PASSWORD"})
    with pytest.raises(DataError) as e:
        open_dataset(s, now=NOW)
    assert "3 row(s) have an empty or non-numeric amount" in str(e.value)
    assert "row 2: 'NaN'" in str(e.value) and "row 3: 'Infinity'" in str(e.value) and "row 4: (empty)" in str(e.value)
    ds = open_dataset(s.with_overrides(**{"validation.on_invalid": "drop"}), now=NOW)
    assert ds.quality.rows_dropped == {"non_numeric_amount": 3}
    from retention_report.metrics import period_kpis

    assert period_kpis(ds, parse_period("2024-Q1"))["gross_revenue"] == pytest.approx(40)
    # release the cached tables while the server still runs (Ibis drops them when collected)
    del ds, e
    import gc

    gc.collect()


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), password=PG_PASSWORD, autocommit=True)


def _write_toml(path: Path, source: str) -> Path:
    path.write_text(source + """
[columns]
order_id = "order_id"
cost = "cost"
segments = ["channel", "country"]
""")
    return path


@pytest.mark.slow
def test_cli_metrics_json_from_postgres_equals_parquet(postgres, parquet_path, tmp_path, monkeypatch):
    """The `metrics` command end to end: password only in the environment (the URL has none), and
    the written metrics.json equals the Parquet one and never contains the password."""
    url, _ = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    pg_cfg = _write_toml(tmp_path / "pg.toml", f"""[source]
url = "{url}"
query = "SELECT * FROM payments"
password_env = "RR_TEST_PG_PASSWORD"
""")
    pq_cfg = _write_toml(tmp_path / "pq.toml", f'[source]\npath = "{parquet_path}"\n')
    docs = {}
    for name, cfg in (("pg", pg_cfg), ("pq", pq_cfg)):
        r = _cli("metrics", "--period", "2024-Q1", "--config", str(cfg), "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        assert PG_PASSWORD not in r.stdout + r.stderr
        text = (tmp_path / name / "metrics.json").read_text()
        assert PG_PASSWORD not in text
        docs[name] = json.loads(text)
        for key in ("source", "generated_at"):
            docs[name].pop(key, None)
    assert docs["pq"]["kpis"]["customers"] > 100
    assert_same(docs["pq"], docs["pg"])


def _one_line_failure(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    return lines[0]


@pytest.mark.slow
def test_cli_postgres_missing_table_and_wrong_password(postgres, tmp_path, monkeypatch):
    url, port = postgres
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", PG_PASSWORD)
    cfg = _write_toml(tmp_path / "missing.toml", f"""[source]
url = "{url}"
table = "no_such_table"
password_env = "RR_TEST_PG_PASSWORD"
""")
    line = _one_line_failure(_cli("metrics", "--period", "2024-Q1", "--config", str(cfg), "--stdout"))
    assert "no_such_table" in line and PG_PASSWORD not in line
    monkeypatch.setenv("RR_TEST_PG_PASSWORD", "Wrong-Pass-77")
    cfg = _write_toml(tmp_path / "wrong.toml", f"""[source]
url = "{url}"
password_env = "RR_TEST_PG_PASSWORD"
""")
    line = _one_line_failure(_cli("metrics", "--period", "2024-Q1", "--config", str(cfg), "--stdout"))
    assert f"127.0.0.1:{port}" in line and "Wrong-Pass-77" not in line and PG_PASSWORD not in line
    monkeypatch.delenv("RR_TEST_PG_PASSWORD")
    line = _one_line_failure(_cli("metrics", "--period", "2024-Q1", "--config", str(cfg), "--stdout"))
    assert "RR_TEST_PG_PASSWORD" in line


# ---------------------------------------------------------------------------------------------- Spark

@pytest.fixture
def spark_env(monkeypatch):
    pytest.importorskip("pyspark", reason="install the spark extra: pip install -e '.[spark]'")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (scripts/ensure-system-deps.sh installs default-jre-headless)")
    # two cores shared with the rest of the suite, few shuffle partitions, a small driver
    monkeypatch.setenv("RETENTION_REPORT_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("RETENTION_REPORT_SPARK_PARTITIONS", "4")
    monkeypatch.setenv("RETENTION_REPORT_SPARK_DRIVER_MEMORY", "1g")


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("tz, aware, periods", [
    ("UTC", False, ["2024-Q1", "2023-11"]),
    # offset-aware instants in a DST zone (the switch is on 2024-03-31): Ibis resets Spark's session
    # time zone to UTC on connect, so this catches day buckets taken in UTC instead of report time
    ("Europe/Berlin", True, ["2024-03"]),
], ids=["utc-path", "berlin-aware-query"])
def test_spark_local_equals_duckdb(spark_env, tmp_path, tz, aware, periods):
    frame = generate_payments(n_customers=3_000, seed=11).to_pandas()
    if aware:
        frame["paid_at"] = frame["paid_at"].dt.tz_localize("UTC")
    path = tmp_path / "payments.parquet"
    frame.to_parquet(path, index=False)
    duck = load_settings(None, **{"source.path": str(path), "timezone": tz, **COLUMNS})
    if aware:  # a query over the session's catalog instead of a path
        source = {"source.url": "pyspark://", "source.query": f"SELECT * FROM parquet.`{path}`"}
    else:
        source = {"source.kind": "spark", "source.path": str(path)}
    spark = load_settings(None, **{**source, "timezone": tz, **COLUMNS})
    a, b = _docs(duck, periods), _docs(spark, periods)
    for p in periods:
        assert a[p]["kpis"]["customers"] > 50
        assert_same(a[p], b[p], p)


def test_a_real_xlsx_file_is_read(tmp_path):
    """issue 21 item 10: `.xlsx` sources are documented; openpyxl is a runtime dependency. The
    workbook is written here with real Excel cell types (numbers, datetimes, text ids)."""
    from datetime import datetime

    from openpyxl import Workbook
    from typer.testing import CliRunner

    from retention_report.cli import app

    wb = Workbook()
    ws = wb.active
    ws.append(["customer_id", "paid_at", "amount"])
    for row in [("00a", datetime(2023, 11, 5, 10), 100), ("00a", datetime(2024, 1, 10, 10), 50),
                ("00a", datetime(2024, 1, 10, 15), 30.5), ("b", datetime(2024, 2, 1, 9), 200),
                ("b", datetime(2024, 3, 15, 9), 20)]:
        ws.append(list(row))
    path = tmp_path / "payments.xlsx"
    wb.save(path)
    r = CliRunner().invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(path), "--stdout"])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.stdout)
    assert doc["kpis"]["gross_revenue"] == pytest.approx(50 + 30.5 + 200 + 20)
    assert doc["kpis"]["customers"] == 2 and doc["data_quality"]["rows_read"] == 5


def test_an_old_xls_file_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from retention_report.cli import app

    path = tmp_path / "payments.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    r = CliRunner().invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(path), "--stdout"])
    assert r.exit_code == 1 and ".xlsx" in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("bad_at", [1, 25000])  # in the sniffer's sample, and far after it
def test_csv_errors_keep_duckdbs_reason(tmp_path, bad_at):
    """issue 21 item 10: a CSV error names the line and what is wrong with it, not only DuckDB's
    first line ("CSV Error on Line: 25001" / "Error when sniffing file")."""
    from typer.testing import CliRunner

    from retention_report.cli import app

    rows = [f"c{i},2024-01-10,{i}" for i in range(30000 if bad_at > 1 else 3)]
    rows.insert(bad_at, "x,2024-01-10,5,7")
    path = tmp_path / "payments.csv"
    path.write_text("customer_id,paid_at,amount\n" + "\n".join(rows) + "\n")
    r = CliRunner().invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(path), "--stdout"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    line = bad_at + 2  # the header is line 1
    assert f"line {line} has 4 fields" in r.output or (
        f"Line: {line}" in r.output and "Expected Number of Columns: 3 Found: 4" in r.output), r.output
    assert "Possible fixes" not in r.output and "Candidates" not in r.output
