"""Tests for ``retention_report.config``: loading, validating and overriding the TOML settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from retention_report.config import SECTIONS, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]

FULL_TOML = """\
timezone = "Europe/Berlin"

[source]
kind = "csv"
path = "data/payments.csv"
password_env = "PAYMENTS_DB_PASSWORD"
table = "pay"
query = "select * from pay"
name = "Shop payments"

[source.csv]
delimiter = ";"
decimal = ","
thousands = " "
date_format = "%d.%m.%Y %H:%M"
encoding = "cp1251"
header = false

[columns]
customer_id = "client"
paid_at = "ts"
amount = "sum"
order_id = "order"
cost = "cogs"
segments = ["channel", "country"]

[metrics]
activity_window_days = 180
split_basis = "customer"
cohort_grain = "week"
cohort_count = 24
cohort_segment = "channel"
lookback_months = 6
frequency_thresholds = [0.5, 2.0]
lifetime_method = "observed"
trend_periods = 12

[validation]
on_invalid = "drop"
allow_future_dates = true

[report]
title = "Retention Q1"
currency = "USD"
sections = ["summary", "cohorts"]
output_dir = "out"
kernel = "python3"
report_url = "https://reports.example.com/q1"

[engine]
memory_limit = "8GB"
threads = 4
temp_directory = "/tmp/spill"

