"""The archive page reports/index.html (issue 14): every rendered period, newest first and grouped by
grain, its headline KPIs with the change on the previous period, links, when and from what it was
rendered, a trend chart per grain; built from each folder's metrics.json and marker only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retention_report import archive
from retention_report.cli import app
from retention_report.config import load_settings
from retention_report.outputs import content_record, update_marker
from retention_report.render import check_self_contained

runner = CliRunner()

KEYS = ("revenue", "customers", "customers_new", "crr", "churn_rate")


def _kpis(revenue, customers, customers_new, crr, churn) -> dict:
    return dict(zip(KEYS, (revenue, customers, customers_new, crr, churn), strict=True))


def _doc(period: str, now: dict, prev: dict | None, *, prev_label: str = "", coverage: str = "full",
         source: str = "shop.parquet") -> dict:
    """A metrics.json of the shape `retention-report metrics` writes (the keys the archive reads)."""
    return {"period": period, "start": "", "end": "", "complete": True,
            "kpis": now, "previous": prev or {}, "year_ago": {},
            "previous_period": {"period": prev_label, "coverage": coverage},
            "aov_basis": "order", "currency": "EUR", "source": source,
            "title": "Sales & customer retention", "generated_at": "2024-07-02T09:30:00+00:00",
            "data_quality": {"rows_read": 10, "rows_used": 10, "rows_dropped": {}}}


def _folder(root: Path, name: str, doc: dict | str | None, settings, *, report: bool = True) -> Path:
    """A report folder as `run` leaves it: metrics.json, report files, the marker with the records."""
    folder = root / name
    folder.mkdir(parents=True)
    if doc is not None:
        (folder / "metrics.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if report:
        (folder / "report.html").write_text("<html></html>")
        (folder / "report.pdf").write_bytes(b"%PDF-1.7")
    made = content_record(settings)
    update_marker(folder, name, metrics=made, **({"report": made} if report else {}))
    return folder


@pytest.fixture()
def settings():
    return load_settings(None, **{"source.path": "/data/shop.parquet"})


@pytest.fixture()
def reports(tmp_path, settings) -> Path:
    root = tmp_path / "reports"
    # Q2 2024 on Q1: revenue 90,000 vs 120,000 = −25.0%; customers 1,200 vs 1,500 = −20.0%;
    # new 300 vs 400 = −25.0%; CRR 62% vs 60% = +2.0 pp (good); churn 38% vs 40% = −2.0 pp (good)
    _folder(root, "2024-Q2", _doc("2024-Q2", _kpis(90_000, 1200, 300, 0.62, 0.38),
                                  _kpis(120_000, 1500, 400, 0.60, 0.40), prev_label="2024-Q1"), settings)
    # Q1 2024 on Q4 2023: revenue +20.0%, customers 1,500 vs 1,200 = +25.0%; CRR −5.0 pp (bad);
    # churn +5.0 pp (bad)
    _folder(root, "2024-Q1", _doc("2024-Q1", _kpis(120_000, 1500, 400, 0.60, 0.40),
                                  _kpis(100_000, 1200, 350, 0.65, 0.35), prev_label="2023-Q4"), settings)
    # a month, and a year: one period of its grain (no trend chart)
    _folder(root, "2024-03", _doc("2024-03", _kpis(45_000, 700, 150, 0.55, 0.45),
                                  _kpis(40_000, 650, 140, 0.5, 0.5), prev_label="2024-02"), settings)
    _folder(root, "2023", _doc("2023", _kpis(400_000, 5000, 2000, 0.5, 0.5), None), settings)
    return root


def _sections(page: str) -> dict[str, str]:
    """The page's grain sections by grain, in page order."""
    found = re.findall(r'<section class="rr-grain" id="grain-(\w+)"(.*?)</section>', page, re.S)
    return dict(found)


def _rows(section: str) -> list[str]:
    return re.findall(r'<tr class="rr-entry[^"]*" data-period="([^"]+)"', section)


def _row(page: str, period: str) -> str:
    m = re.search(rf'<tr class="rr-entry[^"]*" data-period="{re.escape(period)}".*?</tr>', page, re.S)
    assert m, period
    return m.group(0)


