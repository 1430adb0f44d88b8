"""Issue 12: nothing the user owns is deleted or overwritten, secrets from .env, interrupted runs.

Output folders (``--out``) are replaced only when missing or a previous report of this tool; the
Makefile passes no variable through the shell unquoted; an interrupted run cleans up after itself;
the database password may come from ``.env``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import run_make, section_notebook

from retention_report.config import load_settings

# ------------------------------------------------------------------------------------ .env secrets


def test_read_secret_environment_wins_over_dotenv(tmp_path, monkeypatch):
    from retention_report.secrets import read_secret

    env = tmp_path / ".env"
    env.write_text("# local secrets\nexport DB_PW='from $file'\nOTHER=1\nEMPTY=\n")
    monkeypatch.delenv("DB_PW", raising=False)
    assert read_secret("DB_PW", env) == "from $file"  # quotes stripped, nothing interpolated
    monkeypatch.setenv("DB_PW", "from-env")
    assert read_secret("DB_PW", env) == "from-env"
    monkeypatch.delenv("NOT_THERE", raising=False)
    assert read_secret("NOT_THERE", env) is None
    assert read_secret("EMPTY", env) is None
    assert read_secret("DB_PW", tmp_path / "missing.env") == "from-env"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DB_PW")
    assert read_secret("DB_PW") == "from $file"  # default: .env in the working directory


@pytest.fixture
def fake_connect(monkeypatch):
    """ibis.connect replaced: records the keyword arguments, then stops before any query."""
    import ibis

    calls: list[dict] = []

    class Stop(Exception):
        pass

    def connect(url, **kwargs):
        calls.append(kwargs)
        raise Stop("no server in this test")

    monkeypatch.setattr(ibis, "connect", connect)
    return calls


def _pg_settings():
    return load_settings(None, **{"source.url": "postgres://analyst@db.invalid:5432/shop", "source.table": "payments",
                                  "source.password_env": "RR_TEST_DOTENV_PG_PW"})


def test_database_password_from_dotenv(tmp_path, monkeypatch, fake_connect):
    from retention_report.data import DataError
    from retention_report.data.sources import read_raw

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RR_TEST_DOTENV_PG_PW", raising=False)
    with pytest.raises(DataError, match="RR_TEST_DOTENV_PG_PW .*is not set"):
        read_raw(_pg_settings())
    assert fake_connect == []  # no connection attempt without a password

    (tmp_path / ".env").write_text('RR_TEST_DOTENV_PG_PW="pg-from-dotenv"\n')
    with pytest.raises(DataError, match="cannot connect") as info:
        read_raw(_pg_settings())
    assert fake_connect[-1] == {"password": "pg-from-dotenv"}
    assert "pg-from-dotenv" not in str(info.value)

    monkeypatch.setenv("RR_TEST_DOTENV_PG_PW", "pg-from-env")  # the environment wins
    with pytest.raises(DataError):
        read_raw(_pg_settings())
    assert fake_connect[-1] == {"password": "pg-from-env"}


# ------------------------------------------------------------------------------ output folders

CSV = "customer_id,paid_at,amount\na,2023-11-05 10:00:00,100\na,2024-01-10 10:00:00,50\nb,2024-02-01 09:00:00,200\n"
CLI = [sys.executable, "-m", "retention_report.cli"]


def _cli(*args, cwd, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _one_error_line(r, code: int, path_text: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and path_text in lines[0], r.stderr


@pytest.mark.slow
def test_run_refuses_a_folder_that_is_not_a_report(tmp_path):
    thesis = tmp_path / "work" / "thesis.txt"
    thesis.parent.mkdir()
    thesis.write_text("four years of work")
    # a data path that does not exist: had the run read the data, it would fail with exit code 1
    r = _cli("run", "--period", "2024-Q1", "--data", str(tmp_path / "missing.csv"), "--out", str(thesis.parent),
             cwd=tmp_path)
    _one_error_line(r, 2, str(thesis.parent))
    assert thesis.read_text() == "four years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # no temporary siblings either


@pytest.mark.slow
def test_run_refuses_a_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    r = _cli("run", "--period", "2024-Q1", "--data", str(tmp_path / "missing.csv"), "--out", str(notes), cwd=tmp_path)
    _one_error_line(r, 2, str(notes))
    assert notes.is_file() and notes.read_text() == "my notes"


@pytest.mark.slow
def test_metrics_refuses_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "p.csv").write_text(CSV)
    r = _cli("metrics", "--period", "2024-Q1", "--data", "p.csv", "--out", str(afile), cwd=tmp_path)
    _one_error_line(r, 2, str(afile))
    assert afile.read_text() == "x"


@pytest.mark.slow
@pytest.mark.parametrize("out", [".", "~", "..", "/"])
def test_run_refuses_the_working_directory_home_and_root(tmp_path, out):
    home = tmp_path / "home"
    cwd = home / "project"
    cwd.mkdir(parents=True)
    (cwd / "keep.txt").write_text("mine")
    env = {**os.environ, "HOME": str(home)}
    r = _cli("run", "--period", "2024-Q1", "--data", "missing.csv", "--out", out, cwd=cwd, env=env)
    _one_error_line(r, 2, str(home) if out == "~" else out)
    assert (cwd / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in cwd.iterdir()) == ["keep.txt"]


@pytest.mark.slow
def test_a_foreign_failed_folder_is_refused_before_the_run(tmp_path):
    failed = tmp_path / "reports" / "2024-Q1.failed"
    failed.mkdir(parents=True)
    (failed / "draft.docx").write_text("mine")
    r = _cli("run", "--period", "2024-Q1", "--data", "missing.csv", "--out", str(tmp_path / "reports" / "2024-Q1"),
             cwd=tmp_path)
    _one_error_line(r, 2, str(failed))
    assert (failed / "draft.docx").read_text() == "mine"


@pytest.mark.slow
def test_metrics_into_an_existing_folder_never_overwrites_a_foreign_file(tmp_path):
    (tmp_path / "p.csv").write_text(CSV)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("mine")
    # an existing folder: metrics.json is added, nothing else is touched, no marker is left
    r = _cli("metrics", "--period", "2024-Q1", "--data", "p.csv", "--out", str(shared), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in shared.iterdir()) == ["metrics.json", "notes.txt"]
    # its own metrics.json may be rewritten ...
    r = _cli("metrics", "--period", "2024-01", "--data", "p.csv", "--out", str(shared), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((shared / "metrics.json").read_text())["period"] == "2024-01"
    # ... and the folder is still not a report `run` may replace
    r = _cli("run", "--period", "2024-Q1", "--data", "p.csv", "--out", str(shared), cwd=tmp_path)
    _one_error_line(r, 2, str(shared))
    assert (shared / "notes.txt").read_text() == "mine"
    # a metrics.json somebody else wrote is not overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text('{"mine": true}')
    r = _cli("metrics", "--period", "2024-Q1", "--data", "p.csv", "--out", str(other), cwd=tmp_path)
    _one_error_line(r, 2, str(other / "metrics.json"))
    assert (other / "metrics.json").read_text() == '{"mine": true}'


@pytest.mark.slow
def test_metrics_into_a_new_folder_marks_it_as_a_report(tmp_path):
    from retention_report.outputs import MARKER, is_report_folder, read_marker

    (tmp_path / "p.csv").write_text(CSV)
    out = tmp_path / "reports" / "2024-Q1"
    r = _cli("metrics", "--period", "2024-Q1", "--data", "p.csv", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "metrics.json"])
    assert is_report_folder(out)
    marker = read_marker(out)
    assert marker["period"] == "2024-Q1" and marker["metrics"]["settings"]["source.path"] == str(tmp_path / "p.csv")


def test_report_folder_recognition(tmp_path):
    from retention_report.outputs import MARKER, is_report_folder

    doc = {"period": "2024-Q1", "kpis": {}, "data_quality": {}}
    legacy = tmp_path / "legacy"  # a report made before the marker existed
    (legacy / "notebooks").mkdir(parents=True)
    (legacy / "metrics.json").write_text(json.dumps(doc))
    (legacy / "report.pdf").write_bytes(b"%PDF")
    (legacy / "email-log.json").write_text("{}")
    assert is_report_folder(legacy)
    (legacy / "thesis.txt").write_text("mine")  # somebody's file in it: not only report files
    assert not is_report_folder(legacy)
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / MARKER).write_text('{"tool": "retention-report"}')
    assert is_report_folder(marked)
    (marked / MARKER).write_text("anything")  # not our marker
    assert not is_report_folder(marked)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "metrics.json").write_text('{"period": "2024-Q1"}')
    assert not is_report_folder(fake)
    assert not is_report_folder(tmp_path / "missing")


# ------------------------------------------------------------------- interrupted runs (SIGTERM/INT)


def _fake_report(folder: Path, period: str = "2024-Q1") -> dict[str, bytes]:
    """A previous report of this tool (marker, metrics.json, report files); returns its files."""
    from retention_report.outputs import update_marker

    (folder / "notebooks").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"period": period, "kpis": {}, "data_quality": {}}))
    (folder / "report.html").write_text("<h1>the previous report</h1>")
    (folder / "report.pdf").write_bytes(b"%PDF-1.7 previous")
    update_marker(folder, period)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(cmd)
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_cleans_up_and_keeps_the_previous_report(tmp_path, sig, code):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    section_notebook(nbs / "01_summary.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(120)")
    (tmp_path / "p.csv").write_text(CSV)
    (tmp_path / "c.toml").write_text('[report]\nsections = ["summary"]\n')
    reports = tmp_path / "reports"
    previous = _fake_report(reports / "2024-Q1")
    proc = subprocess.Popen([*CLI, "run", "--period", "2024-Q1", "--data", "p.csv", "--config", "c.toml",
                             "--out", "reports/2024-Q1", "--notebooks", str(nbs)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sockets_prefix = f"rr-kernel-{proc.pid}-"
    deadline = time.monotonic() + 120
    # the notebook is running once its kernel is up: the executed notebook and the kernel process exist
    while time.monotonic() < deadline and proc.poll() is None:
        if list(reports.glob(".2024-Q1.tmp-*/notebooks/01_summary.ipynb")) and _processes_mentioning(sockets_prefix):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    tmp_dirs = list(reports.glob(".2024-Q1.tmp-*"))
    assert [d.name.split(".tmp-")[1].split("-")[0] for d in tmp_dirs] == [str(proc.pid)]  # the owner is in the name
    time.sleep(1.5)  # well inside the cell
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "Exception" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted (") and "previous report" in last and "untouched" in last, err
    assert sorted(p.name for p in reports.iterdir()) == ["2024-Q1"]  # no temporary folders
    now = {str(p.relative_to(reports / "2024-Q1")): p.read_bytes() for p in (reports / "2024-Q1").rglob("*")
           if p.is_file()}
    assert now == previous
    assert not list(Path(tempfile.gettempdir()).glob(sockets_prefix + "*"))  # sockets + connection file
    deadline = time.monotonic() + 10
    while _processes_mentioning(sockets_prefix) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_mentioning(sockets_prefix)  # the kernel was stopped


@pytest.mark.slow
def test_stale_temporary_folders_of_dead_runs_are_swept(tmp_path):
    from retention_report.outputs import MARKER, sweep_stale, update_marker

    dead = _dead_pid()
    reports = tmp_path / "reports"
    reports.mkdir()
    live_tmp = reports / f".2024-Q1.tmp-{os.getpid()}-abc123"  # a concurrent run that is alive
    dead_tmp = reports / f".2024-Q1.tmp-{dead}-x9_z"
    dead_old = reports / f".2024-Q2.old-{dead}-k2"
    for d in (live_tmp, dead_tmp):
        d.mkdir()
        update_marker(d, "2024-Q1")
        (d / "metrics.json").write_text("{}")
    _fake_report(reports / "2024-Q2", "2024-Q2")
    _fake_report(dead_old, "2024-Q2")
    foreign = reports / f".2024-Q1.tmp-{dead}-mine"  # the right name, but not ours: no marker
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("mine")
    foreign_old = reports / f".thesis.old-{dead}-v1"
    foreign_old.mkdir()
    (foreign_old / "chapter1.txt").write_text("mine")
    sockets = Path(tempfile.mkdtemp(prefix=f"rr-kernel-{dead}-"))
    (sockets / "kernel-1.json").write_text('{"key": "secret"}')
    live_sockets = Path(tempfile.mkdtemp(prefix=f"rr-kernel-{os.getpid()}-"))
    try:
        removed = sweep_stale(reports)
        assert set(removed) >= {dead_tmp, dead_old, sockets}
        assert not dead_tmp.exists() and not dead_old.exists() and not sockets.exists()
        assert (live_tmp / MARKER).is_file() and live_sockets.is_dir()
        assert (foreign / "thesis.txt").read_text() == "mine" and (foreign_old / "chapter1.txt").read_text() == "mine"
        assert (reports / "2024-Q2" / "report.html").is_file()
    finally:
        shutil.rmtree(live_sockets, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.mark.slow
def test_a_report_moved_away_by_a_killed_swap_is_restored(tmp_path):
    from retention_report.outputs import sweep_stale

    dead = _dead_pid()
    old = tmp_path / f".2024-Q1.old-{dead}-q1"
    files = _fake_report(old)
    sweep_stale(tmp_path)
    assert not old.exists()
    assert {str(p.relative_to(tmp_path / "2024-Q1")): p.read_bytes() for p in (tmp_path / "2024-Q1").rglob("*")
            if p.is_file()} == files


def _dead_pid() -> int:
    """The id of a process that has ended."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# --------------------------------------------------------------- re-rendering keeps the email log