[email]
to = ["a@example.com", "b@example.com"]
cc = ["c@example.com"]
bcc = ["d@example.com"]
sender = "reports@example.com"
reply_to = "team@example.com"
smtp_host = "smtp.example.com"
smtp_port = 465
security = "tls"
user = "reports"
password_env = "SMTP_PW"
attach_html = true
max_attachment_mb = 5.5
timeout_seconds = 10
retries = 1
retry_backoff_seconds = 0.5
verify_tls = false
"""


def write(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    return str(info.value)


# --------------------------------------------------------------------------------------------
# Defaults and a full file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [None, ""])
def test_defaults_without_a_file(path):
    s = load_settings(path)
    assert s == Settings()
    assert s.timezone == "UTC"
    assert s.source.kind == "auto"
    assert s.source.path == ""
    assert s.source.url == ""
    assert s.source.table == "payments"
    assert s.source.csv.delimiter == ","
    assert s.source.csv.decimal == "."
    assert s.source.csv.encoding == "utf-8"
    assert s.source.csv.header is True
    assert s.columns.customer_id == "customer_id"
    assert s.columns.paid_at == "paid_at"
    assert s.columns.amount == "amount"
    assert s.columns.segments == []
    assert s.metrics.activity_window_days == 365
    assert s.metrics.split_basis == "purchase"
    assert s.metrics.cohort_grain == "month"
    assert s.metrics.cohort_count == 12
    assert s.metrics.lookback_months == 12
    assert s.metrics.frequency_thresholds == []
    assert s.metrics.lifetime_method == "churn"
    assert s.metrics.trend_periods == 8
    assert s.validation.on_invalid == "error"
    assert s.validation.allow_future_dates is False
    assert s.report.sections == [
        "summary",
        "new_vs_returning",
        "segments",
        "customer_base",
        "cohorts",
        "behaviour",
        "predicted_value",
        "appendix",
    ]
    assert s.report.currency == "EUR"
    assert s.report.output_dir == "reports"
    assert s.engine.threads == 0
    assert s.email.to == []
    assert s.email.smtp_host == "localhost"
    assert s.email.smtp_port == 0
    assert s.email.security == "starttls"
    assert s.email.password_env == "RETENTION_REPORT_SMTP_PASSWORD"
    assert s.email.retries == 3


def test_empty_file_gives_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == Settings()


def test_full_file(tmp_path):
    s = load_settings(write(tmp_path, FULL_TOML))
    assert s.timezone == "Europe/Berlin"

    assert s.source.kind == "csv"
    assert s.source.path == "data/payments.csv"
    assert s.source.url == ""
    assert s.source.password_env == "PAYMENTS_DB_PASSWORD"
    assert s.source.table == "pay"
    assert s.source.query == "select * from pay"
    assert s.source.name == "Shop payments"
    assert s.source.csv.delimiter == ";"
    assert s.source.csv.decimal == ","
    assert s.source.csv.thousands == " "
    assert s.source.csv.date_format == "%d.%m.%Y %H:%M"
    assert s.source.csv.encoding == "cp1251"
    assert s.source.csv.header is False

    assert s.columns.customer_id == "client"
    assert s.columns.paid_at == "ts"
    assert s.columns.amount == "sum"
    assert s.columns.order_id == "order"
    assert s.columns.cost == "cogs"
    assert s.columns.segments == ["channel", "country"]

    assert s.metrics.activity_window_days == 180
    assert s.metrics.split_basis == "customer"
    assert s.metrics.cohort_grain == "week"
    assert s.metrics.cohort_count == 24
    assert s.metrics.cohort_segment == "channel"
    assert s.metrics.lookback_months == 6
    assert s.metrics.frequency_thresholds == [0.5, 2.0]
    assert s.metrics.lifetime_method == "observed"
    assert s.metrics.trend_periods == 12

    assert s.validation.on_invalid == "drop"
    assert s.validation.allow_future_dates is True

    assert s.report.title == "Retention Q1"
    assert s.report.currency == "USD"
    assert s.report.sections == ["summary", "cohorts"]
    assert s.report.output_dir == "out"
    assert s.report.kernel == "python3"
    assert s.report.report_url == "https://reports.example.com/q1"

    assert s.engine.memory_limit == "8GB"
    assert s.engine.threads == 4
    assert s.engine.temp_directory == "/tmp/spill"

    assert s.email.to == ["a@example.com", "b@example.com"]
    assert s.email.cc == ["c@example.com"]
    assert s.email.bcc == ["d@example.com"]
    assert s.email.sender == "reports@example.com"
    assert s.email.reply_to == "team@example.com"
    assert s.email.smtp_host == "smtp.example.com"
    assert s.email.smtp_port == 465
    assert s.email.security == "tls"
    assert s.email.user == "reports"
    assert s.email.password_env == "SMTP_PW"
    assert s.email.attach_html is True
    assert s.email.max_attachment_mb == 5.5
    assert s.email.timeout_seconds == 10.0
    assert s.email.retries == 1
    assert s.email.retry_backoff_seconds == 0.5
    assert s.email.verify_tls is False


def test_partial_file_keeps_other_defaults(tmp_path):
    s = load_settings(write(tmp_path, "[metrics]\nsplit_basis = 'customer'\n"))
    assert s.metrics.split_basis == "customer"
    assert s.metrics.activity_window_days == 365
    assert s.source == Settings().source


def test_path_may_be_a_str(tmp_path):
    path = write(tmp_path, 'timezone = "Asia/Tokyo"\n')
    assert load_settings(str(path)).timezone == "Asia/Tokyo"


def test_file_with_utf8_bom(tmp_path):
    # Windows Notepad and friends write a byte-order mark; tomllib alone rejects it.
    path = tmp_path / "bom.toml"
    path.write_bytes('\ufefftimezone = "Europe/Paris"\n[report]\ntitle = "Rétention"\n'.encode())
    s = load_settings(path)
    assert s.timezone == "Europe/Paris"
    assert s.report.title == "Rétention"


def test_documented_example_is_valid():
    example = ROOT / "config" / "example.toml"
    if not example.is_file():
        pytest.skip("config/example.toml not written yet")
    load_settings(example)


# --------------------------------------------------------------------------------------------
# File errors
# --------------------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "settings.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_settings(missing)
    assert str(missing) in str(info.value)


def test_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "timezone = ",
        "[metrics\nsplit_basis = 'purchase'\n",
        "timezone = 'UTC'\ntimezone = 'UTC'\n",  # duplicate key
        "this is not toml",
    ],
)
def test_invalid_toml_mentions_the_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "not valid TOML" in msg


@pytest.mark.parametrize(
    "text",
    [
        "timezone = " + "[" * 20000 + "]" * 20000 + "\n",  # arrays
        "[report]\ntitle = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n",  # inline tables
    ],
)
def test_deeply_nested_toml_is_one_line_exit_2(tmp_path, text):
    """issue 21 item 9: tomllib's RecursionError is a config error (exit 2, one line, no traceback)."""
    from typer.testing import CliRunner

    from retention_report.cli import app

    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="too deeply") as info:
        load_settings(path)
    assert str(path) in str(info.value)
    r = CliRunner().invoke(app, ["metrics", "--period", "2024-Q1", "--config", str(path)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and "too deeply" in r.output


def test_undecodable_file_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[report]\ntitle = "Rétention"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------------------------
# Validation errors: each names the dotted key
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("timezon = 'UTC'\n", "timezon"),
        ("[metric]\nsplit_basis = 'customer'\n", "metric"),
        ("[metrics]\nactivty_window_days = 30\n", "metrics.activty_window_days"),
        ("[source]\npassword = 'secret'\n", "source.password"),
        ("[source.csv]\nseparator = ';'\n", "source.csv.separator"),
        ("[email]\nsmtp_password = 'x'\n", "email.smtp_password"),
        ("[report]\nsection = ['summary']\n", "report.section"),
    ],
)
def test_unknown_key(tmp_path, text, key):
    msg = config_error(tmp_path, text)
    assert f"{key}: unknown key" in msg


