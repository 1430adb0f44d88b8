"""Issue 26 items 2, 3, 7: numbers the data's span makes structural are null with the reason
(SPEC §4.3 observability), small groups are marked and never headlined (§4.4), and one label means
one number. Every expected value is counted by hand here."""

from __future__ import annotations

from datetime import date

import pytest
from helpers import make_dataset

from retention_report.document import metrics_document
from retention_report.metrics import period_kpis
from retention_report.metrics.summary import UNOBSERVABLE_KEYS, unobservable_kpis
from retention_report.periods import parse_period

Q2 = parse_period("2024-Q2")
LAPSE_KEYS = {"customers_churned", "customers_reactivated", "customers_new_lapsed", "churn_rate", "crr",
              "avg_lifetime_years", "ltv"}

# the data begin on 2024-03-31: a buys only that day, b on 2024-04-10 and 2024-05-10, c on 2024-06-30
YOUNG = [
    ("a", "2024-03-31 10:00", 10.0),
    ("b", "2024-04-10 10:00", 20.0),
    ("b", "2024-05-10 10:00", 30.0),
    ("c", "2024-06-30 10:00", 40.0),
]


def test_the_lapse_keys_are_the_spec_list():
    assert LAPSE_KEYS <= set(UNOBSERVABLE_KEYS)


@pytest.mark.parametrize("window", [365, 92])
def test_nobody_can_lapse_before_the_window_has_passed(window):
    # end − W = 2024-06-30 − W is before the first payment (2024-03-31) for W = 365 and W = 92
    # (2024-03-30): every customer ever seen bought within (end − W, end], so CL = RE = NL = 0 by
    # construction, never by behaviour
    ds = make_dataset(YOUNG, metrics__activity_window_days=window)
    k = period_kpis(ds, Q2, ds.settings.metrics)
    for key in LAPSE_KEYS:
        assert k[key] is None, key
    # what the data can show is still shown
    assert (k["customers_start"], k["customers_end"], k["customers_new"]) == (1, 3, 2)
    reasons = unobservable_kpis(Q2, date(2024, 3, 31), window)
    assert LAPSE_KEYS <= set(reasons)
    assert "2024-03-31" in reasons["churn_rate"] and f"{window}-day" in reasons["churn_rate"]


def test_the_first_day_on_end_minus_window_is_observable():
    # W = 91: end − W = 2024-03-31, the first payment day itself: a's only purchase is outside
    # (end − W, end], so a can lapse — and did: churn = 1 of CS = 1 (a, active at 2024-03-31)
    ds = make_dataset(YOUNG, metrics__activity_window_days=91)
    k = period_kpis(ds, Q2, ds.settings.metrics)
    assert unobservable_kpis(Q2, date(2024, 3, 31), 91) == {}
    assert (k["customers_start"], k["customers_churned"], k["customers_end"]) == (1, 1, 2)
    assert k["churn_rate"] == pytest.approx(1.0)
    assert k["crr"] == pytest.approx((2 - 2) / 1)  # (CE − CN) / CS


def test_metrics_json_says_why_for_every_period():
    ds = make_dataset(YOUNG)
    doc = metrics_document(ds, Q2, ds.settings.metrics)
    assert {"kpis", "previous", "year_ago"} <= set(doc["unobservable"])
    # no monthly cohort has a whole first year in three months of data: no empirical 12-month LTV
    assert doc["extra"]["ltv_empirical_12m"] is None
    assert "2024-03-31" in doc["unobservable"]["extra"]["ltv_empirical_12m"]
    # time to second purchase: only gaps shorter than the data's span can be seen
    assert doc["kpis"]["median_days_to_second_purchase"] is None
    assert doc["time_to_second_purchase"]["customers"] == 1  # b, 30 days after the first
    assert doc["time_to_second_purchase"]["median_days"] is None
    for block in ("kpis", "previous", "year_ago"):  # 2024-Q1 and 2023-Q2 end even earlier
        assert LAPSE_KEYS <= set(doc["unobservable"][block]), block
        for key in doc["unobservable"][block]:
            assert doc[block][key] is None, (block, key)
    # no finding uses them
    text = " ".join(doc["findings"])
    assert "churn" not in text and "retention rate" not in text
    # and with a window the data span, nothing is unobservable in the period itself
    ds = make_dataset(YOUNG, metrics__activity_window_days=91)
    doc = metrics_document(ds, Q2, ds.settings.metrics)
    assert doc["unobservable"]["kpis"] == {}
    assert doc["kpis"]["churn_rate"] == pytest.approx(1.0)
    assert doc["kpis"]["median_days_to_second_purchase"] == 30  # b: 2024-04-10 → 2024-05-10