@pytest.mark.slow
def test_re_rendering_keeps_the_email_log_and_replaces_only_reports(tmp_path):
    from retention_report.outputs import read_marker

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    section_notebook(nbs / "01_summary.ipynb", "print('fine')")
    (tmp_path / "p.csv").write_text(CSV)
    (tmp_path / "c.toml").write_text('[report]\nsections = ["summary"]\ntitle = "Tiny shop"\n')
    out = tmp_path / "reports" / "2024-Q1"
    # a report made before the marker existed: metrics.json of this tool and report files only
    _fake_report(out)
    (out / ".retention-report").unlink()
    log = {"message_key": "k1", "period": "2024-Q1", "subject": "Tiny shop — Q1 2024", "message_id": "<1@x>",
           "recipients": {"board@shop.example": {"status": "sent", "at": "2024-04-02T08:00:00+00:00"}},
           "attempts": []}
    (out / "email-log.json").write_text(json.dumps(log))
    failed = tmp_path / "reports" / "2024-Q1.failed"  # a failed run's notebooks, from this tool
    _fake_report(failed)
    r = _cli("run", "--period", "2024-Q1", "--data", "p.csv", "--config", "c.toml", "--out", str(out),
             "--notebooks", str(nbs), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "the previous report" not in (out / "report.html").read_text()  # replaced
    assert json.loads((out / "email-log.json").read_text()) == log  # who was sent what survives
    marker = read_marker(out)
    assert marker["period"] == "2024-Q1"
    assert marker["report"]["settings"]["report.title"] == "Tiny shop"
    assert marker["report"]["settings"]["source.path"] == str(tmp_path / "p.csv")
    # the report's record is the metrics' plus the data's content hash (the email command checks it)
    assert {k: v for k, v in marker["report"].items() if k != "data"} == marker["metrics"]
    assert re.fullmatch(r"[0-9a-f]{64}", marker["report"]["data"])
    assert not failed.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["2024-Q1", "index.html"]  # and the archive page


# ------------------------------------------------------------------------- Makefile variables



def _payloads(target: Path) -> list[str]:
    t = str(target)
    return [f"bad$(touch {t})", f"bad$$(touch {t})", f"bad`touch {t}`", f'"; touch {t}; echo "',
            f"'; touch {t}; echo '", f"$(shell touch {t})", f"x\" $$(touch {t}) \"", f"2024-Q1 `touch {t}` *"]


@pytest.mark.parametrize(("target", "var"), [
    ("report", "PERIOD"), ("metrics", "PERIOD"), ("email", "PERIOD"), ("reports", "PERIODS"),
    ("report", "DATA"), ("report", "CONFIG"), ("metrics", "DATA"), ("reports", "CONFIG"), ("email", "TO"),
    ("email", "CONFIG"), ("email", "DATA"), ("email", "DRY_RUN"), ("report", "KERNEL"),
    ("report", "AS_OF"), ("reports", "AS_OF"), ("metrics", "AS_OF"), ("email", "AS_OF"),
])
@pytest.mark.slow
def test_no_make_variable_reaches_a_shell(fake_make_env, tmp_path, target, var):
    work, calls = fake_make_env
    pwned = tmp_path / "pwned"
    for payload in _payloads(pwned):
        values = {"PERIOD": "2024-Q1", "PERIODS": "2024-Q1 2024-Q2", var: payload}
        run_make(work, target, *[f"{k}={v}" for k, v in values.items()])
        assert not pwned.exists(), (var, payload)
    assert not list(work.glob("*touch*"))


@pytest.mark.slow
def test_make_passes_values_as_single_arguments(fake_make_env):
    work, calls = fake_make_env
    period, data, cfg, to = "2024-Q1", "my data/pay ments*.csv", "cfg dir/it's.toml", 'Jane "J" <j@x.example>, b@x.example'
    r = run_make(work, "report", f"PERIOD={period}", f"DATA={data}", f"CONFIG={cfg}")
    assert r.returncode == 0, r.stderr
    r = run_make(work, "email", f"PERIOD={period}", f"DATA={data}", f"CONFIG={cfg}", f"TO={to}", "DRY_RUN=1")
    assert r.returncode == 0, r.stderr
    r = run_make(work, "reports", "PERIODS=2024-Q1  2024-Q2", f"DATA={data}")
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in calls.read_text().splitlines()]
    assert got == [
        ["check-period", period],
        ["run", "--period", period, "--config", cfg, "--data", data],
        ["email", "--period", period, "--config", cfg, "--data", data, "--to", to, "--dry-run"],
        # several periods: one run (the data read once), split at spaces only
        ["run", "--period", "2024-Q1", "--period", "2024-Q2", "--data", data],
    ]
    r = run_make(work, "report")
    assert r.returncode == 2 and "PERIOD is required" in r.stderr
    r = run_make(work, "help")
    assert r.returncode == 0 and "report" in r.stdout


