"""Snapshots (syrupy) of the public contract: the whole metrics.json of the hand-counted log in
tests/helpers.py. A change to any key, value or finding shows up as a diff to review; accept an
intended one with ``pytest tests/test_snapshots.py --snapshot-update`` and commit the snapshot.
(The rendered report's structure is snapshotted in tests/test_report.py.)"""

from __future__ import annotations

import json

from helpers import SALES, make_dataset

from retention_report.document import metrics_document
from retention_report.periods import parse_period


def test_metrics_json_of_the_hand_counted_log(snapshot):
    doc = metrics_document(make_dataset(SALES), parse_period("2024-Q1"))
    # as written to metrics.json: the same text a consumer parses
    assert json.dumps(doc, indent=2, ensure_ascii=False) == snapshot


def test_metrics_json_with_order_ids_and_costs(snapshot):
    rows = [(*r, f"o{i // 2}", round(abs(r[2]) * 0.4, 2)) for i, r in enumerate(SALES)]
    ds = make_dataset(rows, ("customer_id", "paid_at", "amount", "order_id", "cost"),
                      columns__order_id="order_id", columns__cost="cost")
    doc = metrics_document(ds, parse_period("2024-03"))
    assert json.dumps(doc, indent=2, ensure_ascii=False) == snapshot
