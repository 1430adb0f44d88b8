"""Metric families against tiny payment logs whose expected numbers are counted by hand here."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from helpers import SALES, make_dataset

from retention_report.config import MetricSettings
from retention_report.document import metrics_document
from retention_report.metrics import (
    KPI_KEYS,
    cohort_matrices,
    customer_bridge,
    frequency_segments,
    lifetime_from_churn,
    ltv,
    new_vs_returning,
    period_kpis,
    time_to_second_purchase,
)
from retention_report.metrics.flow import CustomerBridge
from retention_report.periods import parse_period

Q1 = parse_period("2024-Q1")
approx = pytest.approx

# --------------------------------------------------------------------------------------------
# §4.1 new vs returning, money, purchases
# SALES (tests/helpers.py): a bought before and twice on 2024-01-10 (one purchase of 80 = 50 + 30); b first
# 2024-02-01 (200), again 03-15 (20), refund 20 on 03-20; c only in 2023; d at 23:59:59 on 03-31; e a refund only


@pytest.fixture(scope="module")
def sales_ds():
    return make_dataset(SALES)


def test_money_and_counts(sales_ds):
    k = period_kpis(sales_ds, Q1)
    assert k["gross_revenue"] == approx(80 + 200 + 20 + 5)  # positive payments in Q1
    assert k["refunds"] == approx(20 + 5)  # b's refund and e's refund, as a positive number
    assert k["revenue"] == approx(305 - 25)
    assert k["revenue_new"] == approx(200 + 5)  # first purchases ever: b on 02-01, d on 03-31
    assert k["revenue_returning"] == approx(80 + 20)  # a's purchase, b's second purchase
    assert k["new_revenue_share"] == approx(205 / 305)
    assert k["purchases"] == 4  # a: 1 (two payments merged), b: 2, d: 1
    assert k["customers"] == 3  # a, b, d (e only had a refund)
    assert k["customers_new"] == 2  # b, d
    assert k["customers_returning"] == 1  # a
    assert k["aov"] == approx(305 / 4)
    assert k["purchase_frequency"] == approx(4 / 3)
    assert k["repeat_purchase_rate"] == approx(1 / 3)  # only b has 2 purchases in Q1
    assert k["refund_rate"] == approx(25 / 305)
    assert k["margin"] is None  # no cost column


def test_new_vs_returning_table(sales_ds):
    t = new_vs_returning(sales_ds.daily, sales_ds.customers, Q1)
    assert t.loc["new", "revenue"] == approx(205)
    assert t.loc["returning", "revenue"] == approx(100)
    assert t.loc["total", "revenue"] == approx(305)
    assert list(t["purchases"]) == [2, 2, 4]
    assert list(t["payments"]) == [2, 3, 5]  # a's purchase has two payments
    assert list(t["customers"]) == [2, 1, 3]
    assert t.loc["new", "aov"] == approx(102.5)
    assert t.loc["new", "revenue_share"] + t.loc["returning", "revenue_share"] == approx(1.0)


def test_split_basis_customer(sales_ds):
    opts = MetricSettings(split_basis="customer")
    k = period_kpis(sales_ds, Q1, opts)
    assert k["revenue_new"] == approx(200 + 20 + 5)  # all of b's Q1 purchases count as new
    assert k["revenue_returning"] == approx(80)
    assert k["customers_new"] == 2


def test_time_to_second_purchase(sales_ds):
    sp = time_to_second_purchase(sales_ds.customers, Q1.end)
    # a: 2023-11-05 -> 2024-01-10 = 66 days; b: 2024-02-01 -> 2024-03-15 = 43 days
    assert sp.customers == 2
    assert sp.median_days == approx((43 + 66) / 2)
    assert sp.within_30 == 0
    assert sp.within_90 == 1
    # before b's second purchase only a counts
    assert time_to_second_purchase(sales_ds.customers, date(2024, 3, 14)).median_days == 66


# --------------------------------------------------------------------------------------------
# §4.3 bridge with a 30-day window: all six terms non-zero
BRIDGE = [
    ("p", "2023-12-10", 10.0), ("p", "2024-03-20", 10.0),  # active at start and end
    ("q", "2023-12-15", 10.0),  # churned
    ("r", "2023-06-01", 10.0), ("r", "2024-03-05", 10.0),  # reactivated
    ("s", "2024-01-15", 10.0),  # new, lapsed by the end (NL)
    ("t", "2024-02-20", 10.0), ("t", "2024-03-25", 10.0),  # new, active at end
    ("u", "2023-12-20", 10.0), ("u", "2024-02-10", 10.0),  # churned although it bought in Q1
    ("v", "2023-11-01", 10.0),  # inactive all along
]


def test_bridge_short_window():
    ds = make_dataset(BRIDGE)
    b = customer_bridge(ds.daily, ds.customers, Q1.start, Q1.end, window_days=30)
    # CS: purchase in [2023-12-02, 2023-12-31] -> p, q, u; CE: in [2024-03-02, 2024-03-31] -> p, r, t
    assert (b.start, b.churned, b.new, b.new_lapsed, b.reactivated, b.end) == (3, 2, 2, 1, 1, 3)
    assert b.start - b.churned + b.new - b.new_lapsed + b.reactivated == b.end
    assert b.churn_rate == approx(2 / 3)
    assert b.crr == approx((3 - 2) / 3)
    assert b.crr == approx(1 - b.churn_rate + (b.reactivated - b.new_lapsed) / b.start)


def test_bridge_year_window():
    ds = make_dataset(BRIDGE)
    b = customer_bridge(ds.daily, ds.customers, Q1.start, Q1.end, window_days=365)
    # CS: purchase in 2023 -> p, q, r, u, v; CE: in [2023-04-02, 2024-03-31] -> all seven
    assert (b.start, b.churned, b.new, b.new_lapsed, b.reactivated, b.end) == (5, 0, 2, 0, 0, 7)
    assert b.crr == approx((7 - 2) / 5)


@pytest.mark.parametrize("window", [30, 90, 365, 731])
def test_bridges_of_several_periods_in_one_pass(window):
    """customer_bridges (one grouped pass, RE from the identity) gives each period's bridge exactly
    as customer_bridge does — also for periods longer than the window (then with NL) and repeats."""
    from retention_report.metrics.flow import customer_bridges

    ds = make_dataset(BRIDGE + SALES)
    labels = ["2024-Q1", "2023-Q4", "2023-Q1", "2024-01", "2023-12", "2023", "2024-W05", "2024-Q1"]
    ranges = [(p.start, p.end) for p in map(parse_period, labels)]
    want = [customer_bridge(ds.daily, ds.customers, s, e, window_days=window) for s, e in ranges]
    assert customer_bridges(ds.daily, ds.customers, ranges, window_days=window) == want
    short = [r for r, label in zip(ranges, labels, strict=True) if label != "2023"]
    assert customer_bridges(ds.daily, ds.customers, short, window_days=window) == [
        w for w, label in zip(want, labels, strict=True) if label != "2023"]
    assert customer_bridges(ds.daily, ds.customers, [], window_days=window) == []


# --------------------------------------------------------------------------------------------
# §4.7 revenue bridge: 2023-Q4 -> 2024-Q1, every category present, counted by hand
REVENUE_BRIDGE = [
    ("n", "2024-02-01 09:00", 100.0), ("n", "2024-03-01 09:00", 50.0),  # new: 150
    ("r", "2023-01-10", 40.0), ("r", "2024-01-05", 70.0),  # acquired before, not in Q4: reactivated 70
    ("l", "2023-11-01", 60.0),  # lost 60
    ("e", "2023-10-10", 100.0), ("e", "2024-02-10 09:00", 100.0), ("e", "2024-02-10 17:00", 30.0),
    ("e", "2024-03-10", 20.0),  # 100 -> 150: expansion 50 (two payments on one day are one purchase)
    ("c", "2023-12-01", 150.0), ("c", "2023-12-20", 50.0), ("c", "2024-01-15", 80.0),
    ("c", "2024-01-20", -30.0),  # 200 -> 80 gross (the refund is not in the bridge): contraction 120
    ("s", "2023-11-11", 50.0), ("s", "2024-01-11", 50.0),  # same in both: in neither part
    ("x", "2023-10-01", 30.0), ("x", "2024-01-03", -30.0),  # only a refund in Q1: lost 30
    ("z", "2024-02-02", 0.0),  # a zero payment is not a purchase: not a new customer
]


def test_revenue_bridge_by_hand():
    from retention_report.metrics.revenue import revenue_bridge

    ds = make_dataset(REVENUE_BRIDGE)
    prev = Q1.previous()
    b = revenue_bridge(ds.daily, ds.customers, Q1.start, Q1.end, prev.start, prev.end)
    got = b.to_dict()
    assert list(got) == ["previous", "new", "reactivated", "expansion", "contraction", "lost", "current"]
    assert got == {"previous": 60 + 100 + 200 + 50 + 30, "new": 150, "reactivated": 70, "expansion": 50,
                   "contraction": 120, "lost": 60 + 30, "current": 150 + 70 + 150 + 80 + 50}
    assert b.previous + b.new + b.reactivated + b.expansion - b.contraction - b.lost == b.current
    k = period_kpis(ds, Q1)
    assert got["current"] == approx(k["gross_revenue"])  # the same gross revenue as the KPI
    assert got["previous"] == approx(period_kpis(ds, prev)["gross_revenue"])


def test_revenue_bridge_in_metrics_document():
    ds = make_dataset(REVENUE_BRIDGE)
    doc = metrics_document(ds, Q1)
    assert doc["revenue_bridge"] == {"previous": 440.0, "new": 150.0, "reactivated": 70.0, "expansion": 50.0,
                                     "contraction": 120.0, "lost": 90.0, "current": 500.0}


def test_revenue_bridge_without_previous_data():
    from retention_report.metrics.revenue import revenue_bridge

    ds = make_dataset([("a", "2024-01-10", 10.0), ("b", "2024-03-01", 5.5)])
    prev = Q1.previous()
    b = revenue_bridge(ds.daily, ds.customers, Q1.start, Q1.end, prev.start, prev.end).to_dict()
    assert b == {"previous": 0.0, "new": 15.5, "reactivated": 0.0, "expansion": 0.0, "contraction": 0.0,
                 "lost": 0.0, "current": 15.5}


# --------------------------------------------------------------------------------------------
# §4.2 frequency segments
SEGMENTS = (
    [("x1", f"{d:%Y-%m-%d}", 10.0) for d in pd.date_range("2023-04-15", "2024-03-15", freq="MS") + pd.Timedelta(days=14)]
    + [("y1", d, 100.0 if d.startswith("2024") else 10.0) for d in ("2023-05-01", "2023-09-01", "2023-12-01", "2024-02-01")]
    + [("z1", "2022-05-01", 10.0), ("z1", "2024-01-20", 300.0)]
    + [("n1", "2024-02-01", 50.0)]
    + [("l1", "2022-01-01", 10.0), ("l2", "2023-03-01", 10.0)]
)


@pytest.mark.parametrize("thresholds", [None, [0.2, 0.5]])
def test_frequency_segments(thresholds):
    ds = make_dataset(SEGMENTS)
    seg = frequency_segments(ds.daily, ds.customers, Q1, 365, 12, thresholds)
    t = seg.table
    # x1: 12 purchases in the lookback (1.0/month), y1: 4 (0.33), z1: 1 (0.083)
    assert list(t.index) == ["frequent", "medium", "rare", "new", "lapsed"]
    assert list(t["customers"]) == [1, 1, 1, 1, 2]
    assert list(t["purchases"]) == [3, 1, 1, 1, 0]
    assert list(t["revenue"]) == approx([30, 100, 300, 50, 0])
    assert list(t["revenue_share"]) == approx([30 / 480, 100 / 480, 300 / 480, 50 / 480, 0])
    assert t["revenue_share"].sum() == approx(1.0)
    assert t.loc["rare", "aov"] == approx(300)
    assert math.isnan(t.loc["lapsed", "aov"])
    if thresholds is None:  # terciles of [1/12, 4/12, 12/12] by rank
        assert (seg.low, seg.high) == approx((1 / 12, 4 / 12))
        assert seg.data_driven


# --------------------------------------------------------------------------------------------
# §4.4 cohorts: 3 monthly cohorts, data ending mid-March (partial bucket, unobservable cells)
COHORTS = [
    ("j1", "2024-01-05", 10.0), ("j1", "2024-02-10", 20.0), ("j1", "2024-03-15", 5.0),
    ("j2", "2024-01-20", 30.0),
    ("j3", "2024-01-25", 40.0), ("j3", "2024-03-01", 10.0),
    ("f1", "2024-02-03", 50.0), ("f1", "2024-02-20", 10.0),
    ("f2", "2024-02-14", 20.0), ("f2", "2024-03-20", 20.0),
    ("m1", "2024-03-10", 100.0),
    ("o1", "2023-12-01", 10.0), ("o1", "2024-01-15", 10.0),  # older cohort, not shown
]


def test_cohort_matrices():
    ds = make_dataset(COHORTS)
    co = cohort_matrices(ds.daily, ds.customers, date(2024, 3, 31), ds.last_day, "month", 3)
    nan = float("nan")
    assert [d.isoformat() for d in co.size.index] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert list(co.size) == [3, 2, 1]
    pd.testing.assert_frame_equal(
        co.retention, pd.DataFrame([[1.0, 1 / 3, 2 / 3], [1.0, 1 / 2, nan], [1.0, nan, nan]],
                                   index=co.size.index, columns=[0, 1, 2]), check_names=False)
    pd.testing.assert_frame_equal(
        co.revenue_retention, pd.DataFrame([[1.0, 20 / 80, 15 / 80], [1.0, 20 / 80, nan], [1.0, nan, nan]],
                                           index=co.size.index, columns=[0, 1, 2]), check_names=False)
    pd.testing.assert_frame_equal(
        co.cumulative_revenue_per_customer,
        pd.DataFrame([[80 / 3, 100 / 3, 115 / 3], [40.0, 50.0, nan], [100.0, nan, nan]],
                     index=co.size.index, columns=[0, 1, 2]), check_names=False)
    # the data end on 2024-03-20: March is a partial bucket
    assert co.partial_bucket == date(2024, 3, 1)
    assert co.partial.values.tolist() == [[False, False, True], [False, True, False], [True, False, False]]
    assert list(co.lifetime_repeat_rate) == approx([2 / 3, 1.0, 0.0])
    js = co.to_json()
    assert js["retention"][1][2] is None  # unobservable -> null, never 0


def test_weekly_cohorts():
    ds = make_dataset([("w1", "2024-01-03", 10.0), ("w1", "2024-01-10", 10.0), ("w2", "2024-01-09", 5.0)])
    co = cohort_matrices(ds.daily, ds.customers, date(2024, 1, 14), ds.last_day, "week", 2)
    assert [d.isoformat() for d in co.size.index] == ["2024-01-01", "2024-01-08"]  # ISO weeks (Mondays)
    assert co.retention.iloc[0].tolist() == [1.0, 1.0]
    assert co.retention.iloc[1, 0] == 1.0 and math.isnan(co.retention.iloc[1, 1])
    assert co.partial_bucket == date(2024, 1, 8)  # data end on Wednesday 2024-01-10


# --------------------------------------------------------------------------------------------
# §4.5 LTV and the worked examples of SPEC §7


def test_spec7_churn_and_retention_examples():
    b = CustomerBridge(start=1000, churned=50, new=0, new_lapsed=0, reactivated=0, end=950)
    assert b.churn_rate == approx(0.05)  # "1000 customers at start, 50 stopped -> churn 5%"
    r = CustomerBridge(start=100, churned=20, new=0, new_lapsed=0, reactivated=0, end=80)
    assert r.crr == approx(0.80)  # "100 at start of year, 80 remain at end (no new) -> 80%"


def test_spec7_ltv_examples():
    days = parse_period("2024").days  # 366
    # "AOV $100, 2 purchases a year, 3-year lifetime -> LTV = 600"
    assert ltv(100, 2 * days / 365.25, 3, days) == approx(600)
    # "50 EUR a month for 24 months on average -> 1200 EUR": AOV 50, 12 purchases a year, 2 years
    month = parse_period("2024-03").days
    assert ltv(50, 12 * month / 365.25, 2, month) == approx(1200)


def test_spec7_repeat_purchase_rate():
    # "20 of 100 customers ordered again within the year -> 20%"
    rows = [(f"c{i}", "2024-02-01", 10.0) for i in range(100)]
    rows += [(f"c{i}", "2024-09-01", 10.0) for i in range(20)]
    ds = make_dataset(rows)
    assert period_kpis(ds, parse_period("2024"))["repeat_purchase_rate"] == approx(0.20)


def test_lifetime_from_churn():
    # quarterly churn 10% -> annual 1 - 0.9^(365.25/91); AL = 1 / annual churn
    annual = 1 - 0.9 ** (365.25 / 91)
    assert lifetime_from_churn(0.10, 91) == approx(1 / annual)
    assert lifetime_from_churn(0.0, 91) is None  # no churn: undefined, never infinite
    assert lifetime_from_churn(None, 91) is None
    assert lifetime_from_churn(1.0, 91) == approx(1.0)


def test_ltv_kpi_from_data(sales_ds):
    k = period_kpis(sales_ds, Q1)
    # CS = a, c (purchases in 2023); c churned -> churn 1/2 in a 91-day quarter
    assert k["churn_rate"] == approx(0.5)
    al = 1 / (1 - 0.5 ** (365.25 / 91))
    assert k["avg_lifetime_years"] == approx(al)
    assert k["ltv"] == approx((305 / 4) * (4 / 3) * (365.25 / 91) * al)


def test_observed_lifetime():
    # lapsed at 2024-03-31 (W = 365): l1 (2021-01-01 .. 2022-01-01, 365 days), l2 (one purchase, 0 days)
    rows = [("l1", "2021-01-01", 10.0), ("l1", "2022-01-01", 10.0), ("l2", "2022-06-01", 10.0),
            ("a", "2024-01-10", 10.0)]
    ds = make_dataset(rows)
    k = period_kpis(ds, Q1, MetricSettings(lifetime_method="observed"))
    assert k["avg_lifetime_years"] == approx((365 + 0) / 2 / 365.25)


# --------------------------------------------------------------------------------------------
# edge cases with defined behaviour


def test_period_without_payments():
    ds = make_dataset([("a", "2023-05-01", 10.0)])
    doc = metrics_document(ds, parse_period("2025-Q1"))
    k = doc["kpis"]
    assert set(k) == set(KPI_KEYS)
    assert (k["revenue"], k["customers"], k["purchases"]) == (0, 0, 0)
    assert k["aov"] is None and k["purchase_frequency"] is None and k["new_revenue_share"] is None
    assert k["customers_start"] == 0 and k["churn_rate"] is None and k["crr"] is None and k["ltv"] is None
    assert doc["complete"] is False  # the data end before the period does


def test_period_before_first_payment():
    ds = make_dataset([("a", "2023-05-01", 10.0)])
    doc = metrics_document(ds, parse_period("2020-Q1"))
    assert doc["complete"] is True
    assert doc["kpis"]["revenue"] == 0
    assert all(v is None for row in doc["cohorts"]["retention"] for v in row)


def test_refunds_larger_than_sales_and_refund_only_customer():
    ds = make_dataset([("a", "2023-12-20", 100.0), ("a", "2024-01-05", -150.0), ("b", "2024-01-10", 20.0),
                       ("z", "2024-02-01", -7.0)])
    k = period_kpis(ds, Q1)
    assert k["gross_revenue"] == approx(20)
    assert k["refunds"] == approx(157)
    assert k["revenue"] == approx(-137)  # net revenue can be negative
    assert k["refund_rate"] == approx(157 / 20)  # not capped: refunds exceed sales
    assert k["customers"] == 1  # a and z only had refunds in Q1
    assert ds.customers.count().execute() == 2  # z never became a customer


def test_single_customer():
    ds = make_dataset([("solo", "2024-01-10", 10.0), ("solo", "2024-02-10", 30.0)])
    k = period_kpis(ds, Q1)
    assert (k["customers"], k["customers_new"], k["purchases"]) == (1, 1, 2)
    assert k["repeat_purchase_rate"] == 1.0
    assert k["customers_start"] == 0 and k["churn_rate"] is None and k["ltv"] is None  # CS = 0
    # two months of data, a 365-day window: gaps longer than the data cannot be seen yet, so the
    # median is structural (SPEC §4.3 observability) — with a 30-day window it is the 31 days seen
    assert k["median_days_to_second_purchase"] is None
    ds = make_dataset([("solo", "2024-01-10", 10.0), ("solo", "2024-02-10", 30.0)],
                      metrics__activity_window_days=30)
    assert period_kpis(ds, Q1, ds.settings.metrics)["median_days_to_second_purchase"] == 31


def test_time_zone_and_boundaries():
    rows = [
        ("k1", "2024-03-31T21:59:59+00:00", 10.0),  # 23:59:59 in Berlin (CEST): last second of Q1
        ("k2", "2024-03-31T22:00:00+00:00", 20.0),  # 00:00 on 1 April in Berlin: Q2
        ("k3", "2023-12-31T23:30:00+00:00", 40.0),  # 00:30 on 1 January in Berlin: Q1
        ("k4", "2024-03-31 23:59:59", 80.0),  # naive: already Berlin time
        ("k5", "2024-01-01 00:00:00", 160.0),  # naive: first second of Q1
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "paid_at", "amount"])  # paid_at stays text
    ds = make_dataset(frame, timezone="Europe/Berlin")
    assert period_kpis(ds, Q1)["gross_revenue"] == approx(10 + 40 + 80 + 160)
    assert period_kpis(ds, parse_period("2024-Q2"))["gross_revenue"] == approx(20)
    assert period_kpis(ds, parse_period("2023-Q4"))["gross_revenue"] == 0
    # the same instants in UTC: k3 falls in 2023
    ds_utc = make_dataset(frame)
    assert period_kpis(ds_utc, parse_period("2023-Q4"))["gross_revenue"] == approx(40)


@pytest.mark.parametrize(
    ("rows", "gross", "refunds", "purchases"),
    [
        # two identical rows (same second, same amount): both are payments (SPEC §2)
        ([("a", "2024-01-10 10:00", 10.0), ("a", "2024-01-10 10:00", 10.0), ("b", "2024-01-11", 5.0)], 25, 0, 2),
        # date-only log: the same item bought twice on one day, and another item
        ([("a", "2024-01-10", 20.0), ("a", "2024-01-10", 20.0), ("a", "2024-01-10", 30.0), ("b", "2024-01-10", 20.0)],
         90, 0, 2),
        # a refund booked twice is two refunds
        ([("a", "2024-01-10 09:00", 50.0), ("a", "2024-01-12 10:00", -8.0), ("a", "2024-01-12 10:00", -8.0)],
         50, 16, 1),
        # three copies of one payment
        ([("a", "2024-01-10 09:00", 10.0)] * 3 + [("b", "2024-01-11 09:00", 1.0)], 31, 0, 2),
    ],
    ids=["same-second", "date-only", "refund-twice", "three-copies"],
)
def test_identical_rows_are_payments(rows, gross, refunds, purchases):
    """Without a payment_id nothing is a duplicate: every row counts, in both validation modes."""
    for mode in ("error", "drop"):
        ds = make_dataset(rows, validation__on_invalid=mode)
        assert ds.quality.rows_dropped == {}
        assert ds.quality.rows_used == ds.quality.rows_read == len(rows)
        k = period_kpis(ds, Q1)
        assert k["gross_revenue"] == approx(gross)
        assert k["refunds"] == approx(refunds)
        assert k["purchases"] == purchases


def test_payment_id_double_exports_leave_the_metrics_of_the_clean_log():
    rows = [("p1", "a", "2024-01-10 10:00", 10.0), ("p1", "a", "2024-01-10 10:00", 10.0),
            ("p2", "a", "2024-01-12 10:00", -4.0), ("p2", "a", "2024-01-12 10:00", -4.0),
            ("p3", "b", "2024-02-01 09:00", 7.0)]
    cols = ("payment_id", "customer_id", "paid_at", "amount")
    ds = make_dataset(rows, cols, columns__payment_id="payment_id")
    assert ds.quality.rows_dropped == {"duplicate_payment_id": 2}
    clean = make_dataset([rows[0], rows[2], rows[4]], cols, columns__payment_id="payment_id")
    assert period_kpis(ds, Q1) == period_kpis(clean, Q1)
    assert period_kpis(ds, Q1)["gross_revenue"] == approx(17) and period_kpis(ds, Q1)["refunds"] == approx(4)


def test_metrics_document_shape(sales_ds):
    doc = metrics_document(sales_ds, Q1)
    assert doc["period"] == "2024-Q1" and doc["start"] == "2024-01-01" and doc["end"] == "2024-03-31"
    assert doc["complete"] is True
    for block in ("kpis", "previous", "year_ago"):
        assert list(doc[block]) == KPI_KEYS
    assert doc["previous_period"]["period"] == "2023-Q4"
    assert doc["year_ago_period"]["period"] == "2023-Q1"
    assert doc["previous"]["revenue"] == approx(100)  # a's purchase on 2023-11-05
    assert doc["year_ago"]["revenue"] == approx(10)  # c on 2023-01-01
    assert set(doc["cohorts"]) >= {"grain", "cohort", "size", "retention", "revenue_retention",
                                   "cumulative_revenue_per_customer"}
    assert [s["segment"] for s in doc["segments"]] == ["frequent", "medium", "rare", "new", "lapsed"]
    assert set(doc["segments"][0]) >= {"segment", "customers", "revenue", "purchases", "aov", "revenue_share"}
    assert set(doc["data_quality"]) == {"rows_read", "rows_used", "rows_dropped", "first_payment", "last_payment"}
    assert 3 <= len(doc["findings"]) <= 6
    for key in ("new_revenue_share", "repeat_purchase_rate", "churn_rate", "crr", "refund_rate"):
        assert doc["kpis"][key] is None or 0 <= doc["kpis"][key] <= 1


def test_orders_count_once_per_range_and_aov_is_per_order():
    """AOV per order when order_id is mapped (SPEC §4.5): an order paid in two instalments on two
    days is one order of the range holding both, one of each month; refunds are no orders; a
    payment at 23:59:59 on the last day is inside, one at 00:00:00 the next day outside."""
    from retention_report.metrics.sales import order_counts
    from retention_report.metrics.summary import kpis_of

    rows = [
        ("z", "2023-02-15 10:00", 5.0, "o0"),  # active at the start of Q1, lapsed by its end
        ("a", "2024-01-31 18:00", 60.0, "o1"),  # o1, first instalment (January)
        ("a", "2024-02-01 09:00", 40.0, "o1"),  # o1, second instalment (February)
        ("b", "2024-02-10 12:00", 30.0, "o2"),
        ("b", "2024-02-11 12:00", -30.0, "o2"),  # refund of o2: not an order
        ("c", "2024-03-31 23:59:59", 20.0, "o3"),  # last second of Q1
        ("c", "2024-04-01 00:00:00", 10.0, "o4"),  # first second of Q2
    ]
    ds = make_dataset(rows, columns=("customer_id", "paid_at", "amount", "order_id"), columns__order_id="order_id")
    jan, feb, q1, q2 = (date(2024, 1, 1), date(2024, 1, 31)), (date(2024, 2, 1), date(2024, 2, 29)), \
        (date(2024, 1, 1), date(2024, 3, 31)), (date(2024, 4, 1), date(2024, 6, 30))
    assert order_counts(ds.payments, [jan, feb, q1, q2]) == [1, 2, 3, 1]  # o1 | o1, o2 | o1-o3 | o4
    k = period_kpis(ds, Q1)
    # gross 60 + 40 + 30 + 20 = 150 over 3 orders (not 4 purchases: a's two days are 2 purchases)
    assert k["purchases"] == 4 and k["aov"] == approx(150 / 3)
    # several periods' orders counted in one query give the same AOVs (150 / 3, 10 / 1)
    assert [k["aov"] for k in kpis_of(ds, [Q1, parse_period("2024-Q2")])] == [approx(50), approx(10)]
    # LTV = AOV × AF × AL must be revenue per customer × lifetime whatever AOV's basis: per purchase
    # (150 / 4) × purchases per customer (4 / 3), annualised (× 365.25 / 91), × AL; z churned, so
    # churn = 1/1, annual churn 1, AL = 1 year. (Per-order AOV × per-purchase AF gave 267.6.)
    assert k["churn_rate"] == approx(1.0) and k["avg_lifetime_years"] == approx(1.0)
    assert k["ltv"] == approx(150 / 4 * 4 / 3 * 365.25 / 91)  # 200.69
    plain = make_dataset([r[:3] for r in rows])  # the same log without order ids
    assert period_kpis(plain, Q1)["ltv"] == approx(k["ltv"])


def test_kpis_computed_once_per_report_context(monkeypatch):
    """metrics.json's three periods are also trend periods: the context computes each period's KPIs
    once; the metric functions themselves cache nothing (pure), and other options compute anew."""
    from retention_report.context import ReportContext
    from retention_report.metrics import summary

    ds = make_dataset(SALES)
    calls = []
    real = summary._period_kpis
    monkeypatch.setattr(summary, "_period_kpis", lambda d, p, o, n, *b: calls.append(p.label) or real(d, p, o, n, *b))
    ctx = ReportContext(Q1, ds.settings, dataset=ds)
    doc = ctx.doc
    assert sorted(calls) == ["2023-Q1", "2023-Q4", "2024-Q1"]
    trend = ctx.trend(8)
    assert len(calls) == 3 + 5  # 2022-Q2 … 2023-Q3 except 2023-Q1
    row = trend.set_index("period").loc["2024-Q1"]
    assert row["revenue"] == approx(doc["kpis"]["revenue"]) and row["customers"] == doc["kpis"]["customers"]
    period_kpis(ds, Q1, MetricSettings(split_basis="customer"))
    period_kpis(ds, Q1)
    assert len(calls) == 10  # no cache below the context
    first = ctx.kpis_of([Q1])[0]
    first["revenue"] = -1  # a caller changing its copy does not change the next caller's
    assert ctx.kpis_of([Q1])[0]["revenue"] == approx(doc["kpis"]["revenue"])
    assert len(calls) == 10


# segment of the first positive payment; a: refund first, two payments on its first day
SEGMENTED = [
    ("a", "2024-01-02 08:00", -5, "ads"),  # a refund: not a purchase, not the first payment
    ("a", "2024-01-05 15:00", 20, "ads"),
    ("a", "2024-01-05 09:00", 10, "email"),  # a's first positive payment → email
    ("a", "2024-02-10 10:00", 30, "ads"),
    ("b", "2024-01-20 12:00", 0, "social"),  # zero: not positive
    ("b", "2024-01-20 13:00", 15, "ads"),  # → ads
    ("c", "2023-06-01 10:00", 50, "email"),  # acquired before the cohorts → email, not in them
    ("c", "2024-01-10 10:00", 10, "ads"),
    ("d", "2024-02-03 08:00", 12, None),  # no channel → (none)
    ("d", "2024-03-04 08:00", 12, "ads"),
    ("e", "2024-03-30 23:59:59", 7, "social"),
]


def test_first_purchase_segments_and_curves_read_only_the_cohort_window():
    from retention_report.context import ReportContext
    from retention_report.metrics import cohort_segment_curves, cohort_window

    ds = make_dataset(SEGMENTED, ("customer_id", "paid_at", "amount", "channel"),
                      columns__segments=["channel"], metrics__cohort_count=3)
    full = ds.customers_with_segments().execute().set_index("customer_id")
    assert full["channel"].to_dict() == {"a": "email", "b": "ads", "c": "email", "d": "(none)", "e": "social"}
    assert str(full.loc["a", "acquired"])[:10] == "2024-01-05" and str(full.loc["a", "second"])[:10] == "2024-02-10"
    window = cohort_window(Q1.end, ds.last_day, "month", 3)
    assert window == (date(2024, 1, 1), date(2024, 3, 30))
    part = ds.customers_with_segments(*window).execute().set_index("customer_id")
    assert part["channel"].to_dict() == {"a": "email", "b": "ads", "d": "(none)", "e": "social"}
    pd.testing.assert_frame_equal(part.sort_index(), full.drop(index="c").sort_index(), check_dtype=False)

    ctx = ReportContext(Q1, ds.settings, dataset=ds)
    curves = ctx.cohort_curves("channel")
    got = {(r.segment, r.age): (r.customers, r.active) for r in curves.itertuples()}
    assert got == {
        ("(none)", 0): (1, 1), ("(none)", 1): (1, 1),  # d: Feb cohort, bought in March; age 2 unobservable
        ("ads", 0): (1, 1), ("ads", 1): (1, 0), ("ads", 2): (1, 0),  # b: Jan, never again
        ("email", 0): (1, 1), ("email", 1): (1, 1), ("email", 2): (1, 0),  # a: Jan, Feb
        ("social", 0): (1, 1),  # e: March only
    }
    direct = cohort_segment_curves(ds.daily, ds.customers_with_segments(), "channel", Q1.end, ds.last_day, "month", 3)
    pd.testing.assert_frame_equal(curves, direct)


def _many_segments():
    """Jan 2024 cohort: s00 5 customers (2 back in Feb), s01 4, s02 3, s03..s09 one each (s03 and
    s04 back in Feb); a March customer in s05. Hand-counted for the top-3 + "(other)" curves."""
    rows = []
    sizes = {"s00": 5, "s01": 4, "s02": 3, **{f"s0{i}": 1 for i in range(3, 10)}}
    back = {"s00": 2, "s03": 1, "s04": 1}
    for seg, n in sizes.items():
        for i in range(n):
            cid = f"{seg}-{i}"
            rows.append((cid, "2024-01-10 10:00", 10, seg))
            if i < back.get(seg, 0):
                rows.append((cid, "2024-02-10 10:00", 10, seg))
    rows.append(("late", "2024-03-05 10:00", 10, "s05"))
    rows.append(("z", "2024-03-30 10:00", 10, "s00"))  # March, s00: size 6 at age 0
    return rows


def test_cohort_curves_show_the_top_segments_and_one_other_curve():
    """A segment column with tens of thousands of values took 566 s (a Python loop over segments ×
    ages) and drew an unreadable chart (issue 21 item 8): the curves are one grouped query, the
    metrics.cohort_segment_top values with the most customers plus one "(other)" curve."""
    from retention_report.context import ReportContext
    from retention_report.metrics import cohort_segment_curves
    from retention_report.metrics.cohorts import OTHER_SEGMENT

    ds = make_dataset(_many_segments(), ("customer_id", "paid_at", "amount", "channel"),
                      columns__segments=["channel"], metrics__cohort_count=3, metrics__cohort_segment_top=3)
    curves = ReportContext(Q1, ds.settings, dataset=ds).cohort_curves("channel")
    got = {(r.segment, r.age): (r.customers, r.active) for r in curves.itertuples()}
    assert OTHER_SEGMENT == "(other)"
    assert got == {
        ("s00", 0): (6, 6), ("s00", 1): (5, 2), ("s00", 2): (5, 0),
        ("s01", 0): (4, 4), ("s01", 1): (4, 0), ("s01", 2): (4, 0),
        ("s02", 0): (3, 3), ("s02", 1): (3, 0), ("s02", 2): (3, 0),
        ("(other)", 0): (8, 8), ("(other)", 1): (7, 2), ("(other)", 2): (7, 0),
    }
    assert curves.loc[(curves.segment == "(other)") & (curves.age == 1), "retention"].item() == approx(2 / 7)
    # by customers, the other curve last
    assert list(dict.fromkeys(curves.segment)) == ["s00", "s01", "s02", "(other)"]

    # fewer values than the top: no "(other)"; every value its own curve
    all_ = cohort_segment_curves(ds.daily, ds.customers_with_segments(), "channel", Q1.end, ds.last_day,
                                 "month", 3, top=20)
    assert set(all_.segment) == {f"s0{i}" for i in range(10)}
    s03 = all_[all_.segment == "s03"].set_index("age")
    assert s03["customers"].tolist() == [1, 1, 1] and s03["active"].tolist() == [1, 1, 0]
