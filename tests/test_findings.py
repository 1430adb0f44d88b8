"""Findings (SPEC §4.6): a finding with nothing to say is left out; comparisons with periods the data
cover only partly (or not at all) are neither judged nor picked as movements. Expected sentences and
numbers are worked out by hand here."""

from __future__ import annotations

import re
from datetime import date

from helpers import make_dataset

from retention_report.document import metrics_document
from retention_report.findings import findings
from retention_report.metrics import KPI_KEYS
from retention_report.metrics.summary import period_coverage
from retention_report.periods import parse_period

Q1 = parse_period("2024-Q1")
# what a finding must never print: placeholders of missing values and empty claims
EMPTY = re.compile(r"\bn/a\b|\bNone\b|\bnan\b|(?<![\d.])0\.0%|too few payments", re.I)


def base_doc(**kpis):
    k = dict.fromkeys(KPI_KEYS)
    k.update(kpis)
    return {
        "period": "2024-Q1", "start": "2024-01-01", "end": "2024-03-31", "complete": True,
        "settings": {"split_basis": "purchase", "min_group_size": 10},
        "kpis": k, "previous": dict.fromkeys(KPI_KEYS), "year_ago": dict.fromkeys(KPI_KEYS),
        "previous_period": {"period": "2023-Q4", "start": "2023-10-01", "end": "2023-12-31", "coverage": "full"},
        "year_ago_period": {"period": "2023-Q1", "start": "2023-01-01", "end": "2023-03-31", "coverage": "full"},
        "cohorts": {}, "segments": [],
        "data_quality": {"first_payment": "2021-01-01 00:00:00", "last_payment": "2024-12-31 00:00:00"},
    }


def seg(name, customers, revenue, purchases, aov, share):
    return {"segment": name, "customers": customers, "revenue": revenue, "purchases": purchases, "aov": aov,
            "revenue_share": share}


def test_nothing_to_say_gives_no_findings_and_no_filler():
    doc = base_doc()
    doc["complete"] = False
    doc["data_quality"]["last_payment"] = None
    doc["segments"] = [seg("frequent", 0, 0.0, 0, None, 0.0), seg("lapsed", 3, 0.0, 0, None, 0.0)]
    out = findings(doc)
    # only the one thing there is to say; no "the data end on None", no filler sentence
    assert out == ["The period is incomplete: totals will still grow."]


def test_missing_values_leave_their_finding_or_clause_out():
    doc = base_doc(revenue=1000.0, gross_revenue=1100.0, refunds=100.0, new_revenue_share=0.25,
                   customers_new=None, customers_returning=None, crr=0.9, churn_rate=None)
    doc["segments"] = [seg("frequent", 10, 600.0, 12, None, 0.6), seg("rare", 30, 400.0, 4, None, 0.4)]
    out = findings(doc)
    for f in out:
        assert not EMPTY.search(f), f
    # revenue; the split without the customer counts; no retention line (churn unknown); the segment
    # without "at n/a per purchase": 10 of 10 + 30 = 40 customers = 25.0%
    assert out == [
        "Net revenue was €1,000.",
        "Repeat purchases brought 75.0% of gross revenue and first purchases 25.0%.",
        "Frequent (X) customers — 25.0% of all customers, lapsed included — brought the most revenue: "
        "60.0% of gross revenue.",
    ]


def test_segment_with_a_share_that_rounds_to_zero_is_not_the_top_segment_finding():
    doc = base_doc()
    doc["segments"] = [seg("frequent", 10, 0.01, 1, 0.01, 0.0004), seg("lapsed", 90, 0.0, 0, None, 0.0)]
    assert findings(doc) == []


def test_segment_share_is_of_all_customers_as_in_the_segment_table():
    doc = base_doc(revenue=1000.0, gross_revenue=1000.0)
    doc["segments"] = [
        seg("frequent", 10, 600.0, 12, 50.0, 0.6),
        seg("medium", 20, 200.0, 8, 25.0, 0.2),
        seg("rare", 30, 100.0, 4, 25.0, 0.1),
        seg("new", 15, 100.0, 5, 20.0, 0.1),
        seg("lapsed", 25, 0.0, 0, None, 0.0),
    ]
    out = findings(doc)
    # 10 of 10 + 20 + 30 + 15 + 25 = 100 customers (lapsed included, as the table's "% of all customers")
    assert ("Frequent (X) customers — 10.0% of all customers, lapsed included — brought the most revenue: "
            "60.0% of gross revenue, at €50.00 per purchase.") in out


