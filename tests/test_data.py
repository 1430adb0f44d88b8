"""Data access: sources, column mapping, CSV dialects and each validation rule with a bad file."""

from __future__ import annotations

import sqlite3

import duckdb
import pandas as pd
import pytest
from helpers import NOW

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
    c = open_(db, source__query="SELECT * FROM pay WHERE amount > 0")  # a query over a DuckDB file too
    assert period_kpis(c, Q1)["gross_revenue"] == pytest.approx(60) and period_kpis(c, Q1)["refunds"] == 0


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
    # an empty id: the message names the three choices of validation.empty_customer_id
    ("a,2024-01-05,10\n,2024-01-06,20\n", ["'customer_id'", "1 row(s)", "row 2", "validation.empty_customer_id",
                                         "'error'", "'drop'", "'guest'"], "null_customer_id"),
    ("a,2024-01-05,10\nb,yesterday,20\nc,2024-13-01,5\n", ["'paid_at'", "2 row(s)", "row 2: 'yesterday'", "row 3: '2024-13-01'", "ISO 8601"], "unparsable_paid_at"),
    ("a,2024-01-05,10\nb,2024-01-06,ten\n", ["'amount'", "row 2: 'ten'", "decimal"], "non_numeric_amount"),
    ("a,2024-01-05,10\nb,2031-01-06,20\n", ["in the future", "row 2"], "future_paid_at"),
    # NaN / inf are no amounts (one NaN made revenue 0.0, one inf "€inf, up inf%")
    ("a,2024-01-05,10\nb,2024-01-06,NaN\nc,2024-01-06,inf\nd,2024-01-07,-Infinity\ne,2024-01-07,nan\n",
     ["'amount'", "4 row(s)", "row 2: 'NaN'", "row 3: 'inf'", "row 4: '-Infinity'", "row 5: 'nan'"],
     "non_numeric_amount"),
]


@pytest.mark.parametrize(("body", "fragments", "reason"), BAD_CASES, ids=[c[2] for c in BAD_CASES])
def test_validation_rules(tmp_path, body, fragments, reason):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,paid_at,amount\n" + body)
    with pytest.raises(DataError) as err:
        open_(p)
    for f in fragments:
        assert f in str(err.value)
    drop = {"validation__empty_customer_id" if reason == "null_customer_id" else "validation__on_invalid": "drop"}
    ds = open_(p, **drop)
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
    ds = open_(p, validation__on_invalid="drop", validation__empty_customer_id="drop")
    assert ds.quality.rows_dropped == {"null_customer_id": 1, "unparsable_paid_at": 1}
    assert ds.quality.rows_used == 1


def test_unreachable_sources_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="source file not found"):
        open_(tmp_path / "nope.parquet")
    with pytest.raises(DataError, match="no file matches"):
        open_(str(tmp_path / "*.parquet"))
    (tmp_path / "payments.xyz").write_text("x")  # an existing file of an unknown format
    with pytest.raises(DataError, match="cannot tell the format"):
        open_(tmp_path / "payments.xyz")
    s = load_settings(None, **{"source.url": "postgres://nobody@127.0.0.1:1/none"})
    with pytest.raises(DataError, match="cannot connect to postgres://nobody@127.0.0.1:1/none"):
        open_dataset(s)


def test_blank_customer_id_is_quoted_as_empty(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("customer_id,paid_at,amount\na,2024-01-05,10\n   ,2024-01-06,20\n")
    with pytest.raises(DataError) as err:
        open_(p)
    assert "row 2: (empty)" in str(err.value)
    assert "nan" not in str(err.value) and "None" not in str(err.value)


# --------------------------------------------------------------------------------------------
# NaN and infinity in every kind of source: the non-numeric rule (amount and cost)


def _typed_sources(tmp_path, frame):
    """The same frame as Parquet, a DuckDB table and a SQLite table (paths and extra overrides)."""
    import pyarrow as pa
    import pyarrow.parquet as papq

    # from_pandas=False keeps NaN a NaN (pandas conversions would turn it into NULL)
    table = pa.table({c: pa.array(list(frame[c]), from_pandas=c != "amount") for c in frame.columns})
    assert table.column("amount").null_count == 0
    pq = tmp_path / "p.parquet"
    papq.write_table(table, pq)
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.register("arrow_frame", table)
    con.execute("CREATE TABLE payments AS SELECT * FROM arrow_frame")
    assert con.execute("SELECT count(*) FROM payments WHERE amount IS NULL").fetchone()[0] == 0
    con.close()
    return [(pq, {}), (db, {})]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_nan_and_inf_amounts_in_typed_sources_are_invalid(tmp_path, bad):
    frame = GOOD.assign(amount=[10.0, bad, 30.0, -5.0])
    for path, extra in _typed_sources(tmp_path, frame):
        with pytest.raises(DataError) as err:
            open_(path, **extra)
        assert "'amount'" in str(err.value) and "1 row(s)" in str(err.value) and "row 2" in str(err.value)
        ds = open_(path, validation__on_invalid="drop", **extra)
        assert ds.quality.rows_dropped == {"non_numeric_amount": 1}
        # the revenue of the three good rows, not NaN, 0.0 or inf
        assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10 + 30)


