"""Invariants on the embedded sample data for several periods, an independent pandas recomputation,
and the same numbers whichever file format the data come from (SPEC §4, issue "metric engine")."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from helpers import NOW, assert_same

from retention_report.config import load_settings
from retention_report.context import with_sample_columns
from retention_report.data import open_dataset
from retention_report.document import metrics_document
from retention_report.metrics.segments import frequency_segments
from retention_report.periods import parse_period
from retention_report.sample import ensure_sample

PERIODS = ["2022-Q3", "2023", "2024-Q1", "2024-03", "2024-W05", "2024-H2", "2024-12-15..2025-01-14"]
RATE_KEYS = ["new_revenue_share", "repeat_purchase_rate", "refund_rate", "crr", "churn_rate"]


@pytest.fixture(scope="module")
def sample_ds():
    path, _ = ensure_sample()
    settings = with_sample_columns(load_settings(None, **{"source.path": str(path)}))
    settings = settings.with_overrides(**{"source.path": str(path)})
    return open_dataset(settings, now=NOW), settings


@pytest.fixture(scope="module")
def docs(sample_ds):
    ds, settings = sample_ds
    opts = settings.metrics
    return {p: metrics_document(ds, parse_period(p), opts) for p in PERIODS}


@pytest.mark.parametrize("label", PERIODS)
def test_bridge_identity_and_counts(docs, label):
    for block in ("kpis", "previous", "year_ago"):
        k = docs[label][block]
        cs, cl, cn, nl, re_, ce = (k[x] for x in ("customers_start", "customers_churned", "customers_new",
                                                  "customers_new_lapsed", "customers_reactivated", "customers_end"))
        if "customers_churned" in docs[label]["unobservable"][block]:
            # the data begin after end − W (SPEC §4.3): nobody can have lapsed, CL = RE = NL = 0 by
            # construction, shown as null; the rest of the bridge still adds up
            assert (cl, nl, re_) == (None, None, None) and cs + cn == ce, (label, block)
            continue
        assert cs - cl + cn - nl + re_ == ce, (label, block)
        assert k["customers"] == k["customers_new"] + k["customers_returning"]
        assert 0 <= cl <= cs and 0 <= nl <= cn


@pytest.mark.parametrize("label", PERIODS)
def test_money_splits_and_rates(docs, label):
    k = docs[label]["kpis"]
    assert k["revenue_new"] + k["revenue_returning"] == pytest.approx(k["gross_revenue"], abs=0.01)
    assert k["gross_revenue"] - k["refunds"] == pytest.approx(k["revenue"], abs=0.01)
    for key in RATE_KEYS:
        v = k[key]
        assert v is None or 0.0 <= v <= 1.0, (key, v)
    if k["customers_start"]:
        # CRR = 100 − churn + RE/CS (SPEC §4.3), as fractions
        assert k["crr"] == pytest.approx(1 - k["churn_rate"] + k["customers_reactivated"] / k["customers_start"])


@pytest.mark.parametrize("label", PERIODS)
def test_segment_shares_sum_to_one(docs, label):
    segs = docs[label]["segments"]
    if docs[label]["kpis"]["gross_revenue"]:
        assert sum(s["revenue_share"] for s in segs) == pytest.approx(1.0, abs=1e-9)
        assert sum(s["revenue"] for s in segs) == pytest.approx(docs[label]["kpis"]["gross_revenue"], abs=0.01)


@pytest.mark.parametrize("label", PERIODS)
def test_cohort_matrices_shape_and_monotone(docs, label):
    co = docs[label]["cohorts"]
    for row in co["retention"]:
        if row and row[0] is not None:
            assert row[0] == 1.0
        assert all(v is None or 0.0 <= v <= 1.0 for v in row)
    for row in co["revenue_retention"]:
        if row and row[0] is not None:
            assert row[0] == 1.0
    for row in co["cumulative_revenue_per_customer"]:
        seen = [v for v in row if v is not None]
        assert seen == sorted(seen), row
        # missing cells only at the end of a row (not yet observable), never in the middle
        first_none = next((i for i, v in enumerate(row) if v is None), len(row))
        assert all(v is None for v in row[first_none:])


BRIDGE_PARTS = ("previous", "new", "reactivated", "expansion", "contraction", "lost", "current")


def _bridge_adds_up(b, gross_now, gross_before):
    """SPEC §4.7: previous + new + reactivated + expansion − contraction − lost = current, to the
    last representable digit (the engine adds decimals exactly; JSON holds each part as a float)."""
    assert all(b[x] is not None and b[x] >= 0 for x in BRIDGE_PARTS), b
    lhs = b["previous"] + b["new"] + b["reactivated"] + b["expansion"] - b["contraction"] - b["lost"]
    assert lhs == pytest.approx(b["current"], rel=1e-12, abs=1e-9), b
    assert b["current"] == pytest.approx(gross_now, rel=1e-12, abs=1e-9)
    assert b["previous"] == pytest.approx(gross_before, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("label", PERIODS)
def test_revenue_bridge_identity(docs, label):
    d = docs[label]
    _bridge_adds_up(d["revenue_bridge"], d["kpis"]["gross_revenue"], d["previous"]["gross_revenue"])


def _pandas_bridge(frame, start, end, prev_start, prev_end):
    """The most direct pandas reading of SPEC §4.7."""
    pos = frame[frame.amount > 0].assign(day=frame.paid_at.dt.normalize())
    acquired = pos.groupby("customer_id").day.min()
    cur = pos[(pos.day >= start) & (pos.day <= end)].groupby("customer_id").amount.sum()
    prev = pos[(pos.day >= prev_start) & (pos.day <= prev_end)].groupby("customer_id").amount.sum()
    both = pd.concat([prev.rename("prev"), cur.rename("cur")], axis=1).fillna(0.0)
    is_new = both.index.map(lambda c: start <= acquired[c] <= end).to_numpy(bool)
    diff = both.cur - both.prev
    in_both = (both.prev > 0) & (both.cur > 0)
    return {
        "previous": both.prev.sum(), "current": both.cur.sum(), "new": both.cur[is_new].sum(),
        "reactivated": both.cur[~is_new & (both.prev == 0)].sum(), "lost": both.prev[both.cur == 0].sum(),
        "expansion": diff[in_both & (diff > 0)].sum(), "contraction": -diff[in_both & (diff < 0)].sum(),
    }


@pytest.mark.parametrize("seed", range(6))
def test_revenue_bridge_on_random_logs(seed):
    """Random logs (refunds, zero rows, several payments a day, amounts in cents and in odd fractions):
    the identity holds and each part equals a pandas recomputation."""
    from helpers import make_dataset

    from retention_report.metrics.revenue import revenue_bridge

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    ids = rng.integers(0, max(5, n // 4), n).astype(str)
    days = pd.Timestamp("2023-06-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    paid_at = days + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    amount = np.round(rng.gamma(2.0, 40.0, n), int(rng.integers(0, 4)))
    amount[rng.random(n) < 0.1] *= -1  # refunds
    amount[rng.random(n) < 0.03] = 0.0
    frame = pd.DataFrame({"customer_id": ids, "paid_at": paid_at, "amount": amount})
    ds = make_dataset(frame)
    period = parse_period(["2024-Q1", "2024-02", "2023-12-10..2024-01-20", "2024-W03"][seed % 4])
    prev = period.previous()
    b = revenue_bridge(ds.daily, ds.customers, period.start, period.end, prev.start, prev.end)
    assert b.previous + b.new + b.reactivated + b.expansion - b.contraction - b.lost == b.current  # Decimal: exact
    got = b.to_dict()
    ts = pd.Timestamp
    want = _pandas_bridge(frame, ts(period.start), ts(period.end), ts(prev.start), ts(prev.end))
    for key in BRIDGE_PARTS:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-6), key
    _bridge_adds_up(got, want["current"], want["previous"])


def test_incomplete_period_flagged(docs):
    assert docs["2024-12-15..2025-01-14"]["complete"] is False
    assert docs["2024-Q1"]["complete"] is True


# ------------------------------------------------------------------ independent recomputation in pandas

@pytest.fixture(scope="module")
def raw():
    path, _ = ensure_sample()
    df = pd.read_parquet(path)
    df["day"] = df["paid_at"].dt.normalize()
    return df


def test_pandas_cross_check_2024_q1(docs, raw):
    """The most direct pandas reading of SPEC §4.1/§4.3/§4.5 for 2024-Q1, compared with the engine."""
    k = docs["2024-Q1"]["kpis"]
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-03-31")
    in_p = raw[(raw.day >= start) & (raw.day <= end)]
    pos = raw[raw.amount > 0]
    # purchases: positive payments merged per customer and day
    purchases = pos.groupby(["customer_id", "day"], as_index=False).amount.sum()
    first_day = purchases.groupby("customer_id").day.min().rename("acquired")
    purchases = purchases.join(first_day, on="customer_id")
    p_in = purchases[(purchases.day >= start) & (purchases.day <= end)]

    assert k["gross_revenue"] == pytest.approx(in_p.amount[in_p.amount > 0].sum(), abs=0.01)
    assert k["refunds"] == pytest.approx(-in_p.amount[in_p.amount < 0].sum(), abs=0.01)
    assert k["revenue_new"] == pytest.approx(p_in.amount[p_in.day == p_in.acquired].sum(), abs=0.01)
    assert k["purchases"] == len(p_in)
    assert k["customers_new"] == int(((first_day >= start) & (first_day <= end)).sum())
    assert k["customers_returning"] == p_in[p_in.acquired < start].customer_id.nunique()
    assert k["customers"] == p_in.customer_id.nunique()
    assert k["repeat_purchase_rate"] == pytest.approx((p_in.groupby("customer_id").size() >= 2).mean())

    # active at d: a purchase in (d − 365 days, d]
    def active(d):
        w = purchases[(purchases.day > d - pd.Timedelta(days=365)) & (purchases.day <= d)]
        return set(w.customer_id)

    s, e = active(start - pd.Timedelta(days=1)), active(end)
    new = set(first_day[(first_day >= start) & (first_day <= end)].index)
    assert k["customers_start"] == len(s)
    assert k["customers_end"] == len(e)
    assert k["customers_churned"] == len(s - e)
    assert k["customers_reactivated"] == len(e - s - new)
    assert k["churn_rate"] == pytest.approx(len(s - e) / len(s))

    # cohort retention of the April 2023 cohort, month 3 (July 2023)
    co = docs["2024-Q1"]["cohorts"]
    i = co["cohort"].index("2023-04-01")
    cohort = set(first_day[(first_day >= "2023-04-01") & (first_day < "2023-05-01")].index)
    july = set(purchases[(purchases.day >= "2023-07-01") & (purchases.day < "2023-08-01")].customer_id)
    assert co["size"][i] == len(cohort)
    assert co["retention"][i][3] == pytest.approx(len(cohort & july) / len(cohort))


def test_pandas_cross_check_frequency_segments(sample_ds, raw):
    """Frequent/medium/rare by purchases per month over the 12 months up to the end of 2024-Q1."""
    ds, settings = sample_ds
    seg = frequency_segments(ds.daily, ds.customers, parse_period("2024-Q1"), window_days=365)
    pos = raw[raw.amount > 0]
    purchases = pos.groupby(["customer_id", "day"], as_index=False).amount.sum()
    table = seg.table
    assert int(table.customers.sum()) == purchases.customer_id.nunique() - int(
        (purchases.groupby("customer_id").day.min() > "2024-03-31").sum())
    gross = purchases[(purchases.day >= "2024-01-01") & (purchases.day <= "2024-03-31")].amount.sum()
    assert table.revenue.sum() == pytest.approx(gross, abs=0.01)


# ------------------------------------------------------------------------ the same from every format

@pytest.fixture(scope="module")
def formats(tmp_path_factory, sample_frame):
    import duckdb

    d = tmp_path_factory.mktemp("formats")
    sample_frame.to_parquet(d / "p.parquet", index=False)
    csv = sample_frame.copy()
    csv["paid_at"] = csv["paid_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    csv.to_csv(d / "p.csv", index=False)
    con = duckdb.connect(str(d / "p.duckdb"))
    con.register("frame", sample_frame)
    con.execute("CREATE TABLE payments AS SELECT * FROM frame")
    con.close()
    return d


def _doc(path, label, **extra):
    s = load_settings(None, **{"source.path": str(path), "columns.order_id": "order_id", "columns.cost": "cost",
                               "columns.segments": ["channel", "country"], **extra})
    ds = open_dataset(s, now=NOW)
    doc = metrics_document(ds, parse_period(label), s.metrics)
    doc.pop("source", None)
    doc.pop("generated_at", None)
    doc["data_quality"].pop("derived_tables_cached_at", None)  # a second load of a file is warm
    return doc


@pytest.mark.slow
@pytest.mark.parametrize("label", ["2024-Q1", "2023-11"])
def test_same_metrics_from_csv_parquet_and_duckdb(formats, label):
    parquet = _doc(formats / "p.parquet", label)
    csv = _doc(formats / "p.csv", label)
    duck = _doc(formats / "p.duckdb", label, **{"source.table": "payments"})
    for other in (csv, duck):
        assert_same(parquet, other)
    assert parquet["kpis"]["customers"] > 100  # a real comparison, not two empty documents


def test_dates_in_documents_are_iso(docs):
    doc = docs["2024-Q1"]
    assert doc["start"] == "2024-01-01" and doc["end"] == "2024-03-31"
    assert date.fromisoformat(doc["data_quality"]["first_payment"][:10]) <= date(2021, 1, 2)
    assert date.fromisoformat(doc["data_quality"]["last_payment"][:10]) >= date(2024, 12, 31) - timedelta(days=1)
    assert doc["data_quality"]["rows_read"] == doc["data_quality"]["rows_used"] > 500_000
    assert not np.isnan(doc["kpis"]["ltv"])