def test_errors_name_the_file(tmp_path):
    path = write(tmp_path, "[metrics]\nactivty_window_days = 30\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_all_errors_are_reported_at_once(tmp_path):
    msg = config_error(tmp_path, "[metrics]\nactivty_window_days = 30\nsplit_basis = 'orders'\n")
    assert "metrics.activty_window_days: unknown key" in msg
    assert "metrics.split_basis" in msg


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        (
            "[metrics]\nactivity_window_days = 'a year'\n",
            "metrics.activity_window_days",
            "'a year'",
        ),
        ("[metrics]\nactivity_window_days = 0\n", "metrics.activity_window_days", "0"),
        ("[metrics]\ncohort_count = 61\n", "metrics.cohort_count", "61"),
        ("[metrics]\ntrend_periods = 1\n", "metrics.trend_periods", "1"),
        ("[metrics]\nlookback_months = -1\n", "metrics.lookback_months", "-1"),
        ("[columns]\nsegments = 'channel'\n", "columns.segments", "'channel'"),
        ("[engine]\nthreads = -1\n", "engine.threads", "-1"),
        ("[email]\nsmtp_port = 70000\n", "email.smtp_port", "70000"),
        ("[email]\nretries = 11\n", "email.retries", "11"),
        ("[email]\nmax_attachment_mb = 0\n", "email.max_attachment_mb", "0"),
        ("[source.csv]\ndecimal = ';'\n", "source.csv.decimal", "';'"),
        (
            "[validation]\nallow_future_dates = 'maybe'\n",
            "validation.allow_future_dates",
            "'maybe'",
        ),
        ("timezone = 1\n", "timezone", "1"),
    ],
)
def test_wrong_type_or_value_names_the_key(tmp_path, text, key, shown):
    msg = config_error(tmp_path, text)
    assert f"{key}:" in msg
    assert f"(got {shown})" in msg


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        (
            "[metrics]\nsplit_basis = 'orders'\n",
            "metrics.split_basis",
            ["'purchase'", "'customer'"],
        ),
        ("[metrics]\ncohort_grain = 'day'\n", "metrics.cohort_grain", ["'month'", "'week'"]),
        (
            "[metrics]\nlifetime_method = 'x'\n",
            "metrics.lifetime_method",
            ["'churn'", "'observed'"],
        ),
        ("[validation]\non_invalid = 'skip'\n", "validation.on_invalid", ["'error'", "'drop'"]),
        ("[email]\nsecurity = 'ssl'\n", "email.security", ["'starttls'", "'tls'", "'none'"]),
        (
            "[source]\nkind = 'mysql'\n",
            "source.kind",
            ["'auto'", "'csv'", "'parquet'", "'excel'", "'duckdb'", "'sqlite'", "'postgres'"],
        ),
    ],
)
def test_bad_enum_lists_allowed_values(tmp_path, text, key, allowed):
    msg = config_error(tmp_path, text)
    assert f"{key}:" in msg
    for value in allowed:
        assert value in msg


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "/etc/localtime", "../UTC", "CET+1"])
def test_unknown_timezone(tmp_path, tz):
    msg = config_error(tmp_path, f"timezone = {tz!r}\n")
    assert "timezone:" in msg
    assert "unknown time zone" in msg
    assert "Europe/Berlin" in msg  # suggests the IANA form


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_known_timezone(tmp_path, tz):
    assert load_settings(write(tmp_path, f"timezone = {tz!r}\n")).timezone == tz


@pytest.mark.parametrize(
    "thresholds",
    ["[1.0]", "[1.0, 2.0, 3.0]", "[2.0, 1.0]", "[-1.0, 2.0]", "['a', 'b']"],
)
def test_invalid_frequency_thresholds(tmp_path, thresholds):
    msg = config_error(tmp_path, f"[metrics]\nfrequency_thresholds = {thresholds}\n")
    assert "metrics.frequency_thresholds" in msg


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [("[]", []), ("[0.5, 2]", [0.5, 2.0]), ("[0, 0]", [0.0, 0.0]), ("[1, 1]", [1.0, 1.0])],
)
def test_valid_frequency_thresholds(tmp_path, thresholds, expected):
    s = load_settings(write(tmp_path, f"[metrics]\nfrequency_thresholds = {thresholds}\n"))
    assert s.metrics.frequency_thresholds == expected


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JavaScript:alert(document.cookie)", " javascript:alert(1)", "data:text/html,<b>x</b>",
     "file:///etc/passwd", "ftp://reports.example.com/q1", "reports.example.com/q1", "https://", "http:///path",
     "https://reports.example.com/q1\r\nBcc: x@evil.example", "https://reports.example.com/a b"],
)
def test_report_url_must_be_http_or_https(tmp_path, url):
    msg = config_error(tmp_path, f"[report]\nreport_url = {json.dumps(url)}\n")
    assert "report.report_url" in msg and "http" in msg


