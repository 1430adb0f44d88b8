"""The CLI and the run pipeline: fast failures, metrics-only path, atomic output and a failing cell."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from helpers import section_notebook
from typer.testing import CliRunner

from retention_report.cli import app

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "retention_report.cli"]
runner = CliRunner()

@pytest.mark.slow
def test_malformed_period_fails_fast_before_anything_runs(tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([*CLI, "run", "--period", "2024-Q5", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 2
    assert "2024-Q5" in r.stderr and "2024-W05" in r.stderr and "2024-01-15..2024-02-14" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    assert elapsed < 5  # generous for a loaded CI machine; typically ~0.3 s


@pytest.mark.slow
def test_period_parsing_imports_no_engine():
    code = ("import sys; from retention_report import cli; "
            "print(any(m in sys.modules for m in ('ibis', 'duckdb', 'pandas', 'papermill')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_check_period_command():
    r = runner.invoke(app, ["check-period", "2024-W05"])
    assert r.exit_code == 0
    assert "2024-01-29 .. 2024-02-04" in r.output and "previous 2024-W04" in r.output


def test_config_error_is_one_clear_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[metrics]\nactivty_window_days = 30\n")
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--config", str(cfg)])
    assert r.exit_code == 2
    assert "metrics.activty_window_days: unknown key" in r.output
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--config", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "config file not found" in r.output


def test_metrics_command_writes_only_metrics_json(csv_file, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(csv_file), "--out", str(out)])
    assert r.exit_code == 0, r.output
    # metrics.json and the marker of a report folder (what the metrics were computed from)
    assert sorted(p.name for p in out.iterdir()) == [".retention-report", "metrics.json"]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["period"] == "2024-Q1"
    assert doc["kpis"]["gross_revenue"] == pytest.approx(305)
    assert doc["kpis"]["customers_new"] == 2
    assert doc["data_quality"]["rows_read"] == 8


def test_metrics_stdout(csv_file):
    r = runner.invoke(app, ["metrics", "--period", "2024-03", "--data", str(csv_file), "--stdout"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["kpis"]["gross_revenue"] == pytest.approx(25)


def test_bad_data_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,paid_at,amount\na,2024-01-10,10\nb,31/01/2024,5\n")
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "paid_at" in r.output and "row 2" in r.output and "'31/01/2024'" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(tmp_path / "nope.csv")])
    assert r.exit_code == 1 and "not found" in r.output


def test_validate_command(csv_file):
    r = runner.invoke(app, ["validate", "--data", str(csv_file)])
    assert r.exit_code == 0
    assert "rows read: 8; used: 8" in r.output


# --------------------------------------------------------------------------------------------
# pipeline with tiny notebooks (fast): atomic output and a failing cell


@pytest.fixture()
def tiny_notebooks(tmp_path) -> Path:
    d = tmp_path / "nbs"
    d.mkdir()
    section_notebook(d / "01_summary.ipynb", "import json\nprint(json.load(open(metrics_path))['kpis']['customers'])")
    section_notebook(d / "02_new_vs_returning.ipynb", "print('fine')")
    return d


@pytest.fixture()
def tiny_config(tmp_path) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[report]\nsections = ["summary", "new_vs_returning"]\ntitle = "Tiny <Shop>"\n')
    return cfg


@pytest.mark.slow
def test_failing_cell_keeps_previous_report(csv_file, tmp_path, tiny_notebooks, tiny_config):
    out = tmp_path / "reports" / "2024-Q1"
    args = ["run", "--period", "2024-Q1", "--data", str(csv_file), "--config", str(tiny_config),
            "--out", str(out), "--notebooks", str(tiny_notebooks)]
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("report.html", "report.pdf", "metrics.json", "notebooks/01_summary.ipynb"):
        assert (out / name).is_file()
    good_html = (out / "report.html").read_bytes()
    assert b"Tiny &lt;Shop&gt;" in good_html and b"<Shop>" not in good_html

    # now the second notebook fails in its third cell
    section_notebook(tiny_notebooks / "02_new_vs_returning.ipynb", "x = 1\nraise ValueError('boom in the section')")
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert "02_new_vs_returning.ipynb" in r.stderr and "cell 3" in r.stderr
    assert "ValueError: boom in the section" in r.stderr
    assert "Traceback" not in r.stderr
    assert (out / "report.html").read_bytes() == good_html  # the previous good report is untouched
    kept = tmp_path / "reports" / "2024-Q1.failed" / "notebooks" / "02_new_vs_returning.ipynb"
    assert kept.is_file()
    nb = nbformat.read(str(kept), as_version=4)
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    # no temporary folders are left behind, nor the run's internal section results
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]
    assert not list((tmp_path / "reports").rglob(".sections*"))

    # a note the user put into the failed folder survives the next failure and the next success
    # (issue 21): only the tool's files there are replaced or removed
    failed = kept.parent.parent
    (failed / "why-it-failed.txt").write_text("my notes")
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and kept.is_file()
    assert (failed / "why-it-failed.txt").read_text() == "my notes"
    section_notebook(tiny_notebooks / "02_new_vs_returning.ipynb", "print('fixed')")
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in failed.iterdir()) == [".retention-report", "why-it-failed.txt"]


@pytest.mark.slow
def test_bad_data_fails_before_anysection_notebook(tmp_path, tiny_notebooks, tiny_config):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,paid_at,amount\n,2024-01-10,10\n")
    out = tmp_path / "reports" / "2024-Q1"
    r = subprocess.run([*CLI, "run", "--period", "2024-Q1", "--data", str(bad), "--config", str(tiny_config),
                        "--out", str(out), "--notebooks", str(tiny_notebooks)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "customer_id" in r.stderr and "row 1" in r.stderr
    assert not out.exists()
    assert not (tmp_path / "reports" / "2024-Q1.failed").exists()


@pytest.mark.slow
def test_several_periods_in_one_run_read_the_data_once(csv_file, tmp_path, tiny_notebooks, tiny_config, monkeypatch):
    """`make reports PERIODS="2024-Q1 2024-02"`: one report per period, in the order given, from one
    read and validation of the data; a period given twice is one report."""
    import retention_report.data as data_pkg

    opened = []
    real_open = data_pkg.open_dataset

    def counting_open(settings, *args, **kwargs):
        opened.append(settings.source.path)
        return real_open(settings, *args, **kwargs)

    monkeypatch.setattr(data_pkg, "open_dataset", counting_open)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["run", "--period", "2024-Q1", "--period", "2024-02", "--period", "2024-02",
                            "--data", str(csv_file), "--config", str(tiny_config),
                            "--notebooks", str(tiny_notebooks)])
    assert r.exit_code == 0, r.output
    assert opened == [str(csv_file)]
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir() if p.is_dir()) == ["2024-02", "2024-Q1"]
    # each report holds its own period's numbers: customers a, b, d in Q1; only b in February
    assert json.loads((reports / "2024-Q1" / "metrics.json").read_text())["kpis"]["customers"] == 3
    assert json.loads((reports / "2024-02" / "metrics.json").read_text())["kpis"]["customers"] == 1
    assert r.output.index("Report for 2024-Q1") < r.output.index("Report for 2024-02")
    index = (reports / "index.html").read_text()
    assert "2024-Q1/report.html" in index and "2024-02/report.html" in index


def test_several_periods_cannot_share_one_out_folder(csv_file, tmp_path):
    r = runner.invoke(app, ["run", "--period", "2024-Q1", "--period", "2024-Q2", "--data", str(csv_file),
                            "--out", str(tmp_path / "one")])
    assert r.exit_code == 2 and "--out names the folder of one report" in r.output
    assert not (tmp_path / "one").exists()


@pytest.mark.slow
def test_a_kernel_started_for_notebooks_that_never_run_is_shut_down(tmp_path):
    """The report's kernel starts while the data are read (issue 13); when the run fails before its
    notebooks (bad data), closing the worker shuts that kernel down; with a job, run() returns its
    value from the worker thread."""
    from retention_report.kernel import NotebookWorker, ipc_kernel_manager

    kernels: list = []
    worker = NotebookWorker("python3", str(tmp_path), ipc_kernel_manager(tmp_path, kernels), kernels)
    deadline = time.monotonic() + 60
    while not (kernels and getattr(getattr(kernels[0], "provisioner", None), "process", None)):
        assert time.monotonic() < deadline, "the kernel did not start"
        time.sleep(0.05)
    process = kernels[0].provisioner.process
    assert process.poll() is None  # running, waiting for notebooks
    worker.close()
    assert process.wait(timeout=30) is not None  # shut down, not left running

    kernels = []
    worker = NotebookWorker("python3", str(tmp_path), ipc_kernel_manager(tmp_path, kernels), kernels)
    processes: list = []
    assert worker.run(lambda km: processes.append(km.provisioner.process) or km.kernel_name) == "python3"
    # run() returns as soon as the job's value is known; the kernel shuts down behind it while the
    # report renders (issue 13): awaited with a deadline, never asserted at once (it raced, issue 25)
    worker.close(timeout=30)
    assert processes[0].wait(timeout=30) is not None


@pytest.mark.slow
def test_disk_full_while_rendering_is_one_line_and_keeps_the_previous_report(csv_file, tmp_path, tiny_notebooks,
                                                                             tiny_config, monkeypatch):
    """issue 21 item 9: ENOSPC while the report is written: one error line, exit 1 (a run failure),
    no traceback, the previous report untouched and no temporary folder left."""
    import errno

    import retention_report.render as render

    out = tmp_path / "reports" / "2024-Q1"
    args = ["run", "--period", "2024-Q1", "--data", str(csv_file), "--config", str(tiny_config),
            "--out", str(out), "--notebooks", str(tiny_notebooks)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    good = {name: (out / name).read_bytes() for name in ("report.html", "report.pdf", "metrics.json")}

    def full_disk(html, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(render, "render_pdf", full_disk)
    r = runner.invoke(app, args)
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    assert "no space left on device" in lines[0] and "report.pdf" in lines[0] and "previous report" in lines[0]
    assert {name: (out / name).read_bytes() for name in good} == good
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]


def test_disk_full_writing_metrics_is_one_line(csv_file, tmp_path, monkeypatch):
    import errno

    import retention_report.fsio as fsio

    def full_disk(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(fsio, "write_atomic", full_disk)
    monkeypatch.setattr("retention_report.pipeline.write_atomic", full_disk)
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--data", str(csv_file), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert "no space left on device" in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_hanging_section_fails_the_run_after_the_cell_timeout(csv_file, tmp_path, tiny_notebooks):
    """[report] cell_timeout_seconds (issue 21 item 8): a section that hangs fails the run with the
    usual contract — one line naming the section, its cell and the timeout; the previous report is
    kept — instead of blocking a scheduled run forever."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[report]\nsections = ["summary", "new_vs_returning"]\ncell_timeout_seconds = 3\n')
    out = tmp_path / "reports" / "2024-Q1"
    args = ["run", "--period", "2024-Q1", "--data", str(csv_file), "--config", str(cfg),
            "--out", str(out), "--notebooks", str(tiny_notebooks)]
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    good_html = (out / "report.html").read_bytes()

    section_notebook(tiny_notebooks / "02_new_vs_returning.ipynb", "import time\ntime.sleep(600)")
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "02_new_vs_returning.ipynb" in r.stderr and "cell 3" in r.stderr
    assert "3 s" in r.stderr and "report.cell_timeout_seconds" in r.stderr
    assert "Traceback" not in r.stderr
    assert (out / "report.html").read_bytes() == good_html
    assert (tmp_path / "reports" / "2024-Q1.failed" / "notebooks" / "02_new_vs_returning.ipynb").is_file()
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_custom_range_is_named_once_on_the_cover(csv_file, tmp_path, tiny_notebooks, tiny_config):
    """Issue 22: a custom range's title is its dates; the cover and the email said them twice
    ("21 Nov 1997 – 22 Nov 1997 21 Nov 1997 – 22 Nov 1997"; the email and the archive use the same
    formatting.period_subtitle). A quarter keeps title and dates."""
    import re
    from html import unescape

    for period, cover in (("2024-03-01..2024-03-20", "01 Mar 2024 – 20 Mar 2024"),
                          ("2024-Q1", "Q1 2024 1 Jan 2024 – 31 Mar 2024")):
        out = tmp_path / "reports" / period.replace(".", "_")
        r = subprocess.run([*CLI, "run", "--period", period, "--data", str(csv_file), "--config", str(tiny_config),
                            "--out", str(out), "--notebooks", str(tiny_notebooks)], capture_output=True, text=True,
                           cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        html = (out / "report.html").read_text()
        shown = re.search(r'<p class="rr-period">(.*?)</p>', html, re.S).group(1)
        assert re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", shown))).strip() == cover
