"""Run configuration: one TOML file, validated by pydantic, overridable from the command line.

The documented example is ``config/example.toml``. Every section and key is optional; unknown keys
are errors (a typo must not be silently ignored). Secrets are never read from this file: database
and SMTP passwords come from environment variables (or a git-ignored ``.env``) named here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .sections import SECTION_NAMES, is_notebook_path, section

__all__ = [
    "ConfigError",
    "Settings",
    "SourceSettings",
    "CsvSettings",
    "ColumnSettings",
    "MetricSettings",
    "ClvSettings",
    "ValidationSettings",
    "ReportSettings",
    "EngineSettings",
    "EmailSettings",
    "load_settings",
    "redact_url",
    "refuse_inline_secrets",
]

SECTIONS = SECTION_NAMES  # the registry: retention_report.sections


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


# every text setting is bounded (issue 21: a 30 MB report.title ran the PDF step for 10+ minutes);
# the ones shown in the report or an email have tighter limits of their own (Field max_length)
TEXT_MAX = 4096


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, str_max_length=TEXT_MAX)


class CsvSettings(_Model):
    """How to read CSV files (an error with another source kind: :meth:`SourceSettings._keys_apply`)."""

    delimiter: str = Field(
        ",", description="field separator, e.g. ';' or '\\t', or \"whitespace\" for runs of spaces/tabs"
    )
    decimal: str = Field(".", description="decimal separator of amounts: '.' or ','")
    thousands: str = Field(
        "",
        description="thousands separator inside amounts, e.g. ' ', '.', ',' or \"'\"; accepted only "
        "between groups of exactly three digits; empty = none",
    )
    date_format: str = Field(
        "", max_length=100,
        description="strptime format of paid_at; empty = ISO 8601 (years 1900 and later, four digits)",
    )
    encoding: str = Field("utf-8", description="file encoding, e.g. 'utf-8', 'latin-1', 'cp1251'")
    header: bool = True

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, v: str) -> str:
        if v not in (".", ","):
            raise ValueError("decimal must be '.' or ','")
        return v

    @field_validator("thousands")
    @classmethod
    def _thousands(cls, v: str) -> str:
        """Empty, or one character that is no digit, sign or letter (a space stands for any space,
        including the no-break spaces spreadsheets write)."""
        if v and (len(v) != 1 or v.isalnum() or v in "+-"):
            raise ValueError("thousands must be empty or one separator character such as ' ', '.', ',' or \"'\"")
        return v

    @model_validator(mode="after")
    def _separators_differ(self) -> CsvSettings:
        if self.thousands and self.thousands == self.decimal:
            raise ValueError(
                f"thousands and decimal are both {self.decimal!r}: an amount such as '1{self.decimal}500' "
                "would be ambiguous; set different separators (e.g. decimal = ',' and thousands = '.')"
            )
        return self


class SourceSettings(_Model):
    """Where the payment log is.

    ``kind = "auto"`` picks by the path's extension (``.csv``/``.tsv``/``.txt``, ``.parquet`` or a
    folder/glob of Parquet files, ``.duckdb``/``.ddb``, ``.sqlite``/``.db``, ``.xlsx``) or by the
    URL's scheme (``postgres://``, ``duckdb://``, ``pyspark://`` …, anything ``ibis.connect`` takes).
    With no path and no URL the embedded sample data is used (generated on first use).
    ``kind = "spark"`` (or a ``spark://``/``pyspark://`` URL) runs the same metrics on Spark through
    Ibis's PySpark backend: ``path`` is read as Parquet, or ``table``/``query`` from the session's
    catalog; the master comes from ``RETENTION_REPORT_SPARK_MASTER`` (default ``local[*]``).
    """

    kind: Literal["auto", "csv", "parquet", "excel", "duckdb", "sqlite", "postgres", "spark", "url", "sample"] = "auto"
    path: str = Field("", description="file, folder, glob or database file")
    url: str = Field("", description="Ibis connection URL; put the password in password_env")
    password_env: str = Field("", description="environment variable holding the database password")
    table: str = Field("payments", description="table name inside a database")
    query: str = Field("", max_length=100_000, description="SQL query used instead of the table")
    name: str = Field("", max_length=200, description="data source name shown in the report; default: the path")
    csv: CsvSettings = CsvSettings()

    @model_validator(mode="after")
    def _one_of(self) -> SourceSettings:
        if self.path and self.url:
            raise ValueError("give either source.path or source.url, not both")
        return self


class ColumnSettings(_Model):
    """Column mapping: canonical name = the name in the source."""

    customer_id: str = "customer_id"
    paid_at: str = "paid_at"
    amount: str = "amount"
    order_id: str = Field("", description="optional: order identifier (AOV per order)")
    payment_id: str = Field(
        "",
        description="optional: unique id of each payment row; rows repeating one are double exports "
        "(identical: dropped and counted; different: invalid). Without it every row counts",
    )
    cost: str = Field("", description="optional: cost of the payment (margin)")
    segments: list[str] = Field(default_factory=list, description="segment columns, e.g. channel")


class MetricSettings(_Model):
    """Metric definitions that are a matter of convention (SPEC §4)."""

    activity_window_days: int = Field(365, gt=0, description="W: active = a purchase in (d - W, d]")
    split_basis: Literal["purchase", "customer"] = "purchase"
    cohort_grain: Literal["month", "week"] = "month"
    cohort_count: int = Field(12, gt=0, le=60, description="cohorts shown: trailing buckets up to end")
    cohort_segment: str = Field("", description="segment column to break cohorts down by")
    lookback_months: int = Field(12, gt=0, le=60, description="frequency lookback for X/Y/Z")
    frequency_thresholds: list[float] = Field(
        default_factory=list,
        description="[low, high] purchases per month for rare/medium/frequent; empty = terciles",
    )
    lifetime_method: Literal["churn", "observed"] = "churn"
    trend_periods: int = Field(8, ge=2, le=24, description="periods in the trend charts")
    min_group_size: int = Field(
        30, ge=1, description="cohorts, segments and breakdown values with fewer customers are marked, never headlined")
    cohort_segment_top: int = Field(
        7, ge=1, le=7,
        description="segment values with their own retention curve (those with the most customers; at most 7, "
        "one colour each); the rest are one '(other)' curve",
    )

    @field_validator("frequency_thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if v and (len(v) != 2 or not 0 <= v[0] <= v[1]):
            raise ValueError("frequency_thresholds must be [low, high] with 0 <= low <= high")
        return v


class ClvSettings(_Model):
    """Predicted customer value (issue 17): BG/NBD (or Pareto/NBD) + Gamma-Gamma, fitted on the data
    up to the period end (retention_report.metrics.predictive)."""

    enabled: bool = Field(True, description="fit the models; false = no clv block, the section says so")
    model: Literal["bg_nbd", "pareto_nbd"] = Field("bg_nbd", description="purchase model")
    horizon_days: int = Field(365, gt=0, le=3650, description="prediction horizon of expected purchases and CLV")
    annual_discount: float = Field(0.10, ge=0, lt=1, description="annual discount rate of the CLV (0.10 = 10%)")
    at_risk_threshold: float = Field(0.5, gt=0, lt=1, description="repeat customers with P(alive) below it are at risk")
    min_customers: int = Field(50, ge=2, description="fewer customers by the period end: no fit (the block is null)")


class ValidationSettings(_Model):
    """What to do with bad rows (SPEC §2)."""

    on_invalid: Literal["error", "drop"] = Field(
        "error", description="error: stop and name the problem; drop: drop, count and report"
    )
    # SPEC §2 "Guest payments": decided on its own, whatever on_invalid says (dropping them removes
    # revenue from every revenue KPI, so it must be chosen by name)
    empty_customer_id: Literal["error", "drop", "guest"] = Field(
        "error",
        description="payments without a customer id: error (stop), drop (drop and count) or guest "
        "(revenue without a customer: in revenue, refunds and trends, not in customer metrics)",
    )
    allow_future_dates: bool = False


class MinChangeSettings(_Model):
    """The smallest change of a KPI worth an arrow, a colour and a finding (SPEC §4.6), on top of
    being significant at 95%."""

    relative: float = Field(0.01, ge=0, lt=10, description="money and counts: relative change (0.01 = 1%)")
    rate_points: float = Field(0.5, ge=0, le=100, description="rates: change in percentage points (0.5 = 0.5 pp)")


class ReportSettings(_Model):
    title: str = Field("Sales & customer retention", max_length=200, description="the report's title")
    currency: str = Field("EUR", max_length=16, description="ISO code or symbol shown with money")
    # the reader's language: every word, and how numbers, money and dates are written (i18n.py);
    # independent of the currency
    language: str = Field("en", description="language of the report and the email: en, ru or de")
    sections: list[str] = Field(default_factory=lambda: list(SECTIONS))
    output_dir: str = "reports"
    kernel: str = Field("retention-report", description="Jupyter kernel used to run the notebooks")
    # a report project's own copies (`retention-report init`); relative paths are taken from the
    # config file's folder; empty = the package's (retention_report.paths)
    notebooks_dir: str = Field("", description="folder of the section notebooks; empty = the package's")
    templates_dir: str = Field("", description="folder with report/ and email/ templates; empty = the package's")
    report_url: str = Field("", max_length=2048, description="where the full report is published (shown in emails)")
    cell_timeout_seconds: float = Field(
        1800, gt=0, le=86_400,
        description="a notebook cell running longer fails the run (the previous report is kept)",
    )
    min_change: MinChangeSettings = MinChangeSettings()

    @field_validator("report_url")
    @classmethod
    def _report_url(cls, v: str) -> str:
        """Empty, or an absolute http(s) URL: it becomes a link in the email (no ``javascript:``,
        ``data:`` or ``file:`` links, no spaces or line breaks)."""
        if not v:
            return v
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if (parts.scheme.lower() not in ("http", "https") or not parts.hostname
                or any(c.isspace() or ord(c) < 32 or c in '<>"' for c in v)):
            raise ValueError("must be an absolute http:// or https:// URL, e.g. 'https://reports.example.com/2024-Q1/'")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        """One of the languages the package has catalogs for (:data:`retention_report.i18n.LANGUAGES`)."""
        from .i18n import LANGUAGES

        if v not in LANGUAGES:
            raise ValueError(f"unknown report language {v!r}; accepted: {', '.join(LANGUAGES)}")
        return v

    @field_validator("sections")
    @classmethod
    def _sections(cls, v: list[str]) -> list[str]:
        """Registered section names, or paths of one's own notebooks ending in ``.ipynb`` (relative
        to the config file's folder: :func:`_project_dirs`); no notebook file name twice (a run keeps
        each executed section under its file name)."""
        unknown = [s for s in v if s not in SECTIONS and not is_notebook_path(s)]
        if unknown:
            raise ValueError(f"unknown section(s) {unknown}; known: {list(SECTIONS)}, "
                             "or the path of a notebook of your own ending in .ipynb")
        files = [Path(s).name if is_notebook_path(s) else section(s).notebook for s in dict.fromkeys(v)]
        twice = sorted({f for f in files if files.count(f) > 1})
        if twice:
            raise ValueError(f"two sections have the notebook file name(s) {twice}; rename your own notebook")
        return v


class EngineSettings(_Model):
    """Embedded DuckDB engine limits (large inputs spill to temp_directory)."""

    memory_limit: str = Field("", description="e.g. '8GB'; empty = DuckDB default (80% of RAM)")
    threads: int = Field(0, ge=0, description="0 = all cores")
    temp_directory: str = Field("", description="spill folder; empty = DuckDB default")
    cache: bool = Field(True, description="keep a file source's validated, derived tables between runs")
    cache_dir: str = Field(
        default_factory=lambda: os.environ.get("RETENTION_REPORT_CACHE_DIR", ".cache/retention-report"),
        description="where they are kept (retention-report cache clear); default from RETENTION_REPORT_CACHE_DIR",
    )


class EmailSettings(_Model):
    """Sending the report by email. The password is only read from ``password_env``."""

    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    sender: str = Field("", max_length=320)
    reply_to: str = Field("", max_length=320)
    smtp_host: str = "localhost"
    smtp_port: int = Field(0, ge=0, le=65535, description="0 = 587 for starttls, 465 for tls, 25 for none")
    security: Literal["starttls", "tls", "none"] = "starttls"
    user: str = Field("", max_length=320)
    password_env: str = "RETENTION_REPORT_SMTP_PASSWORD"
    attach_html: bool = False
    max_attachment_mb: float = Field(10.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    retry_backoff_seconds: float = Field(2.0, ge=0)
    verify_tls: bool = True


class Settings(_Model):
    """The whole configuration."""

    timezone: str = Field("UTC", description="report time zone for bucketing payments into days")
    source: SourceSettings = SourceSettings()
    columns: ColumnSettings = ColumnSettings()
    metrics: MetricSettings = MetricSettings()
    clv: ClvSettings = ClvSettings()
    validation: ValidationSettings = ValidationSettings()
    report: ReportSettings = ReportSettings()
    engine: EngineSettings = EngineSettings()
    email: EmailSettings = EmailSettings()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like 'Europe/Berlin'") from None
        return v

    @model_validator(mode="after")
    def _cohort_segment(self) -> Settings:
        seg = self.metrics.cohort_segment
        if seg and seg not in self.columns.segments:
            raise ValueError(
                f"metrics.cohort_segment {seg!r} is not one of columns.segments {self.columns.segments}"
            )
        return self

    def with_overrides(self, **dotted: object) -> Settings:
        """A copy with ``{"source.path": "x.csv", "timezone": "Europe/Berlin"}`` applied."""
        data = self.model_dump()
        for key, value in dotted.items():
            if value is None:
                continue
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})  # an unknown section is reported as "unknown key"
                if not isinstance(node, dict):
                    raise ConfigError(f"invalid override {key!r}: {p!r} is not a section")
            node[leaf] = value
        return _validate(data, "command-line overrides")

    def public_dict(self) -> dict[str, Any]:
        """The settings without anything secret-looking, for run details and notebook parameters."""
        from .secrets import redact

        data = self.model_dump()
        for key in ("url", "path", "name"):
            data["source"][key] = redact(data["source"][key])
        return data

    def source_shown(self, default: str = "sample data") -> str:
        """The source as progress and error lines show it: its name, path or URL, redacted."""
        from .secrets import redact

        s = self.source
        return redact(s.name or s.path or s.url) or default


def redact_url(url: str) -> str:
    """``postgres://u:secret@h/db`` → ``postgres://u:***@h/db`` (also ``?password=secret``, DSN
    ``password=…`` and other secret-looking parameters): :func:`retention_report.secrets.redact`."""
    from .secrets import redact

    return redact(url)


def refuse_inline_secrets(settings: Settings) -> None:
    """Raise ConfigError when ``source.url`` (or a URL in ``source.path``) carries a secret itself —
    ``user:password@``, ``?password=``, ``pwd=``, ``token=`` …: it would be shown in progress lines
    and written into every executed notebook. Checked before any data are read."""
    from .secrets import inline_secret, redact

    src = settings.source
    # a path is checked when it is a URL, or names no file (a DSN "host=h password=…" given as --data)
    path = src.path if "://" in src.path or (src.path and not Path(src.path).expanduser().exists()) else ""
    for key, value in (("source.url", src.url), ("source.path", path)):
        found = inline_secret(value)
        if found:
            raise ConfigError(
                f"{key} {redact(value)!r} holds {found}: secrets are never taken from the config or the "
                "command line (they would be shown and written into the report's notebooks); remove it "
                "from the URL and name an environment variable holding the password in "
                "source.password_env (or put NAME=value in a git-ignored .env)")


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {loc}: unknown key")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {_short(got)})"
            lines.append(f"  - {loc}: {e['msg']}{shown}")
    return "\n".join(lines)


def _short(value: object, limit: int = 80) -> str:
    """A bad value as quoted in a config error: its repr, cut (a 30 MB title is not echoed back)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _validate(data: dict[str, Any], origin: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None
    except RecursionError:
        raise ConfigError(f"invalid configuration in {origin}: values nested too deeply; a config has at "
                          "most a few levels ([section], [section.sub], key = [...])") from None


def _project_dirs(settings: Settings, base: Path) -> Settings:
    """``report.notebooks_dir`` and ``report.templates_dir`` given relative in a config file are
    taken from the config file's folder (a report project's config sits next to its notebooks/ and
    templates/), so a run finds them from any working directory; so are the paths of one's own
    notebooks in ``report.sections``, which must exist."""
    fixed: dict[str, Any] = {}
    for key in ("notebooks_dir", "templates_dir"):
        value = getattr(settings.report, key)
        if value and not Path(value).expanduser().is_absolute():
            fixed[key] = os.path.abspath(base / value)
    sections = []
    for name in settings.report.sections:
        if is_notebook_path(name):
            path = Path(os.path.abspath(base / Path(name).expanduser()))
            if not path.is_file():
                raise ConfigError(f"report.sections: notebook not found: {path} ({name!r} is taken from "
                                  f"the config file's folder {os.path.abspath(base)})")
            name = str(path)
        sections.append(name)
    if sections != settings.report.sections:
        fixed["sections"] = sections
    if not fixed:
        return settings
    return settings.model_copy(update={"report": settings.report.model_copy(update=fixed)})


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: object) -> Settings:
    """Read and validate a TOML config file (or the defaults when ``path`` is empty).

    Parameters
    ----------
    path
        A TOML file. Empty or ``None``: built-in defaults (embedded sample data). Relative
        ``report.notebooks_dir`` and ``report.templates_dir`` are taken from its folder.
    overrides
        Dotted keys applied after the file (``**{"source.path": "payments.csv"}``); ``None`` values
        are ignored, so CLI options that were not given do not override the file.

    Raises
    ------
    ConfigError
        Missing or unreadable file, TOML syntax error, unknown key, wrong type or value.
    """
    data: dict[str, Any] = {}
    origin = "defaults"
    if path:
        p = Path(path)
        origin = str(p)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # Windows editors add a BOM
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        except RecursionError:  # arrays or inline tables nested thousands deep
            raise ConfigError(f"config file {p} nests arrays or inline tables too deeply to be read; "
                              "a config has at most a few levels ([section], [section.sub], key = [...])") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {p}: {exc}") from None
    settings = _validate(data, origin)
    if path:
        settings = _project_dirs(settings, p.parent)
    if overrides:
        settings = settings.with_overrides(**overrides)
    return settings