@pytest.mark.parametrize("url", ["", "https://reports.example.com/q1", "http://intranet/reports/2024-Q1/",
                                 "https://reports.example.com:8443/r?period=2024-Q1#kpis"])
def test_valid_report_url(tmp_path, url):
    assert load_settings(write(tmp_path, f"[report]\nreport_url = {json.dumps(url)}\n")).report.report_url == url


def test_unknown_report_section(tmp_path):
    msg = config_error(tmp_path, "[report]\nsections = ['summary', 'cohorst']\n")
    assert "report.sections" in msg
    assert "cohorst" in msg
    for known in SECTIONS:
        assert known in msg


def test_every_known_section_is_accepted(tmp_path):
    s = load_settings(write(tmp_path, f"[report]\nsections = {list(reversed(SECTIONS))!r}\n"))
    assert s.report.sections == list(reversed(SECTIONS))


def test_cohort_segment_must_be_a_segment_column(tmp_path):
    msg = config_error(
        tmp_path,
        "[columns]\nsegments = ['channel']\n[metrics]\ncohort_segment = 'country'\n",
    )
    assert "metrics.cohort_segment 'country'" in msg
    assert "columns.segments ['channel']" in msg


def test_cohort_segment_without_segments(tmp_path):
    msg = config_error(tmp_path, "[metrics]\ncohort_segment = 'channel'\n")
    assert "metrics.cohort_segment 'channel'" in msg


def test_source_with_both_path_and_url(tmp_path):
    msg = config_error(tmp_path, "[source]\npath = 'a.csv'\nurl = 'postgres://h/db'\n")
    assert "source:" in msg
    assert "either source.path or source.url" in msg


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def test_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path, FULL_TOML)
    s = load_settings(path, **{"source.path": "x.csv", "metrics.split_basis": "purchase"})
    assert s.source.path == "x.csv"
    assert s.metrics.split_basis == "purchase"
    # everything else still comes from the file
    assert s.metrics.activity_window_days == 180
    assert s.source.csv.delimiter == ";"
    assert s.timezone == "Europe/Berlin"


def test_overrides_on_defaults():
    s = load_settings(
        None,
        **{
            "source.path": "x.csv",
            "metrics.split_basis": "customer",
            "timezone": "Europe/Berlin",
            "source.csv.delimiter": ";",
        },
    )
    assert s.source.path == "x.csv"
    assert s.metrics.split_basis == "customer"
    assert s.timezone == "Europe/Berlin"
    assert s.source.csv.delimiter == ";"


def test_none_overrides_are_ignored(tmp_path):
    path = write(tmp_path, FULL_TOML)
    s = load_settings(path, **{"source.path": None, "metrics.split_basis": None, "timezone": None})
    assert s == load_settings(path)
    assert s.source.path == "data/payments.csv"
    assert s.metrics.split_basis == "customer"


