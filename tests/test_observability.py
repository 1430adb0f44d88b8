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


def _title(ax) -> str:
    """The chart's title wherever the theme puts it (the report's theme titles on the left; a test
    that drew with it before changes the default location)."""
    return " ".join(t for t in (ax.get_title(loc) for loc in ("left", "center", "right")) if t)


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
    assert set(doc["unobservable"]["segments"]) == {"lapsed"}  # empty by construction
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


def _doc_for_findings(**extra):
    from retention_report.metrics import KPI_KEYS

    doc = {"period": "2024-Q1", "start": "2024-01-01", "end": "2024-03-31", "complete": True,
           "settings": {"split_basis": "purchase", "min_group_size": 30},
           "kpis": dict.fromkeys(KPI_KEYS), "previous": dict.fromkeys(KPI_KEYS), "year_ago": dict.fromkeys(KPI_KEYS),
           "cohorts": {}, "segments": [],
           "data_quality": {"first_payment": "2021-01-01", "last_payment": "2024-12-31"}}
    doc.update(extra)
    return doc


def test_a_small_segment_is_never_named_nor_replaced_by_the_next():
    from retention_report.findings import findings

    def seg(name, customers, share):
        return {"segment": name, "customers": customers, "revenue": share * 1000, "purchases": customers,
                "aov": 10.0, "revenue_share": share}

    # the top segment by revenue has 12 customers < 30: no segment finding at all
    doc = _doc_for_findings(segments=[seg("frequent", 12, 0.6), seg("rare", 300, 0.4)])
    assert not any("brought the most revenue" in f for f in findings(doc))
    doc["segments"][0]["customers"] = 30  # at the minimum it is named
    assert any(f.startswith("Frequent (X) customers") for f in findings(doc))


def test_the_weakest_cohort_is_of_sufficient_size_against_the_weighted_average():
    import pandas as pd

    from retention_report.findings import findings
    from retention_report.plots import cohort_heatmap

    # age-1 retention: 10% of 100, 40% of 50, 20% of 50, and a 2-customer cohort at 0%
    cohorts = {"grain": "month", "cohort": ["2023-10-01", "2023-11-01", "2023-12-01", "2024-01-01"],
               "size": [100, 50, 50, 2], "small": [False, False, False, True],
               "retention": [[1.0, 0.10], [1.0, 0.40], [1.0, 0.20], [1.0, 0.0]]}
    out = findings(_doc_for_findings(cohorts=cohorts))
    # weighted over the three big ones: (10 + 20 + 10) / 200 = 20.0%; the weakest big one is Oct 2023
    assert ("The weakest recent cohort is Oct 2023: 10.0% of its 100 customers bought again one month later, "
            "against 20.0% on average.") in out
    assert not any("Jan 2024" in f for f in out)
    # the chart quotes the same average and the same weakest cohort
    m = pd.DataFrame(cohorts["retention"], index=pd.to_datetime(cohorts["cohort"]).date, columns=[0, 1])
    ax = cohort_heatmap(m, kind="retention", size=pd.Series(cohorts["size"], index=m.index), min_size=30)
    title = _title(ax)
    assert "20%" in title and "Oct 2023 (10%)" in title and "Jan 2024" not in title
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] != "Jan 2024" and "Jan 2024" in labels[-1]  # marked small


def test_small_groups_are_drawn_marked_and_never_titled():
    import pandas as pd

    from retention_report.plots import cumulative_revenue_curves, segment_retention_curves

    # first-purchase channels: email 100 customers (20% back at age 1), ads 40 (10%), fax 3 (100%)
    curves = pd.DataFrame([("email", 0, 100, 100, 1.0), ("email", 1, 100, 20, 0.2), ("ads", 0, 40, 40, 1.0),
                           ("ads", 1, 40, 4, 0.1), ("fax", 0, 3, 3, 1.0), ("fax", 1, 3, 3, 1.0)],
                          columns=["segment", "age", "customers", "active", "retention"])
    ax = segment_retention_curves(curves, min_size=30)
    assert "Email customers are retained best: 20% buy 1 month" in _title(ax) and "fax" not in _title(ax)
    assert "fax (3, small)" in [t.get_text() for t in ax.get_legend().get_texts()]
    # cumulative revenue per customer: 60 of 100 customers and 30 of 50 → weighted (6000 + 1500) / 150 = 50;
    # a 2-customer cohort at 1,000 is left out
    idx = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]).date
    m = pd.DataFrame([[60.0], [30.0], [1000.0]], index=idx, columns=[0])
    ax = cumulative_revenue_curves(m, size=pd.Series([100, 50, 2], index=idx), min_size=30)
    assert "€50.00 in the first month" in _title(ax)