# --------------------------------------------------------------------------------------------
# SPEC §4.4: the cohorts shown are the latest ones that acquired anyone; small ones are marked

GAPPY = [
    ("d1", "2023-12-05", 10.0), ("d2", "2023-12-06", 10.0),
    ("j1", "2024-01-05", 10.0), ("j1", "2024-02-07", 30.0), ("j2", "2024-01-06", 20.0), ("j3", "2024-01-07", 10.0),
    ("n1", "2024-06-10", 50.0),  # nobody acquired from February to May
]


def test_cohorts_skip_buckets_that_acquired_nobody_and_mark_small_ones():
    from retention_report.metrics import cohort_matrices

    ds = make_dataset(GAPPY)
    co = cohort_matrices(ds.daily, ds.customers, date(2024, 6, 30), ds.last_day, "month", 2, min_size=2)
    assert [d.isoformat() for d in co.size.index] == ["2024-01-01", "2024-06-01"]  # not May and June
    assert list(co.size) == [3, 1]
    assert list(co.small) == [False, True]  # 1 customer < 2
    assert co.retention.iloc[0].tolist() == pytest.approx([1.0, 1 / 3])  # j1 bought again in February
    assert co.retention.iloc[1, 0] == 1.0 and co.retention.iloc[1, 1] != co.retention.iloc[1, 1]  # NaN: July
    js = co.to_json()
    assert js["small"] == [False, True] and js["size"] == [3, 1]
    # three cohorts: December too
    co = cohort_matrices(ds.daily, ds.customers, date(2024, 6, 30), ds.last_day, "month", 3)
    assert [d.isoformat() for d in co.size.index] == ["2023-12-01", "2024-01-01", "2024-06-01"]
    assert list(co.small) == [True, True, True]  # the default minimum is 30 customers


def test_the_segment_curves_use_the_same_cohorts():
    from retention_report.metrics import cohort_segment_curves, cohort_window

    rows = [(c, d, a, "web" if c.startswith("j") else "shop") for c, d, a in GAPPY]
    ds = make_dataset(rows, ("customer_id", "paid_at", "amount", "channel"), columns__segments=["channel"])
    window = cohort_window(date(2024, 6, 30), ds.last_day, "month", 2, ds.customers)
    assert window == (date(2024, 1, 1), date(2024, 6, 10))
    curves = cohort_segment_curves(ds.daily, ds.customers_with_segments(), "channel", date(2024, 6, 30),
                                   ds.last_day, "month", 2)
    got = {(r.segment, r.age): (r.customers, r.active) for r in curves.itertuples()}
    assert got == {("web", 0): (3, 3), ("web", 1): (3, 1), ("shop", 0): (1, 1)}  # d1, d2 (December) not in


def test_headline_average_is_size_weighted_over_groups_big_enough():
    from retention_report.metrics.cohorts import headline_average

    # 10% of 100 and 40% of 50 → (10 + 20) / 150 = 20%; the 2-customer group at 0% is left out
    assert headline_average([0.10, 0.40, 0.0], [100, 50, 2], 30) == pytest.approx(30 / 150)
    assert headline_average([0.10, None, 0.5], [100, 60, 40], 30) == pytest.approx((10 + 20) / 140)
    assert headline_average([0.5], [2], 30) is None
