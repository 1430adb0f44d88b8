"""No secret in any output (issue 21, item 4): one redaction (retention_report.secrets.redact) for
every place a source is shown, a URL carrying a secret refused before the data are read, notebook
kernels started without the password variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import section_notebook
from typer.testing import CliRunner

from retention_report.cli import app
from retention_report.secrets import (
    inline_secret,
    kernel_environment,
    read_secret,
    redact,
    secret_name,
)

runner = CliRunner()
CLI = [sys.executable, "-m", "retention_report.cli"]


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("postgres://u:hunter22@h/db", "hunter22", "postgres://u:***@h/db"),
        ("postgresql://user:hunter22@db.example.com:5432/shop", "hunter22", "db.example.com:5432/shop"),
        ("snowflake://u:hunter22@acct/db/schema?warehouse=w", "hunter22", "warehouse=w"),
        ("mysql://u:hun@ter22@h/db", "ter22", "mysql://u:***@h/db"),  # an unescaped "@" in it
        ("postgres://u:hun/ter22@h/db", "ter22", "postgres://u:***@h/db"),  # an unescaped "/" in it
        ("postgres://h/db?user=u&password=hunter22&sslmode=require", "hunter22", "sslmode=require"),
        ("mssql://h/db?UID=u&PWD=hunter22", "hunter22", "UID=u"),
        ("Driver={x};Server=s;Uid=u;Pwd=hunter22;", "hunter22", "Uid=u"),
        ("host=h dbname=shop user=u password=hunter22 port=5432", "hunter22", "port=5432"),
        ("host=h password='hunter 22' user=u", "hunter 22", "user=u"),
        ("duckdb://md:shop?motherduck_token=hunter22", "hunter22", "duckdb://md:shop"),
        ("trino://h/cat?access_token=hunter22&x=1", "hunter22", "x=1"),
        ("bigquery://p?api_key=hunter22", "hunter22", "bigquery://p"),
        ("DefaultEndpointsProtocol=https;AccountKey=hunter22;EndpointSuffix=x", "hunter22", "EndpointSuffix=x"),
        ("cannot connect: {'password': 'hunter22', 'host': 'h'}", "hunter22", "'host': 'h'"),
    ],
)
def test_redact_hides_the_secret_of_every_url_form(text, hidden, kept):
    shown = redact(text)
    assert hidden not in shown and "***" in shown and kept in shown
    assert inline_secret(text)  # and each of them is refused as a source


@pytest.mark.parametrize("text", ["postgres://analyst@db.internal:5432/shop", "duckdb:///data/shop.ddb",
                                  "/data/password_reset_log.csv", "exports/payments.csv", "pyspark://",
                                  "bigquery://proj/ds?credentials=/etc/key.json", "keyspace=1"])
def test_redact_leaves_plain_sources_alone(text):
    assert redact(text) == text and inline_secret(text) == ""


def test_a_secret_read_from_the_environment_is_masked_anywhere(monkeypatch):
    monkeypatch.setenv("RR_TEST_DB_PW", "s3cr3t-value")
    assert read_secret("RR_TEST_DB_PW") == "s3cr3t-value"
    assert redact("FATAL: password s3cr3t-value rejected") == "FATAL: password *** rejected"


def test_kernel_environment_drops_password_variables():
    env = {"HOME": "/home/u", "PATH": "/bin", "PWD": "/work", "SHOP_DB": "pw1", "PGPASSWORD": "pw2",
           "RETENTION_REPORT_SMTP_PASSWORD": "pw3", "AWS_SECRET_ACCESS_KEY": "pw4", "GITHUB_TOKEN": "pw5",
           "RETENTION_REPORT_CACHE_DIR": "/c", "COMPASS": "n"}
    kept = kernel_environment(["SHOP_DB", ""], env)
    assert kept == {"HOME": "/home/u", "PATH": "/bin", "PWD": "/work", "RETENTION_REPORT_CACHE_DIR": "/c",
                    "COMPASS": "n"}
    assert secret_name("db_pass") and secret_name("PGPASSWORD") and not secret_name("PASSAGE")


@pytest.mark.parametrize("url", ["postgres://rr:hunter22@127.0.0.1:9/shop",
                                 "postgres://rr@127.0.0.1:9/shop?password=hunter22",
                                 "postgres://127.0.0.1:9/shop?user=rr&pwd=hunter22",
                                 "host=127.0.0.1 port=9 user=rr password=hunter22"])
@pytest.mark.parametrize("command", ["run", "metrics", "validate"])
def test_a_password_in_the_url_is_refused_before_reading(url, command, tmp_path, monkeypatch):
    import ibis

    def no_connect(*a, **k):  # the data must not be read (nor a connection tried)
        raise AssertionError("connected")

    monkeypatch.setattr(ibis, "connect", no_connect)
    monkeypatch.chdir(tmp_path)
    args = [command, "--data", url] + (["--period", "2024-Q1"] if command != "validate" else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "hunter22" not in r.output and "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "source.password_env" in lines[0]
    assert not (tmp_path / "reports").exists()


def test_a_password_in_the_url_is_refused_by_the_data_layer_too():
    from retention_report.config import load_settings
    from retention_report.data import DataError, open_dataset

    s = load_settings(None, **{"source.url": "postgres://h/db?password=hunter22"})
    with pytest.raises(DataError) as info:
        open_dataset(s)
    assert "hunter22" not in str(info.value) and "source.password_env" in str(info.value)


def test_notebook_parameters_refuse_every_inline_secret(tmp_path):
    from retention_report.periods import parse_period
    from retention_report.pipeline import notebook_parameters

    for data in ("postgres://u:pw12@h/db", "postgres://h/db?password=pw12", "host=h password=pw12"):
        with pytest.raises(ValueError, match="source.password_env") as info:
            notebook_parameters(parse_period("2024-Q1"), None, data, tmp_path / "m.json")
        assert "pw12" not in str(info.value)


def test_source_shown_in_metrics_marker_and_index_is_redacted(csv_file, tmp_path, monkeypatch):
    """A source name (or any shown source text) holding a secret is redacted in metrics.json, the
    folder marker and reports/index.html."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[source]\nname = "warehouse?token=hunter22"\n')
    r = runner.invoke(app, ["metrics", "--period", "2024-Q1", "--config", str(cfg), "--data", str(csv_file)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "reports" / "2024-Q1"
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["source"] == "warehouse?token=***"
    for path in [out / "metrics.json", out / ".retention-report", tmp_path / "reports" / "index.html"]:
        if path.exists():
            assert "hunter22" not in path.read_text(), path
    assert (tmp_path / "reports" / "index.html").is_file()
    assert "hunter22" not in r.output


@pytest.mark.slow
def test_section_printing_the_environment_shows_no_password(csv_file, tmp_path):
    """End to end: a section notebook printing os.environ (into report.html and the kept notebook)
    runs in a kernel without the SMTP and database password variables."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    section_notebook(nbs / "01_summary.ipynb", "import os\nprint(sorted(os.environ.items()))")
    cfg = tmp_path / "c.toml"
    # (a database password variable named in [source] would not apply to this CSV source: a config
    # error; SHOP_DB_SECRET_VAR is left out for its name, MY_MAIL_PW as the configured one)
    cfg.write_text('[report]\nsections = ["summary"]\n[email]\npassword_env = "MY_MAIL_PW"\n')
    env = {**os.environ, "RETENTION_REPORT_SMTP_PASSWORD": "smtp-pw-111", "MY_MAIL_PW": "smtp-pw-222",
           "SHOP_DB_SECRET_VAR": "db-pw-333", "PGPASSWORD": "pg-pw-444", "RR_VISIBLE_MARKER": "visible-555"}
    out = tmp_path / "reports" / "2024-Q1"
    r = subprocess.run([*CLI, "run", "--period", "2024-Q1", "--data", str(csv_file), "--config", str(cfg),
                        "--out", str(out), "--notebooks", str(nbs)],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    html = (out / "report.html").read_text()
    kept = (out / "notebooks" / "01_summary.ipynb").read_text()
    assert "visible-555" in html and "visible-555" in kept  # the section did print the environment
    for secret in ("smtp-pw-111", "smtp-pw-222", "db-pw-333", "pg-pw-444"):
        assert secret not in html and secret not in kept and secret not in r.stderr + r.stdout, secret


def test_email_errors_are_redacted(tmp_path, monkeypatch):
    from retention_report.mail.command import email_command

    monkeypatch.chdir(tmp_path)
    errors: list[str] = []
    code = email_command("2024-Q1", data="postgres://u:hunter22@h/db", err=errors.append, say=errors.append)
    assert code == 2 and errors and not any("hunter22" in e for e in errors)


def test_paths_are_untouched_by_redaction_in_the_marker(csv_file):
    from retention_report.config import load_settings
    from retention_report.outputs import content_record

    rec = content_record(load_settings(None, **{"source.path": str(csv_file)}))
    assert rec["source"] == str(Path(csv_file).resolve()) or rec["source"] == os.path.abspath(csv_file)


@pytest.mark.slow
def test_progress_lines_of_a_run_show_no_password(tmp_path):
    """The "[metrics] reading …" line of a run (library call, settings not checked by the CLI) is
    redacted, and the data layer refuses the URL before connecting."""
    from retention_report.config import load_settings
    from retention_report.data import DataError
    from retention_report.periods import parse_period
    from retention_report.pipeline import run_report

    s = load_settings(None, **{"source.url": "postgres://rr:hunter22@127.0.0.1:9/shop",
                               "report.output_dir": str(tmp_path / "reports")})
    lines: list[str] = []
    with pytest.raises(DataError) as info:
        run_report(s, parse_period("2024-Q1"), progress=lines.append)
    assert any("[metrics] reading postgres://rr:***@127.0.0.1:9/shop" in ln for ln in lines), lines
    assert not any("hunter22" in ln for ln in lines) and "hunter22" not in str(info.value)
    assert not (tmp_path / "reports" / "2024-Q1").exists()