def test_incomplete_period_names_the_last_payment_day():
    doc = base_doc(revenue=50.0, gross_revenue=50.0)
    doc["complete"] = False
    doc["data_quality"]["last_payment"] = "2024-02-10 12:00:00"
    assert findings(doc)[0] == "The period is incomplete: the data end on 2024-02-10, so totals will still grow."


def test_period_coverage_by_first_and_last_payment_day():
    p = parse_period("2023-Q4")  # 1 Oct – 31 Dec 2023
    assert period_coverage(p, date(2023, 10, 1), date(2024, 6, 30)) == "full"  # data begin on its first day
    assert period_coverage(p, date(2021, 1, 1), date(2023, 12, 31)) == "full"
    assert period_coverage(p, date(2023, 12, 20), date(2024, 6, 30)) == "partial"  # first payment inside
    assert period_coverage(p, date(2023, 1, 1), date(2023, 11, 30)) == "partial"  # last payment inside
    assert period_coverage(p, date(2024, 1, 1), date(2024, 6, 30)) == "none"  # entirely before the data
    assert period_coverage(p, date(2021, 1, 1), date(2023, 9, 30)) == "none"  # entirely after
    assert period_coverage(p, None, None) == "none"


# History starts inside the previous period: Q4 2023 holds only a's payment of 20 Dec 2023, Q1 2023
# nothing at all. Q1 2024: a again, b, c, d new.
PARTIAL = [
    ("a", "2023-12-20 10:00", 100.0),
    ("a", "2024-01-10 10:00", 50.0),
    ("b", "2024-01-15 10:00", 40.0),
    ("c", "2024-02-01 10:00", 30.0),
    ("d", "2024-03-31 10:00", 20.0),
]


