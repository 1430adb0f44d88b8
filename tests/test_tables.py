"""Report tables: one definition per label (AOV per order vs per purchase), machine-readable KPI
cells, and data values shortened so a table stays readable. Numbers are worked out by hand."""

from __future__ import annotations

import re

import pandas as pd
from helpers import make_dataset

from retention_report import tables
from retention_report.document import metrics_document
from retention_report.formatting import kpi_spec, shorten, shorten_all
from retention_report.metrics import new_vs_returning
from retention_report.periods import parse_period

Q1 = parse_period("2024-Q1")

# a buys two orders on one day (one purchase, two orders), b one order: gross 60 + 40 + 50 = 150,
# 2 purchases, 3 orders -> AOV per order 150 / 3 = 50, AOV per purchase 150 / 2 = 75
ORDERS = [
    ("a", "2024-01-10 10:00", 60.0, "o1"),
    ("a", "2024-01-10 15:00", 40.0, "o2"),
    ("b", "2024-02-01 10:00", 50.0, "o3"),
]
COLS = ("customer_id", "paid_at", "amount", "order_id")


def cells(html: str) -> dict[str, str]:
    """label -> the value cells of its row (text)."""
    out = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        head = re.search(r"<th[^>]*>(.*?)</th>", row)
        if head:
            out[head.group(1)] = re.findall(r"<td[^>]*>(.*?)</td>", row)
    return out


def label_definitions(html: str) -> dict[str, str]:
    """label -> definition, from the KPI table's row titles, the LTV table's "How" column and the
    appendix definitions list."""
    pairs = dict(re.findall(r"<th scope='row' class='rr-label' title='([^']*)'>([^<]*)</th>", html))
    out = {label: how for how, label in pairs.items()}
    for label, _value, how in re.findall(r"<th scope='row' class='rr-label'>([^<]*)</th><td[^>]*>([^<]*)</td>"
                                        r"<td class='rr-muted'>([^<]*)</td>", html):
        out.setdefault(label, how)
        assert out[label] == how, label
    for label, how in re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", html):
        out.setdefault(label, how)
    return out


def test_aov_per_order_and_per_purchase_have_their_own_labels_and_definitions():
    ds = make_dataset(ORDERS, COLS, columns__order_id="order_id")
    doc = metrics_document(ds, Q1)
    assert doc["kpis"]["aov"] == 50.0  # unchanged: per order (SPEC §4.5)
    assert doc["aov_basis"] == "order"
    summary = tables.kpi_table(doc)
    assert cells(summary)["AOV per order"][0] == "€50.00"
    nvr = tables.new_vs_returning_table(new_vs_returning(ds.daily, ds.customers, Q1))
    assert "AOV per purchase" in nvr and "Avg order value" not in nvr
    assert cells(nvr)["Total"][-1] == "€75.00"
    ltv = tables.ltv_table(doc)
    # LTV's AOV is per purchase (AF counts purchases): AOV × AF = revenue per customer
    assert cells(ltv)["AOV per purchase"][:2] == ["€75.00", "gross revenue / purchases"]
    assert "AOV per order" not in ltv
    seg = tables.segment_table(pd.DataFrame(
        {"customers": [2], "customer_share": [1.0], "revenue": [150.0], "revenue_share": [1.0],
         "purchases": [2], "aov": [75.0]}, index=pd.Index(["new"], name="segment")))
    assert "AOV per purchase" in seg and "Avg order value" not in seg
    defs = tables.definitions(365, aov_basis="order")
    everything = summary + nvr + ltv + defs
    found = label_definitions(everything)
    assert found["AOV per order"] == "gross revenue / orders"
    assert found["AOV per purchase"].lower().startswith("gross revenue / purchases")
    assert "Average order value" not in everything
    # each label carries one definition, and no definition serves two labels
    assert len(set(found.values())) == len(found)