def test_the_segment_table_marks_small_segments():
    import pandas as pd

    from retention_report.tables import segment_table

    t = pd.DataFrame({"customers": [40, 5], "customer_share": [40 / 45, 5 / 45], "revenue": [100.0, 900.0],
                      "revenue_share": [0.1, 0.9], "purchases": [40, 5], "aov": [2.5, 180.0]},
                     index=pd.Index(["rare", "frequent"], name="segment"))
    html = segment_table(t, "EUR", 30)
    assert "Frequent (X) · small" in html and "Rare (Z) · small" not in html
    assert "Small: fewer than 30 customers" in html
    assert "· small" not in segment_table(t, "EUR")  # without a minimum, nothing is marked
    # nobody can have lapsed yet (SPEC §4.3): the lapsed segment's 0 is structural
    t.loc["lapsed"] = [0, 0.0, 0.0, 0.0, 0, None]
    assert "Lapsed · not observable yet" in segment_table(t, "EUR", 30, ["lapsed"])


def test_the_segment_chart_title_never_names_a_small_segment():
    import pandas as pd

    from retention_report.plots import segment_mix

    t = pd.DataFrame({"customers": [40, 5], "customer_share": [40 / 45, 5 / 45], "revenue": [100.0, 900.0],
                      "revenue_share": [0.1, 0.9], "purchases": [40, 5], "aov": [2.5, 180.0]},
                     index=pd.Index(["rare", "frequent"], name="segment"))
    assert _title(segment_mix(t, min_size=30)).startswith("Rare customers")
    assert _title(segment_mix(t, min_size=5)).startswith("Frequent customers")


def test_the_email_says_why_churn_reads_na(tmp_path):
    import json as _json

    from retention_report.mail.compose import build_message

    ds = make_dataset(YOUNG, email__sender="reports@shop.example", email__to=["boss@shop.example"])
    (tmp_path / "metrics.json").write_text(_json.dumps(metrics_document(ds, Q2, ds.settings.metrics)))
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 stand-in")
    msg = build_message(tmp_path, ds.settings, Q2)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    why = "n/a — the data begin 31 Mar 2024, less than the 365-day activity window before the period end"
    assert why in text and why in html
    assert "Churn rate" in text.split(why)[0].splitlines()[-1]  # the line names the KPIs it is about


def test_the_weakest_cohort_is_named_only_when_below_the_average_beyond_noise():
    """CDNOW 1998-Q2 said "The weakest recent cohort is Mar 1997: 14.3% of its 7,231 customers
    bought again one month later, against 14.9% on average": Wilson's 95% upper end for 1,034 of
    7,231 is 15.1% (centre (1034 + 1.92)/(7231 + 3.84) = 0.14318, half-width 1.96/7234.84 ·
    √(1034·6197/7231 + 0.96) = 0.00807), above the average: within noise, named nowhere."""
    import pandas as pd

    from retention_report.findings import findings
    from retention_report.metrics.cohorts import weakest_group
    from retention_report.plots import cohort_heatmap

    sizes = [7814, 8455, 7231, 2]
    rates = [1180 / 7814, 1300 / 8455, 1034 / 7231, 0.0]
    assert weakest_group(rates, sizes, 30) is None
    cohorts = {"grain": "month", "cohort": ["1997-01-01", "1997-02-01", "1997-03-01", "1997-11-01"],
               "size": sizes, "small": [False, False, False, True],
               "retention": [[1.0, r] for r in rates]}
    assert not any("weakest" in f for f in findings(_doc_for_findings(cohorts=cohorts)))
    m = pd.DataFrame(cohorts["retention"], index=pd.to_datetime(cohorts["cohort"]).date, columns=[0, 1])
    ax = cohort_heatmap(m, kind="retention", size=pd.Series(sizes, index=m.index), min_size=30)
    assert "weakest" not in _title(ax) and "On average 15%" in _title(ax)
    # 10% of 1,000 against about 15%: upper end 11.9% (by hand as above), named
    rates[2] = 100 / 1000
    sizes[2] = 1000
    index, avg = weakest_group(rates, sizes, 30)
    assert index == 2 and avg == pytest.approx((1180 + 1300 + 100) / (7814 + 8455 + 1000))