def _cell(row: str, key: str) -> str:
    m = re.search(rf'<td class="num"[^>]*data-kpi="{key}"[^>]*>(.*?)</td>', row, re.S)
    assert m, key
    return re.sub(r"<[^>]+>", " ", m.group(1))


def test_periods_are_grouped_by_grain_newest_first(reports, settings):
    page = archive.render_index(reports, settings)
    sections = _sections(page)
    assert list(sections) == ["month", "quarter", "year"]  # months, quarters, years (only grains present)
    assert _rows(sections["quarter"]) == ["2024-Q2", "2024-Q1"]
    assert _rows(sections["month"]) == ["2024-03"] and _rows(sections["year"]) == ["2023"]
    assert re.search(r"<h2[^>]*>Quarters</h2>", sections["quarter"])


def test_headline_kpis_and_changes_on_the_previous_period(reports, settings):
    page = archive.render_index(reports, settings)
    q2, q1 = _row(page, "2024-Q2"), _row(page, "2024-Q1")
    assert "€90,000" in _cell(q2, "revenue") and "▼ −25.0%" in _cell(q2, "revenue")
    assert "1,200" in _cell(q2, "customers") and "▼ −20.0%" in _cell(q2, "customers")
    assert "300" in _cell(q2, "customers_new") and "▼ −25.0%" in _cell(q2, "customers_new")
    assert "62.0%" in _cell(q2, "crr") and "▲ +2.0 pp" in _cell(q2, "crr")
    assert "38.0%" in _cell(q2, "churn_rate") and "▼ −2.0 pp" in _cell(q2, "churn_rate")
    assert "€120,000" in _cell(q1, "revenue") and "▲ +20.0%" in _cell(q1, "revenue")
    assert "▲ +25.0%" in _cell(q1, "customers")
    # judged as the report judges them: less churn is good, a lower CRR bad
    assert re.search(r"rr-good[^>]*>▼ −2.0 pp", q2) and re.search(r"rr-bad[^>]*>▼ −5.0 pp", q1)
    assert "Q1 2024" in q1 and "1 Jan 2024 – 31 Mar 2024" in q1
    # the year has nothing to compare with: its changes are n/a, not zero
    assert "n/a" in _cell(_row(page, "2023"), "revenue")


def test_links_are_relative_and_the_source_and_date_are_shown(reports, settings):
    page = archive.render_index(reports, settings)
    q1 = _row(page, "2024-Q1")
    assert 'href="2024-Q1/report.html"' in q1 and 'href="2024-Q1/report.pdf"' in q1
    assert 'href="2024-Q1/metrics.json"' in q1
    assert "/data/shop.parquet" in q1  # the source the marker recorded
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} \d{4}", q1)  # the date it was rendered
    assert "rr-other" not in q1


def test_a_period_from_another_source_or_config_is_marked(reports, settings):
    other = settings.with_overrides(**{"source.path": "/data/old-export.csv", "metrics.activity_window_days": 180})
    _folder(reports, "2023-Q4", _doc("2023-Q4", _kpis(100_000, 1200, 350, 0.65, 0.35), None), other)
    page = archive.render_index(reports, settings)
    row = _row(page, "2023-Q4")
    assert 'data-origin="other"' in row and "other source or settings" in row
    assert "/data/old-export.csv" in row  # its own source
    assert "activity_window_days" in row  # what differs, in the mark's tooltip
    assert 'data-origin="current"' in _row(page, "2024-Q1")
    assert "Hollow points" in _sections(page)["quarter"]  # the trend says which points are such
    # no current settings to compare with: nothing is marked
    assert 'data-origin="other"' not in archive.render_index(reports)


