"""Data access: sources, column mapping, CSV dialects and each validation rule with a bad file."""

from __future__ import annotations

import sqlite3

import duckdb
import pandas as pd
import pytest
from conftest import NOW

from retention_report.config import load_settings
from retention_report.data import DataError, open_dataset
from retention_report.metrics import period_kpis
from retention_report.periods import parse_period

Q1 = parse_period("2024-Q1")
GOOD = pd.DataFrame(
    {
        "customer_id": ["00123", "123", "123", "b"],
        "paid_at": pd.to_datetime(["2024-01-05 10:00", "2024-01-06 11:00", "2024-02-06 11:00", "2024-03-01 09:00"]),
        "amount": [10.0, 20.0, 30.0, -5.0],
    }
)


def open_(path, **overrides):
    overrides = {k.replace("__", "."): v for k, v in overrides.items()}
    return open_dataset(load_settings(None, **{"source.path": str(path), **overrides}), now=NOW)


def test_customer_ids_are_opaque_strings(tmp_path):
    p = tmp_path / "p.parquet"
    GOOD.to_parquet(p)
    k = period_kpis(open_(p), Q1)
    assert k["customers"] == 2  # "00123" and "123" are different customers; b only refunded
    assert k["purchases"] == 3


def test_semicolon_csv_with_decimal_comma_and_mapping(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text(
        "Kunde;Zahlungsdatum;Betrag\n"
        "00123;05.01.2024 10:00;1 234,50\n"
        "123;06.01.2024 11:00;20,00\n"
        "b;01.03.2024 09:00;-5,25\n",
        encoding="latin-1",
    )
    ds = open_(p, source__csv__delimiter=";", source__csv__decimal=",", source__csv__thousands=" ",
               source__csv__date_format="%d.%m.%Y %H:%M", source__csv__encoding="latin-1",
               columns__customer_id="Kunde", columns__paid_at="Zahlungsdatum", columns__amount="Betrag")
    k = period_kpis(ds, Q1)
    assert k["gross_revenue"] == pytest.approx(1254.50)
    assert k["refunds"] == pytest.approx(5.25)


def test_parquet_folder_glob_and_hive_partitions(tmp_path):
    for month, part in GOOD.groupby(GOOD["paid_at"].dt.month):
        d = tmp_path / "payments" / f"month={month}"
        d.mkdir(parents=True)
        part.to_parquet(d / "part.parquet")
    folder = open_(tmp_path / "payments")
    glob = open_(str(tmp_path / "payments" / "*" / "*.parquet"))
    assert period_kpis(folder, Q1) == period_kpis(glob, Q1)
    assert folder.quality.rows_read == 4


def test_duckdb_and_sqlite_files_with_query(tmp_path):
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE pay AS SELECT * FROM GOOD")
    con.close()
    a = open_(db, source__table="pay")
    sq = tmp_path / "shop.sqlite"
    with sqlite3.connect(sq) as c:
        GOOD.assign(paid_at=GOOD["paid_at"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_sql("pay", c, index=False)
    b = open_(sq, source__query="SELECT * FROM pay WHERE amount > 0")
    assert period_kpis(a, Q1)["gross_revenue"] == period_kpis(b, Q1)["gross_revenue"] == pytest.approx(60)


def test_source_is_never_modified(tmp_path):
    p = tmp_path / "p.csv"
    GOOD.to_csv(p, index=False)
    before = p.read_bytes()
    open_(p, validation__on_invalid="drop")
    assert p.read_bytes() == before


# --------------------------------------------------------------------------------------------
# validation rules: error names the column, the count and example rows; drop counts by reason

BAD_CASES = [
    # (csv body, expected fragments of the error, dropped reason)
    ("a,2024-01-05,10\n,2024-01-06,20\n", ["'customer_id'", "1 row(s)", "row 2"], "null_customer_id"),
    ("a,2024-01-05,10\nb,yesterday,20\nc,2024-13-01,5\n", ["'paid_at'", "2 row(s)", "row 2: 'yesterday'", "row 3: '2024-13-01'", "ISO 8601"], "unparsable_paid_at"),
    ("a,2024-01-05,10\nb,2024-01-06,ten\n", ["'amount'", "row 2: 'ten'", "decimal"], "non_numeric_amount"),
    ("a,2024-01-05,10\nb,2031-01-06,20\n", ["in the future", "row 2"], "future_paid_at"),
    ("a,2024-01-05,10\na,2024-01-05,10\n", ["duplicate", "row 1"], "duplicate_row"),
]


@pytest.mark.parametrize(("body", "fragments", "reason"), BAD_CASES, ids=[c[2] for c in BAD_CASES])
def test_validation_rules(tmp_path, body, fragments, reason):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,paid_at,amount\n" + body)
    with pytest.raises(DataError) as err:
        open_(p)
    for f in fragments:
        assert f in str(err.value)
    ds = open_(p, validation__on_invalid="drop")
    assert reason in ds.quality.rows_dropped
    assert ds.quality.rows_used == ds.quality.rows_read - sum(ds.quality.rows_dropped.values())


def test_error_shows_at_most_five_examples(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,paid_at,amount\n" + "".join(f"c{i},2024-01-05,x{i}\n" for i in range(9)))
    with pytest.raises(DataError) as err:
        open_(p)
    msg = str(err.value)
    assert "9 row(s)" in msg and "row 5: 'x4'" in msg and "row 6" not in msg


def test_missing_column_names_mapping_and_available(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("client,date,sum\na,2024-01-05,10\n")
    with pytest.raises(DataError) as err:
        open_(p)
    msg = str(err.value)
    assert "'customer_id'" in msg and "available columns: ['client', 'date', 'sum']" in msg and "[columns]" in msg
    with pytest.raises(DataError, match=r"'Kunde' \(mapped to customer_id\)"):
        open_(p, columns__customer_id="Kunde", columns__paid_at="date", columns__amount="sum")


def test_drop_counts_each_row_once(tmp_path):
    p = tmp_path / "bad.csv"
    # row 2 breaks two rules (no id, bad amount): counted once, under the first rule
    p.write_text("customer_id,paid_at,amount\na,2024-01-05,10\n,2024-01-06,x\nb,nodate,5\n")
    ds = open_(p, validation__on_invalid="drop")
    assert ds.quality.rows_dropped == {"null_customer_id": 1, "unparsable_paid_at": 1}
    assert ds.quality.rows_used == 1


def test_unreachable_sources_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="source file not found"):
        open_(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="no file matches"):
        open_(str(tmp_path / "*.parquet"))
    with pytest.raises(DataError, match="cannot tell the format"):
        open_(tmp_path / "payments.xyz")
    s = load_settings(None, **{"source.url": "postgres://nobody@127.0.0.1:1/none"})
    with pytest.raises(DataError, match="cannot connect to postgres://nobody@127.0.0.1:1/none"):
        open_dataset(s)