def test_partial_reference_periods_are_marked_and_not_judged():
    from retention_report.tables import kpi_table

    doc = metrics_document(make_dataset(PARTIAL), Q1)
    assert doc["previous_period"] == {"period": "2023-Q4", "start": "2023-10-01", "end": "2023-12-31",
                                      "coverage": "partial"}
    assert doc["year_ago_period"] == {"period": "2023-Q1", "start": "2023-01-01", "end": "2023-03-31",
                                      "coverage": "none"}
    # the raw comparison would be +200% new customers (1 -> 3) and +40% net revenue (100 -> 140)
    assert doc["previous"]["customers_new"] == 1 and doc["kpis"]["customers_new"] == 3
    text = " ".join(doc["findings"])
    assert "(good)" not in text and "largest movement" not in text.lower()
    assert "200.0%" not in text and "40.0%" not in text
    assert doc["findings"][0] == ("Net revenue was €140.00; Q4 2023 and Q1 2023 are not compared: "
                                  "the data begin on 20 Dec 2023.")
    html = kpi_table(doc)
    head = html.split("</thead>")[0]
    assert "partial data" in head and "no data" in head
    body = html.split("<tbody>")[1]
    # no change against them is coloured good or bad; the year ago has no values at all
    assert "rr-good" not in body and "rr-bad" not in body
    revenue_row = next(r for r in body.split("<tr>") if "Revenue (net)" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", revenue_row)
    assert cells[:3] == ["€140.00", "€100.00", "no data"]
    assert cells[4] == "no data"
    assert "+40.0%" in cells[3]  # the change is still shown, under the column's "partial data" note


def test_full_reference_periods_keep_their_comparisons():
    rows = [("z", "2022-06-01 10:00", 10.0), *PARTIAL]  # history from 2022: both periods fully covered
    doc = metrics_document(make_dataset(rows), Q1)
    assert doc["previous_period"]["coverage"] == "full" and doc["year_ago_period"]["coverage"] == "full"
    # net revenue 140 against 100 in Q4 2023 (+40%); against 0 in Q1 2023 there is no percentage.
    # Four customers cannot show a +40% to be real (SPEC §4.6): compared, but no direction claimed
    assert doc["findings"][0] == "Net revenue was €140.00, within noise of Q4 2023."
    # new customers 1 -> 3 (+200%): 2 ± 1.96·√4 holds zero, so it is no "largest movement"
    assert doc["changes"]["previous"]["customers_new"]["significant"] is False
    assert not any(f.startswith("The largest movement") for f in doc["findings"])


def test_revenue_bridge_explains_the_change_in_gross_revenue():
    """SPEC §4.7: 500 → 406 = −18.8%; the customers lost took €120, the new ones brought €30."""
    doc = base_doc(revenue=400.0, gross_revenue=406.0, refunds=6.0)
    doc["previous"]["gross_revenue"] = 500.0
    doc["revenue_bridge"] = {"previous": 500.0, "new": 30.0, "reactivated": 10.0, "expansion": 16.0,
                             "contraction": 30.0, "lost": 120.0, "current": 406.0}
    out = findings(doc)
    # the second sentence of the revenue finding (the six findings keep their room)
    assert out[0] == ("Net revenue was €400.00. Gross revenue fell 18.8% on Q4 2023: customers who bought then "
                      "but not now took €120.00 and new customers brought €30.00.")
    # a rise names the largest part that added first; a part of 0 is not news
    doc["revenue_bridge"] = {"previous": 500.0, "new": 30.0, "reactivated": 10.0, "expansion": 96.0,
                             "contraction": 0.0, "lost": 0.0, "current": 636.0}
    doc["kpis"]["gross_revenue"] = 636.0
    assert findings(doc)[0].endswith("Gross revenue rose 27.2% on Q4 2023: customers who bought more brought €96.00.")
    # a change of gross revenue within noise (SPEC §4.6) has no "why": no bridge sentence
    doc["changes"] = {"previous": {"gross_revenue": {"delta": 136.0, "low": -20.0, "high": 292.0,
                                                     "significant": False, "real": False}}}
    assert not any("Gross revenue" in f for f in findings(doc))
    del doc["changes"]
    # a previous period the data cover only partly: its customers' absence is not news
    doc["previous_period"]["coverage"] = "partial"
    assert not any("Gross revenue" in f for f in findings(doc))


def test_guest_payments_are_their_own_share_of_gross_revenue():
    """new + returning + guest = gross (issue 22): the returning share is not 1 − the new share."""
    doc = base_doc(revenue=127.0, gross_revenue=140.0, revenue_new=50.0, revenue_returning=50.0,
                   revenue_guest=40.0, new_revenue_share=50 / 140)
    text = " ".join(findings(doc))
    assert "Repeat purchases brought 35.7% of gross revenue, first purchases 35.7% and guest payments 28.6%" in text
    doc["settings"]["split_basis"] = "customer"
    assert "earlier customers 35.7% and guest payments 28.6%" in " ".join(findings(doc))


def test_customer_counts_take_the_grammatical_number():
    """Issue 22: "1 new customers joined". One of each in English; Russian and German plural forms."""
    from retention_report.i18n import set_language

    doc = base_doc(revenue=1000.0, gross_revenue=1000.0, new_revenue_share=0.25, customers_new=1,
                   customers_returning=1)
    assert "1 new customer joined and 1 existing customer bought again" in findings(doc)[1]
    doc["kpis"].update(customers_new=2, customers_returning=5)
    assert "2 new customers joined and 5 existing customers bought again" in findings(doc)[1]
    try:
        set_language("de")
        doc["kpis"].update(customers_new=1, customers_returning=1)
        assert "1 Neukunde kam hinzu und 1 Bestandskunde kaufte erneut" in findings(doc)[1]
        set_language("ru")
        doc["kpis"].update(customers_new=21, customers_returning=3)
        said = findings(doc)[1]
        assert "пришёл 21 новый клиент" in said and "3 постоянных клиента купили снова" in said
    finally:
        set_language("en")