def test_broken_and_foreign_folders_are_skipped_with_a_note(reports, settings):
    _folder(reports, "2024-Q3", "{not json", settings)
    old = _folder(reports, "2022", _doc("2022", {"revenue": 300_000}, None), settings)  # an older version: few keys
    (old / ".retention-report").unlink()  # made before the marker existed
    foreign = reports / "holiday-photos"
    foreign.mkdir()
    (foreign / "beach.jpg").write_bytes(b"\xff\xd8")
    (reports / "notes.txt").write_text("not a folder")
    _folder(reports, "2024-Q4.failed", _doc("2024-Q4", {}, None), settings, report=False)
    page = archive.render_index(reports, settings)
    skipped = re.search(r'<section class="rr-skipped".*?</section>', page, re.S).group(0)
    assert "2024-Q3" in skipped and "metrics.json" in skipped
    assert "holiday-photos" in skipped and "2024-Q4.failed" in skipped
    assert "notes.txt" not in page
    assert "2024-Q3" not in "".join(_rows(page))
    row = _row(page, "2022")  # shown, with what it has; the rest n/a; its origin unknown
    assert "€300,000" in _cell(row, "revenue") and _cell(row, "crr").split() == ["n/a"]
    assert 'data-origin="unknown"' in row


def test_the_page_is_self_contained_with_a_trend_chart_per_grain(reports, settings):
    page = archive.render_index(reports, settings)
    check_self_contained(page)
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    for href in re.findall(r'(?:href|src)="([^"]*)"', page):
        assert not re.match(r"[a-z]+:|//", href) or href.startswith("data:"), href
    assert '<meta name="generator" content="retention-report' in page
    assert "--accent" in page  # the report's stylesheet, inlined
    sections = _sections(page)
    svg = sections["quarter"].count("<svg")
    assert svg == 1  # revenue, customers, CRR and churn: one figure of small multiples
    chart = re.search(r"<svg.*?</svg>", sections["quarter"], re.S).group(0)
    for label in ("Revenue (net)", "Customers", "Customer retention rate (CRR)", "Churn rate"):
        assert label in chart
    assert "<svg" not in sections["year"] and "<svg" not in sections["month"]  # a single period: no trend
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the inline charts' element ids do not collide
    assert re.search(r'<html lang="en"', page)