def test_sqlite_infinity_and_null_amounts(tmp_path):
    # SQLite stores NaN as NULL (an empty amount) and keeps infinity: both are invalid
    sq = tmp_path / "shop.sqlite"
    frame = GOOD.assign(paid_at=GOOD["paid_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                        amount=[10.0, float("inf"), float("nan"), -5.0])
    with sqlite3.connect(sq) as c:
        frame.to_sql("payments", c, index=False)
    with pytest.raises(DataError, match=r"2 row\(s\) have an empty or non-numeric amount"):
        open_(sq)
    ds = open_(sq, validation__on_invalid="drop")
    assert ds.quality.rows_dropped == {"non_numeric_amount": 2}
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10)


def test_nan_cost_is_invalid_and_an_empty_cost_is_not(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("customer_id,paid_at,amount,cost\na,2024-01-05,10,4\nb,2024-01-06,20,\nc,2024-01-07,30,NaN\n"
                 "d,2024-01-08,40,inf\n")
    with pytest.raises(DataError) as err:
        open_(p, columns__cost="cost")
    msg = str(err.value)
    assert "'cost'" in msg and "2 row(s)" in msg and "row 3: 'NaN'" in msg and "row 4: 'inf'" in msg
    ds = open_(p, columns__cost="cost", validation__on_invalid="drop")
    assert ds.quality.rows_dropped == {"non_numeric_cost": 2}
    k = period_kpis(ds, Q1)
    assert k["gross_revenue"] == pytest.approx(30)  # a and b; b's empty cost counts as 0
    assert k["margin"] == pytest.approx(30 - 4)
    # the same in a typed source: NULL cost is allowed, NaN is not
    import pyarrow as pa
    import pyarrow.parquet as papq

    pq = tmp_path / "c.parquet"  # pyarrow keeps a real NaN next to a null (pandas would null both)
    table = pa.Table.from_pandas(GOOD, preserve_index=False).append_column(
        "cost", pa.array([4.0, None, float("nan"), 1.0], from_pandas=False))
    papq.write_table(table, pq)
    with pytest.raises(DataError, match=r"'cost'.*1 row\(s\).*row 3: 'nan'"):
        open_(pq, columns__cost="cost")


# --------------------------------------------------------------------------------------------
# identical rows and payment_id (SPEC §2)


def test_identical_rows_all_count(tmp_path):
    # a date-only log: the customer bought the same item twice on one day; both rows are real
    p = tmp_path / "p.csv"
    p.write_text("customer_id,paid_at,amount\na,2024-01-05,10\na,2024-01-05,10\nb,2024-01-06,7\nb,2024-01-06,7\n"
                 "b,2024-01-06,7\n")
    ds = open_(p)  # default rules: no error
    assert ds.quality.rows_dropped == {}
    assert ds.quality.rows_used == ds.quality.rows_read == 5
    k = period_kpis(ds, Q1)
    assert k["gross_revenue"] == pytest.approx(10 + 10 + 7 + 7 + 7)
    assert k["purchases"] == 2  # one purchase per customer-day (SPEC §2)


PID_HEADER = "pid,customer_id,paid_at,amount\n"


def test_repeated_payment_id_with_identical_values_is_a_double_export(tmp_path):
    p = tmp_path / "p.csv"
    # p1 exported three times, p2 twice; p3 and p4 are identical rows with different ids: both count;
    # rows without an id are kept as they are
    p.write_text(PID_HEADER + "p1,a,2024-01-05,10\np1,a,2024-01-05,10\np2,b,2024-01-06,20\np1,a,2024-01-05,10\n"
                 "p3,c,2024-01-07,5\np4,c,2024-01-07,5\np2,b,2024-01-06,20\n,d,2024-01-08,1\n,d,2024-01-08,1\n")
    for mode in ("error", "drop"):  # double exports are dropped in both modes, never an error
        ds = open_(p, columns__payment_id="pid", validation__on_invalid=mode)
        assert ds.quality.rows_dropped == {"duplicate_payment_id": 3}
        assert (ds.quality.rows_read, ds.quality.rows_used) == (9, 6)
        assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(10 + 20 + 5 + 5 + 1 + 1)


def test_repeated_payment_id_with_different_values_is_invalid(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(PID_HEADER + "p1,a,2024-01-05,10\np2,b,2024-01-06,20\np1,a,2024-01-05,12\np2,b,2024-01-06,20\n"
                 "p3,c,2024-01-07,5\n")
    with pytest.raises(DataError) as err:
        open_(p, columns__payment_id="pid")
    msg = str(err.value)
    assert "'pid' (mapped to payment_id)" in msg and "1 payment id(s)" in msg and "'p1' in rows 1, 3" in msg
    ds = open_(p, columns__payment_id="pid", validation__on_invalid="drop")
    # p1's two versions cannot be told apart: both dropped; p2's copy is a double export
    assert ds.quality.rows_dropped == {"duplicate_payment_id": 1, "conflicting_payment_id": 2}
    assert ds.quality.rows_used == 2
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(20 + 5)


def test_without_payment_id_no_duplicate_check_runs(tmp_path, monkeypatch):
    import retention_report.data.dataset as dataset

    calls = []
    real = dataset.payment_id_duplicates
    monkeypatch.setattr(dataset, "payment_id_duplicates", lambda t, *a: (calls.append(t.columns), real(t, *a))[1])
    p = tmp_path / "p.parquet"
    GOOD.to_parquet(p)
    open_(p)
    assert calls and "payment_id" not in calls[0]  # returns at once: no query over the data


# --------------------------------------------------------------------------------------------
# no data is an error, not a report of zeros (SPEC §2)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("", "the file is empty"),
        ("customer_id,paid_at,amount\n", "no data rows"),
        ("customer_id,paid_at,amount\na,2024-01-05,-10\nb,2024-01-06,0\n", "refunds or zero amounts"),
    ],
    ids=["empty-file", "header-only", "refunds-only"],
)
def test_no_payments_is_an_error(tmp_path, body, why):
    p = tmp_path / "p.csv"
    p.write_text(body)
    with pytest.raises(DataError, match=f"no payments in {p}: .*{why}"):
        open_(p)


def test_header_only_parquet_and_all_rows_dropped(tmp_path):
    p = tmp_path / "p.parquet"
    GOOD.iloc[:0].to_parquet(p)
    with pytest.raises(DataError, match="no payments in .*no data rows"):
        open_(p)
    c = tmp_path / "bad.csv"
    c.write_text("customer_id,paid_at,amount\na,never,10\n")
    with pytest.raises(DataError, match=r"no payments in .*all 1 rows were dropped as invalid \(unparsable_paid_at: 1\)"):
        open_(c, validation__on_invalid="drop")


@pytest.mark.parametrize(
    ("period", "where"),
    [("2030-Q1", "after the last"), ("2019", "before the first"), ("2024-01-06..2024-01-31", None),
     ("2024-01-01..2024-01-04", "before the first")],
    ids=["after", "before", "partial", "day-before"],
)
def test_a_period_without_data_fails_naming_the_data_range(tmp_path, period, where):
    from retention_report.context import ReportContext

    p = tmp_path / "p.parquet"
    GOOD.to_parquet(p)  # payments 2024-01-05 .. 2024-03-01
    s = load_settings(None, **{"source.path": str(p)})
    if where is None:  # partial overlap: reported (incomplete), not an error
        ctx = ReportContext(parse_period(period), s, dataset=open_dataset(s, now=NOW))
        assert ctx.doc["period"] == "2024-01-06..2024-01-31"
        return
    ctx = ReportContext(parse_period(period), s, dataset=open_dataset(s, now=NOW))
    with pytest.raises(DataError) as err:
        ctx.doc  # noqa: B018
    msg = str(err.value)
    assert f"no payments in {parse_period(period).label}" in msg and where in msg
    assert "from 2024-01-05 to 2024-03-01" in msg


# --------------------------------------------------------------------------------------------
# CSV files that are not what the config says: the message says the fix


def test_semicolon_or_tab_file_read_with_comma_says_set_the_delimiter(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("Kunde;Zahlungsdatum;Betrag;Kanal\nK-00144;05.01.2023 21:22;70,08;Telefon\n")
    with pytest.raises(DataError) as err:
        open_(p)
    assert "looks ';'-separated: set source.csv.delimiter = \";\"" in str(err.value)
    t = tmp_path / "export.tsv"
    t.write_text("customer\tdate\tamount\na\t2024-01-05\t10\n")
    with pytest.raises(DataError) as err:
        open_(t)
    assert "looks '\\t' (tab)-separated: set source.csv.delimiter = \"\\t\"" in str(err.value)


def test_not_utf8_names_the_byte_and_suggests_an_encoding(tmp_path):
    p = tmp_path / "win.csv"
    body = "customer_id,paid_at,amount,channel\na,2024-01-05,10,Web\nb,2024-01-06,20,Café\n"
    p.write_bytes(body.encode("cp1252"))
    offset = body.encode("utf-8").index("é".encode())  # bytes before it are ASCII in both
    with pytest.raises(DataError) as err:
        open_(p, columns__segments=["channel"])
    msg = str(err.value)
    assert f"byte 0xe9 at byte offset {offset}" in msg and "(line 3)" in msg
    assert 'encoding = "cp1252"' in msg and "latin-1" in msg
    # and with the suggested setting it reads, é intact (DuckDB has no cp1252: transcoded copy)
    ds = open_(p, columns__segments=["channel"], source__csv__encoding="cp1252")
    assert sorted(ds.payments.channel.execute()) == ["Café", "Web"]
    assert p.read_bytes() == body.encode("cp1252")  # the source is only read


def test_cp1251_export_with_cyrillic_values(tmp_path):
    p = tmp_path / "ru.csv"
    p.write_bytes("клиент;дата;сумма;канал\nк1;05.01.2024;1 234,50;Телефон\nк2;06.01.2024;20,00;Сайт\n".encode("cp1251"))
    ds = open_(p, source__csv__encoding="cp1251", source__csv__delimiter=";", source__csv__decimal=",",
               source__csv__thousands=" ", source__csv__date_format="%d.%m.%Y",
               columns__customer_id="клиент", columns__paid_at="дата", columns__amount="сумма",
               columns__segments=["канал"])
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(1254.5)
    assert sorted(ds.payments["канал"].execute()) == ["Сайт", "Телефон"]


def test_unknown_encoding_and_mixed_line_endings(tmp_path):
    p = tmp_path / "p.csv"
    p.write_bytes(b"customer_id,paid_at,amount\r\na,2024-01-05,10\nb,2024-01-06,5\r\nc,2024-01-07,6\n")
    with pytest.raises(DataError, match=r"mixes Windows \(CRLF\) and Unix \(LF\) line endings \(line 1 ends in CRLF, line 2 in LF\)"):
        open_(p)
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        open_(p, source__csv__encoding="klingon")


def test_missing_file_with_a_mistyped_extension_is_not_found(tmp_path):
    with pytest.raises(DataError, match="source file not found"):
        open_(tmp_path / "payments.cvs")


# --------------------------------------------------------------------------------------------
# guest payments (issue 22, SPEC §2): validation.empty_customer_id = "guest"

GUEST_ROWS = [
    # (customer_id, paid_at, amount); "" = no customer id (guest checkout, cash sale)
    ("a", "2023-11-10 10:00", 50.0),   # a acquired in Q4 2023
    ("", "2023-12-01 12:00", 12.0),    # guest, previous period
    ("a", "2024-01-10 10:00", 30.0),   # returning
    ("", "2024-01-15 09:00", 25.0),    # guest
    ("b", "2024-02-01 10:00", 40.0),   # b's first purchase: two payments on one day, one purchase
    ("b", "2024-02-01 15:00", 10.0),
    ("", "2024-02-20 11:00", 15.0),    # guest
    ("b", "2024-03-01 10:00", 20.0),   # a new customer's later purchase: returning revenue
    ("", "2024-03-05 10:00", -5.0),    # a guest refund
    ("a", "2024-03-10 10:00", -8.0),   # a customer refund
]


def _guest_doc(mode):
    from helpers import make_dataset

    from retention_report.document import metrics_document

    rows = GUEST_ROWS if mode != "without" else [r for r in GUEST_ROWS if r[0]]
    ds = make_dataset(rows, validation__empty_customer_id="error" if mode == "without" else mode)
    return ds, metrics_document(ds, Q1, ds.settings.metrics)


def test_guest_payments_are_revenue_without_a_customer():
    ds, doc = _guest_doc("guest")
    k = doc["kpis"]
    # by hand, Q1 2024: gross = 30 + 50 + 20 (customers) + 25 + 15 (guests) = 140
    assert k["gross_revenue"] == pytest.approx(140.0)
    assert k["refunds"] == pytest.approx(13.0)  # 5 (guest) + 8 (customer)
    assert k["revenue"] == pytest.approx(127.0)
    assert (k["revenue_new"], k["revenue_returning"], k["revenue_guest"]) == pytest.approx((50.0, 50.0, 40.0))
    assert k["revenue_new"] + k["revenue_returning"] + k["revenue_guest"] == pytest.approx(k["gross_revenue"])
    assert k["new_revenue_share"] == pytest.approx(50 / 140)
    assert k["refund_rate"] == pytest.approx(13 / 140)
    # customers, purchases and AOV per purchase are the identified customers' only
    assert (k["customers"], k["customers_new"], k["customers_returning"], k["purchases"]) == (2, 1, 1, 3)
    assert k["aov"] == pytest.approx(100 / 3)
    # the previous period (Q4 2023): a's 50 and a guest's 12
    assert doc["previous"]["gross_revenue"] == pytest.approx(62.0)
    assert doc["previous"]["revenue_guest"] == pytest.approx(12.0)
    assert doc["previous"]["revenue_new"] == pytest.approx(50.0)
    assert doc["year_ago"]["revenue_guest"] == 0.0  # no data: no guest revenue either
    dq = doc["data_quality"]
    assert (dq["rows_read"], dq["rows_used"], dq["rows_dropped"]) == (10, 10, {})
    assert (dq["guest_rows"], dq["guest_revenue"]) == (4, pytest.approx(25 + 15 + 12 - 5))


def test_guest_payments_are_left_out_of_every_customer_metric():
    """Guests change revenue, refunds and their shares, nothing else: every other number of
    metrics.json is the one of the same log without the guest rows."""
    _, guest = _guest_doc("guest")
    _, without = _guest_doc("without")
    money = {"revenue", "gross_revenue", "refunds", "revenue_guest", "new_revenue_share", "refund_rate"}
    for block in ("kpis", "previous", "year_ago"):
        assert {k: v for k, v in guest[block].items() if k not in money} == \
               {k: v for k, v in without[block].items() if k not in money}, block
    # cohorts, segments, time to second purchase, CLV … (the revenue blocks aside)
    customer_blocks = set(guest) - {"kpis", "previous", "year_ago", "data_quality", "changes", "intervals",
                                    "findings", "unobservable"}
    assert {"cohorts", "segments", "time_to_second_purchase"} <= customer_blocks
    for key in customer_blocks:
        assert guest[key] == without[key], key


def test_the_new_vs_returning_table_has_a_guest_row_adding_up_to_gross():
    from retention_report import tables
    from retention_report.metrics import new_vs_returning

    ds, _ = _guest_doc("guest")
    nvr = new_vs_returning(ds.daily, ds.customers, Q1, days=ds.days)
    assert list(nvr.index) == ["new", "returning", "guest", "total"]
    assert nvr.loc["guest", "revenue"] == pytest.approx(40.0)
    assert nvr.loc["guest", "payments"] == 2  # the refund is no payment received
    assert nvr.loc[["new", "returning", "guest"], "revenue"].sum() == pytest.approx(nvr.loc["total", "revenue"])
    html = tables.new_vs_returning_table(nvr)
    assert "Guest / unidentified" in html and 'data-kpi="revenue_guest"' in html


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_without_guest_mode_there_is_no_guest_revenue(mode):
    if mode == "error":
        with pytest.raises(DataError, match="empty_customer_id"):
            _guest_doc(mode)
        return
    ds, doc = _guest_doc(mode)
    assert doc["kpis"]["revenue_guest"] is None
    assert doc["kpis"]["gross_revenue"] == pytest.approx(100.0)
    assert doc["data_quality"]["rows_dropped"] == {"null_customer_id": 4}
    assert "guest_rows" not in doc["data_quality"]


def test_guest_mode_survives_a_warm_cache(tmp_path):
    from helpers import payments

    p = tmp_path / "guests.csv"
    payments(GUEST_ROWS).to_csv(p, index=False)
    opts = {"validation__empty_customer_id": "guest", "engine__cache_dir": str(tmp_path / "cache")}
    cold, warm = open_(p, **opts), open_(p, **opts)
    assert warm.quality.cached_at and not cold.quality.cached_at
    assert period_kpis(warm, Q1) == period_kpis(cold, Q1)
    assert (warm.quality.guest_rows, warm.quality.guest_revenue) == (4, pytest.approx(47.0))
    assert period_kpis(warm, Q1)["revenue_guest"] == pytest.approx(40.0)


# --------------------------------------------------------------------------------------------
# source.query over a file source (issue 22): the file is the table "payments"

LINE_ITEMS = (
    "InvoiceNo;StockCode;Quantity;UnitPrice;CustomerID;InvoiceDate;Country\n"
    "536365;85123A;6;2,55;00123;05.01.2024 08:26;United Kingdom\n"
    "536365;71053;6;3,39;00123;05.01.2024 08:26;United Kingdom\n"
    "536366;22633;2;1 001,50;123;06.02.2024 09:00;France\n"
    "C536367;85123A;-2;2,55;00123;01.03.2024 10:00;United Kingdom\n"
)
LINE_QUERY = "select CustomerID, InvoiceDate, InvoiceNo, Country, Quantity * UnitPrice as amount from payments"
LINE_OPTS = {"source__query": LINE_QUERY, "columns__customer_id": "CustomerID", "columns__paid_at": "InvoiceDate",
             "columns__order_id": "InvoiceNo", "columns__segments": ["Country"]}


def test_query_over_a_csv_file_after_its_dialect(tmp_path):
    """The query sees the file as read with [source.csv] (';', decimal comma, thousands space):
    Quantity * UnitPrice computes in that dialect; ids pass through as text (00123 ≠ 123)."""
    p = tmp_path / "lines.csv"
    p.write_text(LINE_ITEMS)
    ds = open_(p, source__csv__delimiter=";", source__csv__decimal=",", source__csv__thousands=" ",
               source__csv__date_format="%d.%m.%Y %H:%M", **LINE_OPTS)
    k = period_kpis(ds, Q1)
    # by hand: 6 × 2.55 + 6 × 3.39 = 35.64 (00123) and 2 × 1001.50 = 2003.00 (123); refund 2 × 2.55
    assert k["gross_revenue"] == pytest.approx(35.64 + 2003.0)
    assert k["refunds"] == pytest.approx(5.10)
    assert k["customers"] == 2 and k["purchases"] == 2
    assert k["aov"] == pytest.approx((35.64 + 2003.0) / 2)  # per order: two invoices with payments
    ids = sorted(ds.customers.execute()["customer_id"])
    assert ids == ["00123", "123"]


def test_query_over_parquet_and_excel_gives_the_same(tmp_path, monkeypatch):
    frame = pd.read_csv(pd.io.common.StringIO(LINE_ITEMS.replace(",", ".").replace("1 001", "1001")), sep=";",
                        dtype=str)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"], format="%d.%m.%Y %H:%M")
    typed = frame.astype({"Quantity": "int64", "UnitPrice": "float64"})
    pq = tmp_path / "lines.parquet"
    typed.to_parquet(pq)
    xl = tmp_path / "lines.xlsx"  # a real workbook (openpyxl), as an export writes it
    frame.assign(InvoiceDate=frame["InvoiceDate"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_excel(xl, index=False)
    a, b = period_kpis(open_(pq, **LINE_OPTS), Q1), period_kpis(open_(xl, **LINE_OPTS), Q1)
    assert a == b
    assert a["gross_revenue"] == pytest.approx(35.64 + 2003.0) and a["refunds"] == pytest.approx(5.10)


def test_a_text_that_is_no_number_in_the_query_is_an_invalid_amount(tmp_path):
    p = tmp_path / "lines.csv"
    p.write_text("InvoiceNo,Quantity,UnitPrice,CustomerID,InvoiceDate\n1,2,3.5,a,2024-01-05\n2,two,3.5,b,2024-01-06\n")
    opts = {**LINE_OPTS, "source__query": "select CustomerID, InvoiceDate, Quantity * UnitPrice as amount from payments",
            "columns__order_id": "", "columns__segments": []}
    with pytest.raises(DataError, match=r"'amount'.*1 row\(s\)"):
        open_(p, **opts)


def test_a_broken_query_names_the_table_and_the_problem(tmp_path):
    p = tmp_path / "lines.csv"
    p.write_text(LINE_ITEMS)
    with pytest.raises(DataError, match=r"source.query.*'payments'.*Nope"):
        open_(p, source__csv__delimiter=";", source__query="select Nope from payments")


@pytest.mark.parametrize(("source", "key", "value"), [
    ("p.csv", "source.table", "sales"),              # a file has no tables: use the query
    ("p.parquet", "source.csv.delimiter", ";"),      # CSV-only keys
    ("p.parquet", "source.csv.encoding", "cp1252"),
    ("p.parquet", "source.csv.header", False),
    ("p.csv", "source.password_env", "PGPASS"),      # a server's
    ("", "source.table", "sales"),                    # no source at all: the sample
    ("db.duckdb", "source.csv.delimiter", ";"),
])
def test_a_source_key_that_does_not_apply_is_an_error(tmp_path, source, key, value):
    overrides = {key: value}
    if source:
        path = tmp_path / source
        if source.endswith(".duckdb"):
            duckdb.connect(str(path)).close()
        else:
            GOOD.to_parquet(path) if source.endswith(".parquet") else GOOD.to_csv(path, index=False)
        overrides["source.path"] = str(path)
    with pytest.raises(DataError, match=rf"{key.replace('.', '[.]')} = .* does not apply"):
        open_dataset(load_settings(None, **overrides), now=NOW)


def test_query_and_table_together_are_an_error(tmp_path):
    db = tmp_path / "shop.duckdb"
    duckdb.connect(str(db)).close()
    with pytest.raises(DataError, match="either source.table or source.query"):
        open_(db, source__table="pay", source__query="select * from pay")


@pytest.mark.slow
def test_cli_exits_2_naming_a_key_that_does_not_apply(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "p.csv"
    GOOD.to_csv(p, index=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\npath = "{p}"\ntable = "sales"\n')
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "metrics", "--period", "2024-Q1",
                        "--config", str(cfg), "--stdout"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2
    assert "source.table = 'sales' does not apply to a csv source" in r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------------
# whitespace-separated files (issue 22): the CDNOW_master.txt format

CDNOW_LIKE = (
    " customer_id  date number_of_cds  dollar_value\r\n"
    " 00001 19970101  1   11.77\r\n"
    " 00002 19970112  1   12.00\r\n"
    "\t00002\t19970112 5\t77.00  \r\n"
    "\r\n"
    " 00003 19970102  2   -20.76\r\n"
)
CDNOW_OPTS = {"columns__paid_at": "date", "columns__amount": "dollar_value",
              "source__csv__date_format": "%Y%m%d"}


def test_a_whitespace_separated_file_gets_the_fix_in_the_message(tmp_path):
    p = tmp_path / "CDNOW_master.txt"
    p.write_text(CDNOW_LIKE)
    with pytest.raises(DataError) as err:
        open_(p, **CDNOW_OPTS)
    assert 'looks whitespace-separated: set source.csv.delimiter = "whitespace"' in str(err.value)


def test_whitespace_delimiter_reads_runs_of_spaces_and_tabs(tmp_path):
    p = tmp_path / "CDNOW_master.txt"
    p.write_text(CDNOW_LIKE)
    ds = open_(p, source__csv__delimiter="whitespace", **CDNOW_OPTS)
    assert ds.quality.rows_read == 4  # the blank line is no row
    raw = ds.payments.execute().sort_values(["customer_id", "amount"])
    assert list(raw["customer_id"]) == ["00001", "00002", "00002", "00003"]  # leading zeros kept
    assert list(raw["amount"]) == [11.77, 12.0, 77.0, -20.76]
    q1 = parse_period("1997-Q1")
    k = period_kpis(ds, q1)
    assert (k["gross_revenue"], k["refunds"], k["customers"], k["purchases"]) == (pytest.approx(100.77),
                                                                                  pytest.approx(20.76), 2, 2)


def test_whitespace_file_without_header_and_a_short_line(tmp_path):
    p = tmp_path / "log.txt"
    p.write_text("a 2024-01-05 10\nb 2024-01-06  20\n")
    ds = open_(p, source__csv__delimiter="whitespace", source__csv__header=False, columns__customer_id="column0",
               columns__paid_at="column1", columns__amount="column2")
    assert period_kpis(ds, Q1)["gross_revenue"] == pytest.approx(30.0)
    p.write_text("\n  \ncustomer_id paid_at amount\na 2024-01-05 10\nb 2024-01-06  20\n")  # blank lines first
    assert period_kpis(open_(p, source__csv__delimiter="whitespace"), Q1)["gross_revenue"] == pytest.approx(30.0)
    p.write_text("customer_id paid_at amount\na 2024-01-05 10\nb 2024-01-06\n")
    with pytest.raises(DataError, match=r"1 line\(s\) have another number of fields than the 3"):
        open_(p, source__csv__delimiter="whitespace")


# --------------------------------------------------------------------------------------------
# the README's line-item recipe, end to end, on a line-item export made for the tests
# (tests/data/line_items.csv: 347 invoice lines in the UCI "Online Retail" layout, 59 of them
# without a CustomerID, 20 cancellations as C-invoices with negative quantities)

def _readme_recipe() -> str:
    from helpers import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text[text.index("<!-- line-item recipe"):]
    return after[after.index("```toml\n") + 8: after.index("\n```", after.index("```toml"))]


@pytest.mark.slow
def test_the_readme_line_item_recipe_end_to_end(tmp_path):
    import csv
    import json
    import subprocess
    import sys
    from collections import defaultdict
    from datetime import datetime

    from helpers import REPO

    data = REPO / "tests" / "data" / "line_items.csv"
    recipe = _readme_recipe()
    assert 'path = "exports/online_retail.csv"' in recipe
    cfg = tmp_path / "retail.toml"
    cfg.write_text(recipe.replace("exports/online_retail.csv", data.as_posix())
                   + f'\n[engine]\ncache_dir = "{(tmp_path / "cache").as_posix()}"\n')
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "metrics", "--period", "2024-Q1",
                        "--config", str(cfg), "--stdout"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)

    # the same numbers by hand: one payment per invoice and customer
    invoices = defaultdict(float)
    when = {}
    with data.open(newline="") as fh:
        lines = list(csv.DictReader(fh))
    for row in lines:
        key = (row["InvoiceNo"], row["CustomerID"])
        invoices[key] += int(row["Quantity"]) * float(row["UnitPrice"])
        when[key] = datetime.strptime(row["InvoiceDate"], "%m/%d/%Y %H:%M").date()
    first = {}
    for (inv, cid), amount in sorted(invoices.items(), key=lambda kv: when[kv[0]]):
        if cid and amount > 0:
            first.setdefault(cid, when[(inv, cid)])
    q1 = {k: v for k, v in invoices.items() if "2024-01-01" <= when[k].isoformat() <= "2024-03-31"}
    gross = sum(v for v in q1.values() if v > 0)
    guest = sum(v for (inv, cid), v in q1.items() if v > 0 and not cid)
    refunds = -sum(v for v in q1.values() if v < 0)
    days = defaultdict(float)
    for (inv, cid), v in q1.items():
        if cid and v > 0:
            days[(cid, when[(inv, cid)])] += v
    new = sum(v for (cid, day), v in days.items() if first[cid] == day)
    orders = {inv for (inv, cid), v in q1.items() if cid and v > 0}
    assert guest > 0 and refunds > 0 and len(orders) > 5  # the fixture has what the recipe is for

    k = doc["kpis"]
    assert k["gross_revenue"] == pytest.approx(gross)
    assert k["refunds"] == pytest.approx(refunds)
    assert k["revenue"] == pytest.approx(gross - refunds)
    assert k["revenue_guest"] == pytest.approx(guest)
    assert k["revenue_new"] == pytest.approx(new)
    assert k["revenue_new"] + k["revenue_returning"] + k["revenue_guest"] == pytest.approx(k["gross_revenue"])
    assert k["customers"] == len({cid for cid, _ in days})
    assert k["customers_new"] == len({cid for cid, day in days if first[cid] == day})
    assert k["purchases"] == len(days)
    assert k["aov"] == pytest.approx((gross - guest) / len(orders))  # per invoice of identified customers
    dq = doc["data_quality"]
    assert dq["rows_read"] == dq["rows_used"] == len(invoices) and dq["rows_dropped"] == {}
    assert dq["guest_rows"] == len({inv for inv, cid in invoices if not cid})
    assert dq["guest_revenue"] == pytest.approx(sum(v for (inv, cid), v in invoices.items() if not cid), abs=0.01)
    assert {s["segment"] for s in doc["segments"]} and doc["aov_basis"] == "order"


def test_run_details_and_data_quality_say_guest_payments():
    from retention_report.tables import data_quality_table, run_details

    html = run_details({"validation": {"on_invalid": "error", "empty_customer_id": "guest"}}, "0.1.0")
    assert "Empty customer ids" in html and ">guest<" in html
    _, doc = _guest_doc("guest")
    dq = data_quality_table(doc["data_quality"], "GBP")
    assert "Guest payments (no customer id): rows" in dq and ">4<" in dq and "£47.00" in dq


def test_the_revenue_trend_stacks_guest_payments_onto_the_gross():
    import matplotlib

    matplotlib.use("Agg")
    from retention_report import plots

    trend = pd.DataFrame({"period": ["2023-Q4", "2024-Q1"], "revenue_new": [50.0, 50.0],
                          "revenue_returning": [0.0, 50.0], "revenue_guest": [12.0, 40.0],
                          "new_revenue_share": [50 / 62, 50 / 140]})
    ax = plots.revenue_trend(trend)
    assert "€140.00" in ax.get_title()  # new + returning + guest
    assert "Guest / unidentified" in [t.get_text() for t in ax.get_legend().get_texts()]
    without = plots.revenue_trend(trend.assign(revenue_guest=None))
    assert "€100.00" in without.get_title() and len(without.get_legend().get_texts()) == 2
