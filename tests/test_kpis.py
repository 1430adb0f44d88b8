"""The KPI registry (issue 26): each KPI declared once, and every page reads that declaration."""

from __future__ import annotations

import pytest

from retention_report import archive, findings, formatting, kpis, tables
from retention_report.metrics import KPI_KEYS


def test_every_metrics_json_kpi_is_declared_once_with_unit_direction_and_method():
    assert list(kpis.KPI_SPECS) == list(KPI_KEYS)  # same keys, same order as the contract
    for key, spec in kpis.KPI_SPECS.items():
        assert spec.key == key and spec.label
        assert spec.unit in ("money", "count", "rate", "number", "days", "years")
        assert spec.good in ("up", "down", "neutral")
        assert spec.uncertainty in ("wilson", "total", "ratio", "poisson", "ltv", "none")
    # every headline KPI has an interval method; rates of customers use Wilson
    assert all(kpis.KPI_SPECS[k].uncertainty != "none" for k in kpis.HEADLINE_KPIS)
    assert {k for k, s in kpis.KPI_SPECS.items() if s.uncertainty == "wilson"} == {
        "repeat_purchase_rate", "crr", "churn_rate"}


def test_the_pages_read_the_registry_instead_of_their_own_lists():
    assert formatting.KPI_SPECS is kpis.KPI_SPECS and formatting.HEADLINE_KPIS is kpis.HEADLINE_KPIS
    assert formatting.AOV_SPECS is kpis.AOV_SPECS and tables.HEADLINE_KPIS is kpis.HEADLINE_KPIS
    assert archive.ARCHIVE_KPIS is kpis.ARCHIVE_KPIS and archive.TREND_KPIS is kpis.TREND_KPIS
    assert findings._MOVERS is kpis.MOVER_KPIS
    for group in (kpis.HEADLINE_KPIS, kpis.ARCHIVE_KPIS, kpis.TREND_KPIS, kpis.MOVER_KPIS):
        assert set(group) <= set(kpis.KPI_SPECS)


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("revenue", 1234567.8, "€1,234,568"), ("crr", 0.8, "80.0%"), ("customers", 1234, "1,234"),
    ("median_days_to_second_purchase", 12, "12 days"), ("avg_lifetime_years", 2.5, "2.5 years"),
])
def test_a_kpi_is_written_by_the_formatter_of_its_unit(key, value, shown):
    assert formatting.fmt_value(key, value) == shown


def test_min_change_is_points_for_rates_and_relative_for_the_rest():
    assert kpis.min_change_of("churn_rate") == ("points", 0.005)
    assert kpis.min_change_of("revenue") == ("relative", 0.01)
    assert kpis.is_real_change("churn_rate", 0.006, 0.1, True) and not kpis.is_real_change("churn_rate", 0.004, 0.1, True)
    assert not kpis.is_real_change("revenue", 50.0, 10000.0, True)  # 0.5% < 1%
    assert not kpis.is_real_change("revenue", 5000.0, 10000.0, False)  # large, but not significant