def test_overrides_are_coerced(tmp_path):
    s = load_settings(None, **{"metrics.activity_window_days": "90"})
    assert s.metrics.activity_window_days == 90


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"metrics.split_basis": "orders"}, "metrics.split_basis"),
        ({"metrics.activity_window_days": "a year"}, "metrics.activity_window_days"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"metrics.activty_window_days": 30}, "metrics.activty_window_days: unknown key"),
        ({"nosuch.key": 1}, "nosuch: unknown key"),
        ({"timezone.key": 1}, "'timezone' is not a section"),
        ({"source.url": "postgres://h/db", "source.path": "a.csv"}, "either source.path"),
    ],
)
def test_invalid_overrides(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(None, **overrides)
    assert fragment in str(info.value)


def test_invalid_override_names_its_origin():
    with pytest.raises(ConfigError, match="command-line overrides"):
        load_settings(None, **{"metrics.split_basis": "orders"})


def test_with_overrides_returns_a_copy():
    s = Settings()
    t = s.with_overrides(**{"report.title": "Other"})
    assert t.report.title == "Other"
    assert s.report.title == "Sales & customer retention"


# --------------------------------------------------------------------------------------------
# public_dict and immutability
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
        (
            "postgresql://user:secret@db.example.com:5432/shop",
            "postgresql://user:***@db.example.com:5432/shop",
        ),
        ("postgres://u:s3cr@t@h/db", "postgres://u:***@h/db"),  # unescaped "@" in the password
        ("postgres://:secret@h/db", "postgres://:***@h/db"),  # no user name
        ("postgres://h/db?user=u&password=secret", "postgres://h/db?user=u&password=***"),
        (
            "postgres://h/db?password=secret&sslmode=require",
            "postgres://h/db?password=***&sslmode=require",
        ),
        ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),  # nothing to hide
        ("duckdb:///data/shop.ddb", "duckdb:///data/shop.ddb"),
    ],
)
def test_public_dict_redacts_url_password(url, expected):
    s = load_settings(None, **{"source.url": url})
    public = s.public_dict()
    assert public["source"]["url"] == expected
    assert "secret" not in repr(public)
    assert "s3cr" not in repr(public)
    # the settings themselves keep the real URL
    assert s.source.url == url


def test_public_dict_is_plain_data():
    s = load_settings(None, **{"source.path": "x.csv"})
    public = s.public_dict()
    assert public["source"]["path"] == "x.csv"
    assert public["source"]["url"] == ""
    assert public["metrics"]["activity_window_days"] == 365
    assert set(public) == {
        "timezone",
        "source",
        "columns",
        "metrics",
        "clv",
        "validation",
        "report",
        "engine",
        "email",
    }


def test_public_dict_does_not_change_the_settings():
    s = load_settings(None, **{"source.url": "postgres://u:secret@h/db"})
    s.public_dict()["report"]["title"] = "changed"
    assert s.report.title == "Sales & customer retention"
    assert s.source.url == "postgres://u:secret@h/db"


@pytest.mark.parametrize(
    ("obj", "attr", "value"),
    [
        ("settings", "timezone", "Europe/Berlin"),
        ("metrics", "split_basis", "customer"),
        ("source", "path", "x.csv"),
        ("csv", "delimiter", ";"),
        ("email", "smtp_port", 25),
    ],
)
def test_settings_are_frozen(obj, attr, value):
    s = load_settings(None)
    target = {
        "settings": s,
        "metrics": s.metrics,
        "source": s.source,
        "csv": s.source.csv,
        "email": s.email,
    }[obj]
    before = getattr(target, attr)
    with pytest.raises(ValidationError, match="frozen"):
        setattr(target, attr, value)
    assert getattr(target, attr) == before


def test_cell_timeout_is_generous_by_default_and_validated(tmp_path):
    assert Settings().report.cell_timeout_seconds == 1800
    assert load_settings(None, **{"report.cell_timeout_seconds": 60}).report.cell_timeout_seconds == 60
    for bad in ("0", "-5", "'soon'"):
        msg = config_error(tmp_path, f"[report]\ncell_timeout_seconds = {bad}\n")
        assert "report.cell_timeout_seconds" in msg


@pytest.mark.parametrize(("key", "limit"), [
    ("report.title", 200), ("report.currency", 16), ("report.kernel", 4096), ("report.output_dir", 4096),
    ("source.name", 200), ("email.sender", 320), ("email.reply_to", 320), ("email.user", 320),
    ("report.report_url", 2048), ("source.csv.date_format", 100),
])
def test_free_text_settings_are_bounded(tmp_path, key, limit):
    """A 30 MB report.title ran the PDF step for 10+ minutes (issue 21 item 8): text settings have a
    length limit, and a longer value is a config error naming the key and the limit."""
    section, name = key.rsplit(".", 1)
    value = "https://x.example/" + "a" * limit if name == "report_url" else "a" * (limit + 1)
    header = "[" + section + "]"
    msg = config_error(tmp_path, f'{header}\n{name} = "{value}"\n')
    assert key in msg and str(limit) in msg
    assert len(msg) < 1000  # the 30 MB value is not echoed back
    ok = "a" * min(limit, 20)
    if name != "report_url":
        assert load_settings(None, **{key: ok})


def test_cohort_segment_top_is_validated(tmp_path):
    assert Settings().metrics.cohort_segment_top == 7
    for bad in ("0", "8"):
        msg = config_error(tmp_path, f"[metrics]\ncohort_segment_top = {bad}\n")
        assert "metrics.cohort_segment_top" in msg
