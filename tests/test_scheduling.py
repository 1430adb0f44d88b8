"""Relative periods on the command line (``--period last-month``, ``--as-of``), ``make email`` as the
one line a scheduler needs, and the contrib/ scheduling examples (issue 14).

The clock is injected (``retention_report.runs.clock``) or fixed with ``--as-of``: no test depends on
the day it runs. Nothing here renders a whole report; the email tests replace the renderer.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from helpers import REPO, run_make
from typer.testing import CliRunner

from retention_report import runs
from retention_report.cli import app
from retention_report.mail.command import email_command

runner = CliRunner()

def _folders(path: Path) -> list[str]:
    """The report folders in ``path`` (the archive page, index.html, may sit next to them)."""
    return sorted(p.name for p in path.iterdir() if p.is_dir())


def _moscow_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "moscow.toml"
    cfg.write_text('timezone = "Europe/Moscow"\n' + extra)
    return cfg


# ------------------------------------------------------------------------------------ check-period

def test_check_period_resolves_a_relative_period_as_of_a_day():
    r = runner.invoke(app, ["check-period", "last-quarter", "--as-of", "2026-11-23"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("2026-Q3: 2026-07-01 .. 2026-09-30 (92 days); previous 2026-Q2; year ago 2025-Q3")
    assert "last-quarter on 2026-11-23" in r.output and "incomplete" not in r.output


def test_check_period_marks_the_current_period_incomplete():
    r = runner.invoke(app, ["check-period", "this-month", "--as-of", "2026-11-23"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("2026-11: 2026-11-01 .. 2026-11-30 (30 days)")
    assert "current period, incomplete" in r.output


@pytest.mark.slow
def test_check_period_as_of_on_the_installed_command():
    exe = Path(sys.executable).with_name("retention-report")
    r = subprocess.run([str(exe), "check-period", "last-week", "--as-of", "2021-01-06"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("2020-W53: 2020-12-28 .. 2021-01-03 (7 days)")


def test_check_period_takes_today_in_the_config_time_zone(tmp_path, monkeypatch):
    # 21:30 UTC on 31 October 2026 is 00:30 on 1 November in Moscow: already the new month there
    monkeypatch.setattr(runs, "clock", lambda: datetime(2026, 10, 31, 21, 30, tzinfo=UTC))
    r = runner.invoke(app, ["check-period", "last-month", "--config", str(_moscow_config(tmp_path))])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("2026-10: 2026-10-01 .. 2026-10-31")
    assert "2026-11-01 (Europe/Moscow)" in r.output
    r = runner.invoke(app, ["check-period", "last-month"])  # no config: the default time zone, UTC
    assert r.exit_code == 0 and r.output.startswith("2026-09: ")
    assert "2026-10-31 (UTC)" in r.output


def test_concrete_periods_print_as_before(monkeypatch):
    monkeypatch.setattr(runs, "clock", lambda: datetime(2030, 1, 1, tzinfo=UTC))
    r = runner.invoke(app, ["check-period", "2024-W05", "--as-of", "2026-11-23"])
    assert r.exit_code == 0
    assert r.output == "2024-W05: 2024-01-29 .. 2024-02-04 (7 days); previous 2024-W04; year ago 2023-W05\n"


@pytest.mark.parametrize(("args", "words"), [
    (["check-period", "last-decade"], ["'last-decade'", "last-quarter", "this-month", "2024-W05"]),
    (["check-period", "last-month", "--as-of", "23.11.2026"], ["--as-of", "YYYY-MM-DD"]),
    (["check-period", "last-month", "--as-of", "2026-02-30"], ["--as-of", "2026-02-30"]),
    (["check-period", "last-year", "--as-of", "1900-05-01"], ["1900"]),
    (["metrics", "--period", "last-decade"], ["'last-decade'", "last-month"]),
    (["run", "--period", "next-month"], ["'next-month'", "last-month"]),
    (["email", "--period", "this-week", "--dry-run"], ["'this-week'", "this-month"]),
    (["scores", "--period", "last-months", "--out", "x.csv"], ["'last-months'"]),
    (["metrics", "--period", "last-month", "--as-of", "tomorrow"], ["--as-of"]),
])
def test_bad_relative_period_or_as_of_is_exit_2_in_one_line(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    for w in words:
        assert w in r.output
    assert not list(tmp_path.iterdir())  # nothing was written


def test_a_bad_config_for_check_period_is_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('timezone = "Mars/Olympus_Mons"\n')
    r = runner.invoke(app, ["check-period", "last-month", "--config", str(bad)])
    assert r.exit_code == 2 and "timezone" in r.output


# ----------------------------------------------------------------------------------------- metrics

def test_metrics_with_a_relative_period_writes_to_the_concrete_folder(csv_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["metrics", "--period", "last-quarter", "--as-of", "2024-04-15", "--data", str(csv_file)])
    assert r.exit_code == 0, r.output
    assert "last-quarter on 2024-04-15 is 2024-Q1" in r.output
    assert _folders(tmp_path / "reports") == ["2024-Q1"]
    doc = json.loads((tmp_path / "reports" / "2024-Q1" / "metrics.json").read_text())
    assert doc["period"] == "2024-Q1" and doc["start"] == "2024-01-01" and doc["end"] == "2024-03-31"
    assert doc["kpis"]["gross_revenue"] == pytest.approx(305)
    assert "last-quarter" not in json.dumps(doc)  # titles and labels are the concrete period's


def test_relative_periods_resolve_in_the_config_time_zone(csv_file, tmp_path, monkeypatch):
    # 00:30 on 1 April 2024 in Moscow (21:30 UTC on 31 March): last-month is already March there
    monkeypatch.setattr(runs, "clock", lambda: datetime(2024, 3, 31, 21, 30, tzinfo=UTC))
    cfg = _moscow_config(tmp_path)
    r = runner.invoke(app, ["metrics", "--period", "last-month", "--config", str(cfg), "--data", str(csv_file), "--stdout"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["period"] == "2024-03"
    r = runner.invoke(app, ["metrics", "--period", "last-month", "--data", str(csv_file), "--stdout"])  # UTC
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["period"] == "2024-02"


def test_this_month_is_reported_as_incomplete(tmp_path):
    log = tmp_path / "log.csv"  # the data of the current month reach today, 20 March 2024
    log.write_text("customer_id,paid_at,amount\na,2024-02-10 10:00:00,50\na,2024-03-05 10:00:00,30\n"
                   "b,2024-03-20 09:00:00,20\n")
    r = runner.invoke(app, ["metrics", "--period", "this-month", "--as-of", "2024-03-20", "--data", str(log), "--stdout"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["period"] == "2024-03" and doc["end"] == "2024-03-31"
    assert doc["complete"] is False
    assert any("incomplete" in f for f in doc["findings"])


# ------------------------------------------------------------------------------------------- email

SENDER = "Reports <reports@shop.example>"


def _fake_renderer(calls: list):
    """Stands in for pipeline.run_report: writes what a rendered report holds (metrics.json from
    the real engine, a tiny PDF and HTML) and records what `run` records, in a second or so."""
    def run_report(settings, period, *, config_path=None, data=None, out_dir=None, progress=print, **kw):
        from retention_report.outputs import content_record, update_marker
        from retention_report.pipeline import compute_metrics, write_metrics

        calls.append((period.label, Path(out_dir)))
        out_dir.mkdir(parents=True, exist_ok=True)
        write_metrics(compute_metrics(settings, period), out_dir / "metrics.json")
        (out_dir / "report.pdf").write_bytes(b"%PDF-1.4\n% tiny\n%%EOF\n")
        (out_dir / "report.html").write_text("<!DOCTYPE html><title>report</title>")
        update_marker(out_dir, period.label, report=content_record(settings))
    return run_report


def test_email_renders_a_missing_report_of_a_relative_period_then_writes_the_dry_run(csv_file, tmp_path, monkeypatch):
    import retention_report.pipeline as pipeline

    monkeypatch.chdir(tmp_path)
    calls: list = []
    monkeypatch.setattr(pipeline, "run_report", _fake_renderer(calls))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[email]\nsender = "{SENDER}"\nto = ["board@shop.example"]\n')
    args = ["email", "--period", "last-month", "--as-of", "2024-04-02", "--config", str(cfg),
            "--data", str(csv_file), "--dry-run"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    out = tmp_path / "reports" / "2024-03"
    assert calls == [("2024-03", Path("reports/2024-03"))]  # rendered first, into the concrete folder
    assert "rendering it first" in r.output and "nothing was sent" in r.output
    assert (out / "email.eml").is_file()
    assert _folders(tmp_path / "reports") == ["2024-03"]
    assert b"retention-report-2024-03.pdf" in (out / "email.eml").read_bytes()

    r = runner.invoke(app, args)  # rendered now: not again
    assert r.exit_code == 0, r.output
    assert len(calls) == 1 and "rendering" not in r.output


def test_email_renders_when_only_metrics_json_is_there(csv_file, tmp_path, monkeypatch):
    import retention_report.pipeline as pipeline

    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["metrics", "--period", "2024-03", "--data", str(csv_file)])  # make metrics
    assert r.exit_code == 0, r.output
    calls: list = []
    monkeypatch.setattr(pipeline, "run_report", _fake_renderer(calls))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[email]\nsender = "{SENDER}"\nto = ["board@shop.example"]\n')
    r = runner.invoke(app, ["email", "--period", "last-month", "--as-of", "2024-04-02", "--config", str(cfg),
                            "--data", str(csv_file), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert calls == [("2024-03", Path("reports/2024-03"))]


def test_email_exit_codes_for_a_scheduler(csv_file, tmp_path, monkeypatch):
    """0 sent (or written), 1 the render or the sending failed, 2 bad config or period."""
    import retention_report.pipeline as pipeline

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[email]\nsender = "{SENDER}"\nto = ["board@shop.example"]\n')

    def broken(*a, **kw):
        raise pipeline.NotebookFailed("01_summary.ipynb", 3, 3, "ValueError: boom", tmp_path / "kept")

    monkeypatch.setattr(pipeline, "run_report", broken)
    base = ["email", "--period", "last-month", "--as-of", "2024-04-02", "--data", str(csv_file)]
    r = runner.invoke(app, [*base, "--config", str(cfg), "--dry-run"])
    assert r.exit_code == 1 and "boom" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[email]\nsecurity = 'ssl'\n")
    r = runner.invoke(app, [*base, "--config", str(bad), "--dry-run"])
    assert r.exit_code == 2 and "email.security" in r.output
    monkeypatch.setattr(pipeline, "run_report", _fake_renderer([]))
    cfg.write_text(cfg.read_text() + 'user = "reporter"\n')
    r = runner.invoke(app, [*base, "--config", str(cfg)])  # no SMTP password: nothing can be sent
    assert r.exit_code == 1 and "RETENTION_REPORT_SMTP_PASSWORD" in r.output


def test_email_command_takes_as_of(csv_file, tmp_path, monkeypatch):
    import retention_report.pipeline as pipeline

    monkeypatch.chdir(tmp_path)
    calls: list = []
    monkeypatch.setattr(pipeline, "run_report", _fake_renderer(calls))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[email]\nsender = "{SENDER}"\nto = ["board@shop.example"]\n')
    said: list[str] = []
    rc = email_command("last-quarter", config=str(cfg), dry_run=True, data=str(csv_file),
                           as_of=date(2024, 4, 2), say=said.append, err=said.append)
    assert rc == 0, said
    assert calls[0][0] == "2024-Q1"


# -------------------------------------------------------------------------------------------- make

@pytest.mark.slow
def test_make_passes_relative_periods_and_as_of(fake_make_env):
    work, calls = fake_make_env
    assert run_make(work, "email", "PERIOD=last-month").returncode == 0
    assert run_make(work, "report", "PERIOD=last-quarter", "AS_OF=2026-11-23").returncode == 0
    assert run_make(work, "metrics", "PERIOD=this-month", "AS_OF=2026-11-23").returncode == 0
    assert run_make(work, "email", "PERIOD=last-month", "AS_OF=2026-11-23", "DRY_RUN=1").returncode == 0
    assert run_make(work, "reports", "PERIODS=last-month last-quarter", "AS_OF=2026-11-23").returncode == 0
    got = [json.loads(line) for line in calls.read_text().splitlines()]
    assert got == [
        ["email", "--period", "last-month"],
        ["check-period", "last-quarter", "--as-of", "2026-11-23"],
        ["run", "--period", "last-quarter", "--as-of", "2026-11-23"],
        ["metrics", "--period", "this-month", "--as-of", "2026-11-23"],
        ["email", "--period", "last-month", "--as-of", "2026-11-23", "--dry-run"],
        ["run", "--period", "last-month", "--period", "last-quarter", "--as-of", "2026-11-23"],
    ]


@pytest.mark.slow
def test_make_help_names_as_of_and_relative_periods(fake_make_env):
    work, _ = fake_make_env
    r = run_make(work, "help")
    assert r.returncode == 0 and "AS_OF=" in r.stdout
    r = run_make(work, "email")
    assert r.returncode == 2 and "last-month" in r.stderr


@pytest.mark.slow
def test_project_makefile_passes_as_of(tmp_path):
    if not shutil.which("make"):  # pragma: no cover
        pytest.skip("make is not installed")
    from retention_report.scaffold import init_project

    project = tmp_path / "p"
    init_project(project)
    rr = tmp_path / "rr"
    calls = tmp_path / "calls.txt"
    rr.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "$@"\n')
    rr.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k not in ("CONFIG", "DATA", "AS_OF")}
    r = subprocess.run(["make", "-s", "-C", str(project), "email", "PERIOD=last-month", "AS_OF=2026-11-23",
                        "DRY_RUN=1", f"RR={rr}"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert calls.read_text().splitlines() == [
        "check-period last-month --as-of 2026-11-23",
        "email --period last-month --as-of 2026-11-23 --config config.toml --dry-run"]
    assert "AS_OF=" in subprocess.run(["make", "-s", "-C", str(project), f"RR={rr}"], capture_output=True,
                                      text=True, env=env).stdout


# ----------------------------------------------------------------------------------------- contrib

CRONTAB = REPO / "contrib" / "cron" / "retention-report.crontab"
SERVICE = REPO / "contrib" / "systemd" / "retention-report@.service"
TIMER = REPO / "contrib" / "systemd" / "retention-report@.timer"


def _make_targets() -> set[str]:
    return set(re.findall(r"^\.PHONY: (\S+)", (REPO / "Makefile").read_text(), re.M))


def test_the_crontab_example_locks_and_runs_an_existing_make_target():
    lines = [ln for ln in CRONTAB.read_text().splitlines() if ln.strip()]
    entries = [ln.lstrip("#").strip() for ln in lines if re.match(r"^#?[\d*][\d*/,-]*( [\d*/,A-Za-z-]+){4} ", ln)]
    assert len(entries) == 3, entries  # monthly and weekly through make, quarterly calling the command
    for entry in entries:
        fields = entry.split(None, 5)
        command = shlex.split(fields[5].split(">>")[0].replace("&&", " && "))
        assert "flock" in command and "-n" in command
        lock = command[command.index("-n") + 1:]
        lock = [a for a in lock if not a.startswith("-") and not a.isdigit()][0]
        assert lock.endswith(".lock")
        if "make" in command:
            m = command.index("make")
            target = next(a for a in command[m + 1:] if not a.startswith("-") and "=" not in a)
            assert target in _make_targets()
            period = next(a.split("=", 1)[1] for a in command[m + 1:] if a.startswith("PERIOD="))
        else:
            assert "--period" in command
            period = command[command.index("--period") + 1]
        assert period in lock  # one lock per period: two runs of the same period never overlap
        from retention_report.periods import RELATIVE_FORMS

        assert period in RELATIVE_FORMS


def _unit(path: Path) -> configparser.ConfigParser:
    c = configparser.ConfigParser(strict=True, interpolation=None)
    c.optionxform = str  # systemd keys are case-sensitive
    c.read_string(path.read_text())
    return c


def test_the_systemd_units_run_the_email_command_under_a_lock():
    service = _unit(SERVICE)
    assert service["Service"]["Type"] == "oneshot"
    exec_start = shlex.split(service["Service"]["ExecStart"])
    assert Path(exec_start[0]).name == "flock" and "-n" in exec_start
    assert any(a.endswith("%i.lock") for a in exec_start)
    assert "email" in exec_start and exec_start[exec_start.index("--period") + 1] == "%i"
    assert service["Service"]["WorkingDirectory"]
    timer = _unit(TIMER)
    assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.slow
def test_systemd_verify_accepts_the_units(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    for unit in (SERVICE, TIMER):  # as instances for last-month
        shutil.copy(unit, tmp_path / unit.name.replace("@.", "@last-month."))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *[str(p) for p in sorted(tmp_path.iterdir())]],
                       capture_output=True, text=True, cwd=tmp_path)
    # only the unit files' own syntax: the example paths (/srv/…) need not exist here
    problems = [ln for ln in r.stderr.splitlines() if "Unknown" in ln or "Invalid" in ln or "bad-setting" in ln]
    assert not problems, r.stderr


def test_the_readme_documents_scheduling_and_relative_periods():
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^#+ Scheduling", readme, re.M)
    for needle in ("last-month", "this-quarter", "--as-of", "AS_OF=", "flock", "contrib/cron", "contrib/systemd",
                   "make email PERIOD=last-month"):
        assert needle in readme, needle