def test_trend_axis_labels_never_overprint(tmp_path, settings):
    """Issue 22: periods years apart (2019-Q1, then every quarter of 2024) put the labels of the
    2024 quarters a few pixels apart on an axis spanning five years: they overprinted. Every two
    labelled ticks of a chart are at least a label's width apart; the newest period is labelled."""
    root = tmp_path / "reports"
    periods = ["2019-Q1", "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
    for i, p in enumerate(periods):
        _folder(root, p, _doc(p, _kpis(1000 + i, 100 + i, 10, 0.5, 0.5), None), settings)
    chart = re.search(r"<svg.*?</svg>", _sections(archive.render_index(root, settings))["quarter"], re.S).group(0)
    ticks = [float(x) for x in re.findall(r'<g id="quarter-xtick_\d+">\s*<g id="[^"]+">.*?<use [^>]*\bx="([\d.]+)"',
                                          chart, re.S)]
    assert len(ticks) % 4 == 0 and len(ticks) >= 8, ticks
    n = len(ticks) // 4
    axes = [ticks[i * n:(i + 1) * n] for i in range(4)]  # the four charts' ticks in turn, left to right
    for a in axes:
        gaps = [b - x for x, b in zip(a, a[1:], strict=False)]
        assert min(gaps) >= 30, gaps  # "2024" at 8.5 px is about 21 px wide
    assert chart.count(">Q4</text>") == 4  # the newest quarter, on each chart


def test_writing_is_idempotent_and_the_index_is_no_period(reports, settings):
    path = archive.write_index(reports, settings)
    assert path == reports / "index.html"
    first = path.read_bytes()
    assert archive.write_index(reports, settings).read_bytes() == first
    assert not [p for p in reports.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert "index.html" not in archive.render_index(reports, settings).split("rr-skipped")[-1]


def test_an_index_html_the_tool_did_not_write_is_never_replaced(reports, settings, capsys):
    (reports / "index.html").write_text("<h1>our team's landing page</h1>")
    with pytest.raises(archive.ArchiveError, match="index.html"):
        archive.write_index(reports, settings)
    # the hook after a run only warns: the report itself stands
    assert archive.refresh_index(reports, settings) is None
    assert "warning" in capsys.readouterr().err
    assert (reports / "index.html").read_text() == "<h1>our team's landing page</h1>"


def test_no_reports_yet(tmp_path, settings):
    (tmp_path / "reports").mkdir()
    page = archive.render_index(tmp_path / "reports", settings)
    assert "No reports yet" in page and "<svg" not in page


def test_index_command(reports, settings, tmp_path):
    r = runner.invoke(app, ["index", "--reports", str(reports), "--data", "/data/shop.parquet"])
    assert r.exit_code == 0, r.output
    assert str(reports / "index.html") in r.stdout
    assert 'data-period="2024-Q2"' in (reports / "index.html").read_text()
    r = runner.invoke(app, ["index", "--reports", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output


CSV = """customer_id,paid_at,amount
a,2023-11-05 10:00:00,100
a,2024-01-10 10:00:00,50
b,2024-02-01 09:00:00,200
b,2024-04-15 09:00:00,20
c,2024-05-01 09:00:00,10
"""


@pytest.mark.slow
def test_metrics_into_the_reports_folder_updates_the_index(tmp_path):
    """The cheap path of the hook: `metrics` writing into the config's reports folder (the hook of
    `run` is the same call, after its swap: retention_report.pipeline)."""
    (tmp_path / "p.csv").write_text(CSV)
    root = tmp_path / "out" / "reports"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[report]\noutput_dir = "{root}"\n')
    for period in ("2024-Q1", "2024-Q2"):
        r = runner.invoke(app, ["metrics", "--period", period, "--config", str(cfg), "--data", str(tmp_path / "p.csv")])
        assert r.exit_code == 0, r.output
    page = (root / "index.html").read_text()
    assert _rows(_sections(page)["quarter"]) == ["2024-Q2", "2024-Q1"]
    assert "<svg" in _sections(page)["quarter"]
    assert 'data-origin="current"' in _row(page, "2024-Q1")
    # metrics-only folders: no report to link to, but their metrics.json
    assert 'href="2024-Q1/metrics.json"' in page and 'href="2024-Q1/report.html"' not in page
    # --out elsewhere is not the reports folder: no index.html is written there
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--config", str(cfg), "--data", str(tmp_path / "p.csv"),
                            "--out", str(tmp_path / "elsewhere" / "q1")])
    assert r.exit_code == 0 and not (tmp_path / "elsewhere" / "index.html").exists()


def test_a_failing_index_never_fails_the_command(tmp_path):
    (tmp_path / "p.csv").write_text(CSV)
    root = tmp_path / "reports"
    root.mkdir()
    (root / "index.html").write_text("ours, not the tool's")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[report]\noutput_dir = "{root}"\n')
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--config", str(cfg), "--data", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert (root / "2024-Q1" / "metrics.json").is_file()
    assert "warning" in r.output and (root / "index.html").read_text() == "ours, not the tool's"


@pytest.mark.slow
def test_a_run_updates_the_index_after_its_swap(tmp_path):
    """`run` rebuilds the archive once its report is in place (tiny section notebooks)."""
    import subprocess
    import sys

    from helpers import section_notebook

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    section_notebook(nbs / "01_summary.ipynb", "print('fine')")
    (tmp_path / "p.csv").write_text(CSV)
    (tmp_path / "c.toml").write_text('[report]\nsections = ["summary"]\ntitle = "Tiny shop"\n')
    _folder(tmp_path / "reports", "2024-Q1", _doc("2024-Q1", _kpis(1, 1, 1, 0.5, 0.5), None),
                             load_settings(None))  # rendered from other settings than this run's
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "run", "--period", "2024-Q2", "--data", "p.csv",
                        "--config", "c.toml", "--notebooks", str(nbs)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[index]" in r.stderr and "warning" not in r.stderr
    page = (tmp_path / "reports" / "index.html").read_text()
    assert "Tiny shop" in page
    assert _rows(_sections(page)["quarter"]) == ["2024-Q2", "2024-Q1"]
    assert 'href="2024-Q2/report.html"' in page and 'href="2024-Q2/report.pdf"' in page
    assert 'data-origin="current"' in _row(page, "2024-Q2") and 'data-origin="other"' in _row(page, "2024-Q1")