# ------------------------------------------------- re-rendering keeps what the user added (issue 21)


def _user_files(folder: Path) -> dict[str, bytes]:
    """Board notes, an extra notebook, a subfolder with a file and a link: what a user adds."""
    (folder / "board-notes.txt").write_text("Q1: ask about the churn spike")
    (folder / "notebooks").mkdir(exist_ok=True)
    (folder / "notebooks" / "my_analysis.ipynb").write_text('{"cells": []}')
    (folder / "minutes" / "2024").mkdir(parents=True)
    (folder / "minutes" / "2024" / "april.md").write_text("# April")
    (folder / "latest-notes").symlink_to("board-notes.txt")
    return {"board-notes.txt": b"Q1: ask about the churn spike", "notebooks/my_analysis.ipynb": b'{"cells": []}',
            "minutes/2024/april.md": b"# April"}


def _new_report(tmp: Path, period: str = "2024-Q1") -> None:
    from retention_report.outputs import update_marker, written_files

    (tmp / "notebooks").mkdir(parents=True)
    (tmp / "notebooks" / "01_summary.ipynb").write_text("new")
    (tmp / "metrics.json").write_text(json.dumps({"period": period, "kpis": {}, "data_quality": {}}))
    (tmp / "report.html").write_text("<h1>the new report</h1>")
    update_marker(tmp, period, files=written_files(tmp))


