"""The report context shares the section results of a run with its notebooks: computed once by the
pipeline, taken by every notebook only when they were computed for the same period and settings."""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retention_report.context import (
    ReportContext,
    open_report,
    resolve_settings,
    sections_path,
)
from retention_report.periods import parse_period
from retention_report.pipeline import (
    NOTEBOOKS_DIR,
    notebook_parameters,
    write_metrics,
)
from retention_report.sections import SECTIONS


@pytest.fixture()
def config(tmp_path, sample_parquet) -> Path:
    cfg = tmp_path / "report.toml"
    cfg.write_text(
        f'[source]\npath = "{sample_parquet}"\n'
        '[columns]\norder_id = "order_id"\ncost = "cost"\nsegments = ["channel", "country"]\n'
    )
    return cfg


def _run_side(config: Path, tmp_path: Path, period: str = "2024-Q1") -> tuple[ReportContext, Path]:
    """What the pipeline does before the notebooks: metrics, every section, both saved."""
    settings = resolve_settings(str(config), "")
    ctx = ReportContext(parse_period(period), settings)
    metrics = write_metrics(ctx.doc, tmp_path / "run" / "metrics.json")
    ctx.precompute()
    ctx.save_sections(sections_path(metrics))
    return ctx, metrics


def _all_sections(ctx: ReportContext) -> dict:
    return {
        "nvr": ctx.new_vs_returning(),
        "trend": ctx.trend(),
        "segments": ctx.segments().table,
        "bridge": ctx.bridge().to_dict(),
        "cohorts": ctx.cohorts().to_json(),
        "curves": ctx.cohort_curves(),
        "second": {k: v for k, v in asdict(ctx.second_purchase()).items() if not isinstance(v, pd.DataFrame)},
        "second_days": next(v for v in asdict(ctx.second_purchase()).values() if isinstance(v, pd.DataFrame)),
    }


@pytest.mark.slow
def test_notebooks_take_the_runs_sections_without_opening_the_data(config, tmp_path):
    run_ctx, metrics = _run_side(config, tmp_path)
    # the notebook's own call, with the parameters the pipeline passes
    params = notebook_parameters(run_ctx.period, str(config), "", metrics)
    nb_ctx = open_report(params["period"], params["config_path"], params["data"], params["metrics_path"])
    got = _all_sections(nb_ctx)
    assert nb_ctx.dataset is None  # nothing was read or validated again
    assert nb_ctx.cohort_segment() == "channel" and nb_ctx.has_cost
    # and the numbers are those a context computing everything itself gets
    fresh = _all_sections(ReportContext(run_ctx.period, run_ctx.settings))
    for key in ("nvr", "trend", "segments", "curves", "second_days"):
        pd.testing.assert_frame_equal(got[key], fresh[key], check_exact=False, rtol=1e-12)
    for key in ("bridge", "second"):
        assert got[key] == fresh[key], key
    for key, value in got["cohorts"].items():  # sums may differ in the last bit (parallel order)
        if isinstance(value, list) and value and isinstance(value[0], list):
            np.testing.assert_allclose(np.array(value, dtype=float), np.array(fresh["cohorts"][key], dtype=float),
                                       rtol=1e-12, err_msg=key)
        else:
            assert value == fresh["cohorts"][key], key
    assert got["bridge"]["end"] > 0 and len(got["trend"]) == run_ctx.metrics.trend_periods


@pytest.mark.slow
def test_sections_of_another_period_or_other_settings_are_not_taken(config, tmp_path):
    _, metrics = _run_side(config, tmp_path)
    other_period = open_report("2023-Q4", str(config), "", str(metrics))
    assert other_period._cache == {}
    changed = config.with_name("changed.toml")
    changed.write_text(config.read_text() + "[metrics]\nactivity_window_days = 180\n")
    other_settings = open_report("2024-Q1", str(changed), "", str(metrics))
    assert other_settings._cache == {}
    # computed afresh instead: a 180-day window gives another bridge than the run's 365 days
    assert other_settings.bridge() != ReportContext(parse_period("2024-Q1"), resolve_settings(str(config), "")).bridge()


@pytest.mark.slow
def test_unreadable_sections_file_is_ignored(config, tmp_path):
    _, metrics = _run_side(config, tmp_path)
    sections_path(metrics).write_bytes(b"not a pickle")
    ctx = open_report("2024-Q1", str(config), "", str(metrics))
    assert ctx._cache == {}
    assert ctx.bridge().end > 0  # computed from the data


def test_precompute_covers_what_each_shipped_notebook_reads():
    """A notebook calling a data-reading context method that precompute() does not run for its
    section would silently reopen the data in every report run."""
    import nbformat

    data_methods = {name for name, fn in inspect.getmembers(ReportContext, inspect.isfunction)
                    if not name.startswith("_") and "self._memo(" in inspect.getsource(fn)}
    assert {"trend", "bridge", "cohorts", "second_purchase"} <= data_methods
    for section in SECTIONS:
        nb = nbformat.read(str(NOTEBOOKS_DIR / section.notebook), as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        called = set(re.findall(r"\bctx\.([a-z_]+)\(", code)) & data_methods
        assert called <= set(section.data), (section.notebook, called)


def test_precompute_only_for_the_sections_in_the_report(config, tmp_path):
    settings = resolve_settings(str(config), "")
    ctx = ReportContext(parse_period("2024-Q1"), settings)
    assert ctx.precompute(["summary", "customer_base"]) == ["bridge"]
    assert set(ctx._cache) == {("bridge", parse_period("2024-Q1"))}


def test_a_notebook_opened_with_a_relative_period_takes_today_in_the_report_time_zone(config):
    """`period = "last-month"` in a notebook opened in JupyterLab means what `make report
    PERIOD=last-month` means: the concrete month before today's, in the config's time zone."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    tz_config = config.with_name("tz.toml")
    # UTC+14: its "today" is another day than UTC's for 14 hours of every day
    tz_config.write_text('timezone = "Pacific/Kiritimati"\n' + config.read_text())
    ctx = open_report("last-month", str(tz_config))
    today = datetime.now(UTC).astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    assert ctx.period.label == f"{year}-{month:02d}"


def test_a_notebook_asking_for_the_kpis_does_not_compute_the_whole_document(config):
    """In JupyterLab `ctx.kpis` is the headline numbers only (issue 13): no cohorts, no prediction;
    the same values, rounded the same way, as metrics.json's `kpis` computed afterwards."""
    ctx = open_report("2024-Q1", str(config))
    kpis = ctx.kpis
    assert "doc" not in ctx.__dict__
    assert {key[0] for key in ctx._cache} == {"kpis"}  # nothing else was computed
    assert kpis == ctx.doc["kpis"]
