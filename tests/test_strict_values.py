"""A value is read only in a form the config declares (SPEC §2, issue 21 item 5): dates, amounts and
ids that do not fit are invalid — named by column and row — never reinterpreted."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
import pytest
from helpers import NOW

from retention_report.config import ConfigError, load_settings
from retention_report.data import DataError, open_dataset


def open_(path, **overrides):
    overrides = {k.replace("__", "."): v for k, v in overrides.items()}
    return open_dataset(load_settings(None, **{"source.path": str(path), **overrides}), now=NOW)


def _csv(tmp_path, rows, delimiter=","):
    p = tmp_path / "p.csv"
    p.write_text("customer_id;paid_at;amount\n".replace(";", delimiter)
                 + "".join(delimiter.join(r) + "\n" for r in rows), encoding="utf-8")
    return p


# --------------------------------------------------------------------------------------------
# amounts: a separator is accepted only as configured, thousands only in groups of three digits

DIALECTS = {"default": {}, "comma": {"decimal": ","}, "th_comma": {"thousands": ","},
            "de": {"decimal": ",", "thousands": "."}, "fr": {"decimal": ",", "thousands": " "},
            "ch": {"thousands": "'"}, "th_space": {"thousands": " "}}

AMOUNTS = [
    # (dialect, text, value or None = "non-numeric amount")
    ("default", "12.50", 12.5), ("default", "-20", -20.0), ("default", "+3", 3.0), ("default", " 7 ", 7.0),
    ("default", "1234", 1234.0), ("default", "0.5", 0.5),
    ("default", "12 50", None), ("default", "1_000", None), ("default", "1,000", None),
    ("default", "1.000.000", None), ("default", "12.5.0", None), ("default", "--5", None),
    ("default", "5-", None), ("default", "1 000.50", None), ("default", "1\u00a0000", None),
    ("comma", "1,5", 1.5), ("comma", "-1234,50", -1234.5),
    ("comma", "1.500", None), ("comma", "1.5", None), ("comma", "1 500", None),
    ("th_comma", "1,250", 1250.0), ("th_comma", "1,250.5", 1250.5), ("th_comma", "12,345,678", 12345678.0),
    ("th_comma", "1250", 1250.0),
    ("th_comma", "12,50", None), ("th_comma", "1,2500", None), ("th_comma", "1,25", None),
    ("th_comma", ",125", None), ("th_comma", "1,250,", None), ("th_comma", "1250,000", None),
    ("th_comma", "1.250,5", None), ("th_comma", "1 250", None),
    ("de", "1.500", 1500.0), ("de", "1.500,25", 1500.25), ("de", "-12.345.678,9", -12345678.9),
    ("de", "12,5", 12.5),
    ("de", "12.5", None), ("de", "1.50.000", None), ("de", "1,500.25", None), ("de", "1.5000", None),
    ("fr", "1 234,50", 1234.5), ("fr", "1\u00a0234,50", 1234.5), ("fr", "1\u202f234\u202f567,5", 1234567.5),
    ("fr", "12 34", None), ("fr", "1  234", None), ("fr", "1 234.50", None),
    ("ch", "1'234.50", 1234.5), ("ch", "1'23", None),
    ("th_space", "12 500", 12500.0), ("th_space", "12 50", None),
]


@pytest.mark.parametrize(("dialect", "text", "value"), AMOUNTS,
                         ids=[f"{d}:{t!r}" for d, t, _ in AMOUNTS])
def test_amount_forms_are_read_only_as_configured(tmp_path, dialect, text, value):
    opts = {f"source__csv__{k}": v for k, v in DIALECTS[dialect].items()}
    delim = ";" if "," in text else ","
    p = _csv(tmp_path, [("a", "2024-01-05", "10"), ("b", "2024-01-06", text)], delim)
    if value is None:
        with pytest.raises(DataError) as err:
            open_(p, source__csv__delimiter=delim, **opts)
        msg = str(err.value)
        assert "'amount'" in msg and "non-numeric amount" in msg and f"row 2: {text!r} (line 3)" in msg
        ds = open_(p, source__csv__delimiter=delim, validation__on_invalid="drop", **opts)
        assert ds.quality.rows_dropped == {"non_numeric_amount": 1}
    else:
        ds = open_(p, source__csv__delimiter=delim, **opts)
        got = ds.payments.order_by("paid_at").amount.execute().tolist()
        assert got == [10.0, pytest.approx(value)]


def test_cost_is_read_in_the_same_dialect(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("customer_id,paid_at,amount,cost\na,2024-01-05,10,4\nb,2024-01-06,20,12 50\n")
    with pytest.raises(DataError, match=r"'cost'.*row 2: '12 50' \(line 3\)"):
        open_(p, columns__cost="cost")


@pytest.mark.parametrize("sep", [".", ","])
def test_thousands_equal_to_decimal_is_a_config_error(sep):
    with pytest.raises(ConfigError, match="thousands"):
        load_settings(None, **{"source.csv.decimal": sep, "source.csv.thousands": sep})


@pytest.mark.parametrize("bad", ["1", "-", "+", "ab"])
def test_thousands_must_be_one_separator_character(bad):
    with pytest.raises(ConfigError, match="thousands"):
        load_settings(None, **{"source.csv.thousands": bad})


def test_amount_error_names_the_file_line(tmp_path):
    p = _csv(tmp_path, [("a", "2024-01-05", "10"), ("b", "2024-01-06", "12 50")])
    with pytest.raises(DataError) as err:
        open_(p)
    assert "row 2: '12 50' (line 3)" in str(err.value)


# --------------------------------------------------------------------------------------------
# dates: before 1900 or a two-digit year only when date_format says so

@pytest.mark.parametrize("text", ["24-01-05", "0024-01-05", "1899-12-31", "0001-01-01", "99-12-31 10:00",
                                  "24-1-5"])
def test_two_digit_years_and_dates_before_1900_are_invalid(tmp_path, text):
    p = _csv(tmp_path, [("a", "2024-01-05", "10"), ("b", text, "20")])
    with pytest.raises(DataError) as err:
        open_(p)
    msg = str(err.value)
    assert "'paid_at'" in msg and f"row 2: {text!r} (line 3)" in msg and "ISO 8601" in msg and "%y" in msg
    ds = open_(p, validation__on_invalid="drop")
    assert ds.quality.rows_dropped == {"unparsable_paid_at": 1}


def test_1900_and_later_are_read(tmp_path):
    p = _csv(tmp_path, [("a", "1900-01-01", "10"), ("b", "2024-01-05 13:45:00", "20")])
    ds = open_(p)
    got = ds.payments.order_by("paid_at").paid_at.execute().tolist()
    assert got == [pd.Timestamp("1900-01-01"), pd.Timestamp("2024-01-05 13:45")]


def test_two_digit_year_with_a_declared_format(tmp_path):
    p = _csv(tmp_path, [("a", "24-01-05", "10"), ("b", "99-12-31", "20")])
    ds = open_(p, source__csv__date_format="%y-%m-%d")
    got = ds.payments.order_by("paid_at").paid_at.execute().tolist()
    assert got == [pd.Timestamp("1999-12-31"), pd.Timestamp("2024-01-05")]


def test_four_digit_format_does_not_take_a_short_year(tmp_path):
    p = _csv(tmp_path, [("a", "05.01.2024", "10"), ("b", "05.01.24", "20")])
    with pytest.raises(DataError, match=r"'paid_at'.*row 2: '05.01.24' \(line 3\)"):
        open_(p, source__csv__date_format="%d.%m.%Y")


def test_typed_dates_before_1900_are_invalid(tmp_path):
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE payments AS SELECT * FROM (VALUES ('a', TIMESTAMP '2024-01-05', 10.0), "
                "('b', TIMESTAMP '1024-01-05', 20.0)) t(customer_id, paid_at, amount)")
    con.close()
    with pytest.raises(DataError, match=r"'paid_at'.*row 2"):
        open_(db)


# --------------------------------------------------------------------------------------------
# ids: a Parquet folder types its ids one way; a float id only when integral

def _pq(path, ids, amounts=None):
    import pyarrow as pa
    import pyarrow.parquet as papq

    n = len(ids)
    papq.write_table(pa.table({
        "customer_id": pa.array(ids),
        "paid_at": pa.array([datetime(2024, 1, 5 + i) for i in range(n)]),
        "amount": pa.array(amounts or [10.0] * n),
    }), path)


@pytest.mark.parametrize(("first", "second"), [
    ([123, 7], ["00123", "0007"]),  # int64 first: "00123" would become 123
    (["00123", "x"], [123, 7]),     # text first
    ([1, 2], [1.5, 2.0]),         # int and float: 1.5 would become 1 (or 2)
])
def test_parquet_folder_with_ids_typed_differently_is_refused(tmp_path, first, second):
    folder = tmp_path / "payments"
    folder.mkdir()
    _pq(folder / "a.parquet", first)
    _pq(folder / "b.parquet", second)
    with pytest.raises(DataError) as err:
        open_(folder)
    msg = str(err.value)
    assert "customer_id" in msg and "a.parquet" in msg and "b.parquet" in msg and "type" in msg
    with pytest.raises(DataError, match="customer_id"):
        open_(str(folder / "*.parquet"))


def test_parquet_folder_with_one_id_type_is_read(tmp_path):
    folder = tmp_path / "payments"
    folder.mkdir()
    _pq(folder / "a.parquet", ["00123", "x"])
    _pq(folder / "b.parquet", ["123", "x"])
    ds = open_(folder)
    assert sorted(ds.customers.customer_id.execute()) == ["00123", "123", "x"]


@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
def test_fractional_float_ids_are_invalid(tmp_path, kind):
    ids = [1.0, 2.0, 1.4, 7.000001]
    if kind == "parquet":
        path = tmp_path / "p.parquet"
        _pq(path, ids)
    else:
        path = tmp_path / "shop.duckdb"
        frame = pd.DataFrame({"customer_id": ids, "amount": 10.0,
                              "paid_at": pd.date_range("2024-01-05", periods=4)})
        con = duckdb.connect(str(path))
        con.register("frame", frame)
        con.execute("CREATE TABLE payments AS SELECT * FROM frame")
        con.close()
    with pytest.raises(DataError) as err:
        open_(path)
    msg = str(err.value)
    assert "'customer_id'" in msg and "2 row(s)" in msg and "row 3: '1.4'" in msg and "row 4" in msg
    ds = open_(path, validation__on_invalid="drop")
    assert ds.quality.rows_dropped == {"fractional_customer_id": 2}
    assert sorted(ds.customers.customer_id.execute()) == ["1", "2"]


def test_fractional_order_id_is_invalid(tmp_path):
    frame = pd.DataFrame({"customer_id": ["a", "b"], "order_id": [10.0, 10.5], "amount": 10.0,
                          "paid_at": pd.date_range("2024-01-05", periods=2)})
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"'order_id'.*row 2: '10.5'"):
        open_(path, columns__order_id="order_id")