@pytest.mark.parametrize("marker_lists_files", [False, True])
def test_the_swap_keeps_files_the_user_added_to_the_report(tmp_path, marker_lists_files):
    from retention_report.outputs import swap_into_place, update_marker, user_entries, written_files

    final = tmp_path / "reports" / "2024-Q1"
    _fake_report(final)
    (final / "notebooks" / "01_summary.ipynb").write_text("old")
    if marker_lists_files:  # a report of this version: the marker lists what the run wrote
        update_marker(final, "2024-Q1", files=written_files(final))
    mine = _user_files(final)
    assert user_entries(final) == ["board-notes.txt", "latest-notes", "minutes", "notebooks/my_analysis.ipynb"]
    tmp = tmp_path / "reports" / ".2024-Q1.tmp-1-x"
    _new_report(tmp)
    swap_into_place(tmp, final)
    assert (final / "report.html").read_text() == "<h1>the new report</h1>"
    assert (final / "notebooks" / "01_summary.ipynb").read_text() == "new"
    assert not (final / "report.pdf").exists()  # the old report's own file: replaced, not kept
    assert {rel: (final / rel).read_bytes() for rel in mine} == mine
    assert os.readlink(final / "latest-notes") == "board-notes.txt"
    assert sorted(p.name for p in final.parent.iterdir()) == ["2024-Q1"]
    # and again: still the user's (the new marker does not list them)
    tmp2 = tmp_path / "reports" / ".2024-Q1.tmp-2-y"
    _new_report(tmp2)
    swap_into_place(tmp2, final)
    assert {rel: (final / rel).read_bytes() for rel in mine} == mine