def test_aov_without_order_ids_is_per_purchase_everywhere():
    ds = make_dataset([r[:3] for r in ORDERS])
    doc = metrics_document(ds, Q1)
    assert doc["kpis"]["aov"] == 75.0 and doc["aov_basis"] == "purchase"
    assert cells(tables.kpi_table(doc))["AOV per purchase"][0] == "€75.00"
    assert cells(tables.ltv_table(doc))["AOV per purchase"][:2] == ["€75.00", "gross revenue / purchases"]
    defs = tables.definitions(365, aov_basis="purchase")
    assert "AOV per purchase" in defs and "AOV per order" not in defs
    assert kpi_spec("aov", doc).label == "AOV per purchase"
    assert kpi_spec("aov", {"aov_basis": "order"}).help == "gross revenue / orders"


def test_email_kpi_rows_use_the_same_aov_label():
    from retention_report.formatting import kpi_rows
    from retention_report.mail.compose import _kpi_rows

    ds = make_dataset(ORDERS, COLS, columns__order_id="order_id")
    doc = metrics_document(ds, Q1)
    aov = next(r for r in _kpi_rows(doc, "EUR") if r["value"] == "€50.00")
    assert aov["label"] == "AOV per order"
    # the report's KPI table and the mail take their rows from the same builder
    shared = next(r for r in kpi_rows(doc, "EUR") if r.key == "aov")
    assert (shared.label, shared.value) == ("AOV per order", "€50.00")
    assert cells(tables.kpi_table(doc))["AOV per order"][0] == "€50.00"


def test_kpi_cells_carry_their_key_and_period():
    ds = make_dataset(ORDERS, COLS, columns__order_id="order_id")
    doc = metrics_document(ds, Q1)
    html = tables.kpi_table(doc)
    assert re.search(r"<td[^>]*data-kpi=\"revenue\"[^>]*data-period=\"current\"[^>]*>€150.00</td>", html)
    # the data begin in the period: nothing to show for the previous one
    assert re.search(r"<td[^>]*data-kpi=\"revenue\"[^>]*data-period=\"previous\"[^>]*>no data</td>", html)
    nvr = tables.new_vs_returning_table(new_vs_returning(ds.daily, ds.customers, Q1))
    assert re.search(r"data-kpi=\"gross_revenue\"[^>]*>€150.00<", nvr)
    assert re.search(r"data-kpi=\"customers_new\"[^>]*>2<", nvr)
    assert re.search(r"data-kpi=\"aov_per_purchase\"[^>]*>€75.00<", nvr)
    bridge = tables.bridge_formulas(doc["kpis"], 365)
    assert re.search(r"data-kpi=\"customers_end\"[^>]*>2<", bridge)
    ltv = tables.ltv_table(doc)
    assert re.search(r"data-kpi=\"aov_per_purchase\"[^>]*>€75.00<", ltv)


def test_long_values_are_shortened_with_an_ellipsis_and_stay_distinct():
    assert shorten("x" * 3000) == "x" * 39 + "…"
    assert shorten("short") == "short"
    assert shorten("y" * 40) == "y" * 40
    a, b = "p" * 50 + "-alpha", "p" * 50 + "-beta"
    sa, sb = shorten_all([a, b])
    assert sa != sb and len(sa) <= 40 and len(sb) <= 40 and "…" in sa
    assert shorten_all(["email", "ads"]) == ["email", "ads"]
    long = "c" * 3000
    frame = pd.DataFrame({"name": [long, "ads"], "n": [1, 2]}, index=pd.Index([long, "ads"]))
    html = tables.frame_table(frame, {"name": "text", "n": "count"})
    assert long not in html
    assert html.count("c" * 39 + "…") == 2  # the row label and the text cell
    assert max(len(t) for t in re.findall(r">([^<]*)<", html)) <= 40


def test_data_quality_table_names_every_drop_reason_in_words():

    dq = {"rows_read": 10, "rows_used": 6, "rows_dropped": {"duplicate_payment_id": 3, "conflicting_payment_id": 1},
          "first_payment": "2024-01-05 10:00:00", "last_payment": "2024-03-01 09:00:00"}
    html = tables.data_quality_table(dq)
    assert "Dropped: double export (payment id repeated, identical row)" in html
    assert "Dropped: payment id repeated with different values" in html
    assert "_payment_id" not in html  # no raw reason key reaches the manager
