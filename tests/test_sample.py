"""The sample generator: deterministic, realistic enough to exercise every metric, never malformed."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from retention_report.sample import (
    CHANNELS,
    ensure_sample,
    generate_payments,
    write_benchmark_data,
    write_sample,
)


@pytest.fixture(scope="module")
def small():
    return generate_payments(n_customers=5000, seed=3).to_pandas()


def test_same_seed_same_table_and_other_seed_differs():
    a = generate_payments(n_customers=800, seed=11)
    assert a.equals(generate_payments(n_customers=800, seed=11))
    assert not a.equals(generate_payments(n_customers=800, seed=12))


def test_columns_and_types(small):
    assert list(small.columns) == ["customer_id", "paid_at", "amount", "order_id", "cost",
                                   "channel", "country", "platform"]
    assert small.customer_id.str.fullmatch(r"C\d{7}").all()
    assert small.order_id.str.fullmatch(r"O\d{8}").all()
    assert small.notna().all().all()
    assert small.paid_at.is_monotonic_increasing


def test_every_customer_and_a_realistic_volume(small):
    assert small.customer_id.nunique() == 5000
    per_customer = len(small) / 5000
    assert 4.0 < per_customer < 6.5
    span = small.paid_at.min().date(), small.paid_at.max().date()
    assert span[0] >= dt.date(2021, 1, 1) and span[1] <= dt.date(2024, 12, 31)
    assert span[1] >= dt.date(2024, 12, 1)  # the last quarter has data: 2024-Q1 has a year ago and after


def test_refunds_point_at_an_earlier_positive_order_and_do_not_exceed_it(small):
    orders = small[small.amount > 0].set_index("order_id")
    refunds = small[small.amount < 0]
    assert 0.02 < len(refunds) / len(small) < 0.06
    original = orders.loc[refunds.order_id]
    assert (original.customer_id.to_numpy() == refunds.customer_id.to_numpy()).all()
    assert (original.paid_at.to_numpy() < refunds.paid_at.to_numpy()).all()
    assert (-refunds.amount.to_numpy() <= original.amount.to_numpy() + 1e-9).all()
    assert (refunds.cost == 0).all()


def test_same_day_second_orders_and_vouchers_exist(small):
    pos = small[small.amount > 0]
    per_day = pos.groupby([pos.customer_id, pos.paid_at.dt.date]).size()
    assert (per_day > 1).sum() > 50      # two payments on one day: one purchase
    assert (small.amount == 0).sum() > 0  # zero-amount rows: counted, never purchases
    assert not small.duplicated().any()


def test_heterogeneous_customers_and_segments(small):
    pos = small[small.amount > 0]
    purchases = pos.groupby("customer_id").paid_at.apply(lambda s: s.dt.date.nunique())
    assert (purchases == 1).mean() > 0.2       # many one-time buyers
    assert purchases.max() >= 20               # and some very loyal ones
    assert set(small.channel) == set(CHANNELS)
    assert small.country.nunique() >= 5 and small.platform.nunique() == 3
    # one channel, country, platform per customer
    assert (small.groupby("customer_id")[["channel", "country", "platform"]].nunique() == 1).all().all()
    # seasonality: December sells more than July in every year
    month = pos.groupby([pos.paid_at.dt.year, pos.paid_at.dt.month]).amount.sum()
    for year in (2022, 2023, 2024):
        assert month[(year, 12)] > month[(year, 7)]


def test_write_sample_is_atomic_and_ensure_sample_generates_once(tmp_path):
    target = tmp_path / "s" / "payments.parquet"
    write_sample(target, n_customers=300, seed=1)
    assert pq.read_table(target).num_rows > 300
    assert [p.name for p in target.parent.iterdir()] == ["payments.parquet"]  # no temp file left
    mtime = target.stat().st_mtime_ns
    path, created = ensure_sample(target)
    assert path == target and created is False and target.stat().st_mtime_ns == mtime
    other = tmp_path / "t" / "payments.parquet"
    path, created = ensure_sample(other)
    assert created is True and pq.read_table(other).num_rows > 400_000


def test_benchmark_data_chunks_have_disjoint_ids(tmp_path):
    rows = write_benchmark_data(tmp_path / "b", n_payments=30_000, seed=0, payments_per_chunk=10_000)
    parts = sorted((tmp_path / "b").glob("*.parquet"))
    assert len(parts) == 3
    tables = [pq.read_table(p).to_pandas() for p in parts]
    assert sum(len(t) for t in tables) == rows
    assert 20_000 < rows < 40_000
    ids = [set(t.customer_id) for t in tables]
    orders = [set(t.order_id[t.amount > 0]) for t in tables]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    assert not (orders[0] & orders[1]) and not (orders[1] & orders[2])