@pytest.mark.slow
def test_a_user_file_where_the_run_writes_one_is_refused_naming_it(tmp_path):
    from retention_report.outputs import OutputError, check_report_out, update_marker, written_files

    out = tmp_path / "reports" / "2024-Q1"
    _fake_report(out)
    (out / "notebooks" / "01_summary.ipynb").write_text("executed")
    update_marker(out, "2024-Q1", files=written_files(out))  # rendered with sections = ["summary"]
    (out / "notebooks" / "05_cohorts.ipynb").write_text("my own cohort notebook")
    (out / "notes.txt").write_text("mine")
    check_report_out(out, ["notebooks/01_summary.ipynb"])  # kept alongside: fine
    with pytest.raises(OutputError, match="notebooks/05_cohorts.ipynb") as info:
        check_report_out(out, ["notebooks/01_summary.ipynb", "notebooks/05_cohorts.ipynb"])
    assert "notes.txt" not in str(info.value)
    # the same through the command line: exit 2, one line, before the data are read
    (tmp_path / "c.toml").write_text('[report]\nsections = ["summary", "cohorts"]\n')
    r = _cli("run", "--period", "2024-Q1", "--config", "c.toml", "--data", str(tmp_path / "missing.csv"),
             "--out", str(out), cwd=tmp_path)
    _one_error_line(r, 2, "notebooks/05_cohorts.ipynb")
    assert (out / "notebooks" / "05_cohorts.ipynb").read_text() == "my own cohort notebook"


@pytest.mark.slow
def test_failed_and_stale_folders_lose_only_the_tools_files(tmp_path):
    from retention_report.outputs import remove_own, sweep_stale

    failed = tmp_path / "2024-Q1.failed"
    _fake_report(failed)
    (failed / "why-it-failed.txt").write_text("my notes")
    assert remove_own(failed) == ["why-it-failed.txt"]
    assert sorted(p.name for p in failed.iterdir()) == [".retention-report", "why-it-failed.txt"]
    # an old report left by a killed swap whose user file is not in the new report: kept
    dead = _dead_pid()
    old = tmp_path / f".2024-Q2.old-{dead}-k2"
    _fake_report(old, "2024-Q2")
    (old / "board-notes.txt").write_text("only here")
    _fake_report(tmp_path / "2024-Q2", "2024-Q2")
    sweep_stale(tmp_path)
    assert (old / "board-notes.txt").read_text() == "only here"
    assert not (old / "report.html").exists()


@pytest.mark.slow
def test_re_rendering_a_period_keeps_the_board_notes_and_the_extra_notebook(tmp_path):
    """The issue's reproducer: re-render reports/<P>/ after adding files there."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    section_notebook(nbs / "01_summary.ipynb", "print('fine')")
    (tmp_path / "p.csv").write_text(CSV)
    (tmp_path / "c.toml").write_text('[report]\nsections = ["summary"]\n')
    args = ("run", "--period", "2024-Q1", "--data", "p.csv", "--config", "c.toml", "--notebooks", str(nbs))
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "reports" / "2024-Q1"
    mine = _user_files(out)
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert {rel: (out / rel).read_bytes() for rel in mine} == mine
    assert (out / "latest-notes").is_symlink() and (out / "report.pdf").is_file()
    assert (out / "notebooks" / "01_summary.ipynb").is_file()


def test_a_user_file_that_cannot_be_kept_stops_the_swap_and_keeps_the_old_report(tmp_path, monkeypatch):
    from retention_report import outputs
    from retention_report.outputs import OutputError, swap_into_place

    final = tmp_path / "2024-Q1"
    previous = _fake_report(final)
    (final / "board-notes.txt").write_text("mine")
    tmp = tmp_path / ".2024-Q1.tmp-1-x"
    _new_report(tmp)

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_link_or_copy", full)
    with pytest.raises(OutputError, match="board-notes.txt.*No space left"):
        swap_into_place(tmp, final)
    assert (final / "board-notes.txt").read_text() == "mine"
    assert {k: (final / k).read_bytes() for k in previous} == previous


@pytest.mark.slow
def test_an_unmarked_folder_with_metrics_and_notes_is_refused_naming_the_notes(tmp_path):
    out = tmp_path / "reports" / "2024-Q1"
    _fake_report(out)
    (out / ".retention-report").unlink()  # made before the marker existed (or by `metrics --out`)
    (out / "board-notes.txt").write_text("mine")
    r = _cli("run", "--period", "2024-Q1", "--data", str(tmp_path / "missing.csv"), "--out", str(out), cwd=tmp_path)
    _one_error_line(r, 2, "board-notes.txt")
    assert (out / "board-notes.txt").read_text() == "mine"
