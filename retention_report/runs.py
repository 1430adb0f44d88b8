"""What the commands do, below the command line: one report run's owner and the runs of the
``run``, ``metrics``, ``scores`` and ``check-period`` commands.

* :class:`PeriodArg` — a ``--period`` value parsed once: a concrete PERIOD is a
  :class:`~retention_report.periods.Period` from the start; a relative one (``last-month`` …) is
  resolved once, in the report time zone, when the settings are known (:meth:`PeriodArg.resolve`).
* :class:`ReportRun` — one report: settings, the period, the data set (opened once, shared by the
  periods of one run) and where it goes. :mod:`retention_report.pipeline` runs it.
* :func:`run_reports`, :func:`run_metrics`, :func:`run_scores`, :func:`describe_period` — one call
  per command; :mod:`retention_report.cli` only parses options, prints the result and turns errors
  into exit codes (:class:`RunFailed` and :class:`RunStopped` carry the command's message and code).

Heavy libraries are imported inside the functions: the command line fails fast on a bad PERIOD.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings
from .periods import Period, PeriodError, is_relative, parse_period, resolve_period, today_in

if TYPE_CHECKING:
    from .data import Dataset
    from .pipeline import RunResult

__all__ = ["PeriodArg", "ReportRun", "RunFailed", "RunStopped", "MetricsResult", "clock", "os_problem",
           "describe_period", "run_reports", "run_metrics", "run_scores", "announce_sample"]

Say = Callable[[str], None]


def _quiet(message: str) -> None:
    """Progress nobody asked to see."""


def clock() -> datetime:
    """The current instant (time-zone-aware) that relative periods are resolved at; tests replace it."""
    return datetime.now(UTC)


class RunFailed(Exception):
    """A command failed for a reason it explains in one line (``message``), exit ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


class RunStopped(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM (``signal``: its name), everything it wrote removed;
    ``message`` says what was kept, ``code`` is 128 + the signal number."""

    def __init__(self, signal: str, code: int, message: str) -> None:
        super().__init__(message)
        self.signal, self.code, self.message = signal, code, message


def stopped(exc: KeyboardInterrupt, message: str) -> RunStopped:
    """``exc`` (a Ctrl-C or :class:`retention_report.pipeline.Interrupted`) as a :class:`RunStopped`."""
    from .pipeline import Interrupted

    if isinstance(exc, Interrupted):
        return RunStopped(str(exc), exc.exit_code, message)
    return RunStopped("SIGINT", 130, message)


def os_problem(exc: OSError) -> str:
    """An OSError as one line: ``no space left on device writing reports/2024-Q1/report.pdf``."""
    import errno
    import os

    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system"}.get(exc.errno or 0) or (
        exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__))
    return f"{what[0].lower()}{what[1:]}" + (f" writing {exc.filename}" if exc.filename else "")


# ------------------------------------------------------------------------------------- the period

def as_of_day(text: str | None) -> date | None:
    """``--as-of`` as a date (None when not given); raises PeriodError when it is not a day."""
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            return date.fromisoformat(text.strip())
        raise ValueError("not in the form YYYY-MM-DD")
    except ValueError as exc:
        raise PeriodError(f"--as-of {text!r} is not a day: {exc}; give it as YYYY-MM-DD, e.g. 2026-11-23") from None


@dataclass(frozen=True)
class PeriodArg:
    """A ``--period`` value, parsed once (:meth:`parse`): ``period`` is the Period when the text
    alone fixes it (a concrete PERIOD, or a relative one with ``--as-of``), None while a relative
    one waits for the report time zone (:meth:`resolve`)."""

    text: str
    as_of: date | None = None
    period: Period | None = None

    @classmethod
    def parse(cls, text: str, as_of: str | date | None = None) -> PeriodArg:
        """Raises PeriodError for a malformed PERIOD or ``--as-of`` (before anything is loaded)."""
        day = as_of if isinstance(as_of, date) or as_of is None else as_of_day(as_of)
        if is_relative(text):
            fixed = resolve_period(text, as_of=day) if day is not None else None
            return cls(text, day, fixed)
        return cls(text, day, parse_period(text))

    @property
    def relative(self) -> bool:
        return is_relative(self.text)

    def today(self, tz: str) -> date:
        return self.as_of if self.as_of is not None else today_in(tz, clock())

    def resolve(self, tz: str) -> Period:
        """The concrete period: a relative PERIOD taken from today in ``tz`` (or ``--as-of``)."""
        if self.period is not None:
            return self.period
        return resolve_period(self.text, tz, now=clock())

    def resolved(self, p: Period, tz: str) -> str:
        """``last-month on 2026-11-01 is 2026-10 (2026-10-01 .. 2026-10-31; today in Europe/Moscow)``."""
        today = self.today(tz)
        how = "given by --as-of" if self.as_of is not None else f"in {tz}"
        current = "; the current period, still incomplete" if p.end >= today else ""
        return f"{self.text.strip().lower()} on {today} is {p.label} ({p.start} .. {p.end}; today {how}){current}"

    def for_settings(self, settings: Settings, say: Say) -> Period:
        """:meth:`resolve` in the settings' time zone, saying what a relative PERIOD stands for."""
        p = self.resolve(settings.timezone)
        if self.relative:
            say(self.resolved(p, settings.timezone))
        return p


def describe_period(text: str, as_of: str = "", config: str = "") -> str:
    """``check-period``: the period's dates, previous and year-ago periods; a relative PERIOD with
    the day it counts from (today in the config's time zone, default UTC, or ``--as-of``).
    Raises ConfigError (the config is read first) and PeriodError."""
    tz = "UTC"
    if config:
        from .config import load_settings

        tz = load_settings(config).timezone
    arg = PeriodArg.parse(text, as_of)
    p = arg.resolve(tz)
    line = (f"{p.label}: {p.start} .. {p.end} ({p.days} days); previous {p.previous().label}; "
            f"year ago {p.year_ago().label}")
    if arg.relative:
        today = arg.today(tz)
        line += f"; {arg.text.strip().lower()} on {today} ({'--as-of' if arg.as_of is not None else tz})"
        if p.end >= today:
            line += "; the current period, incomplete"
    return line


# ----------------------------------------------------------------------------------------- a run

def settings_for(config: str | None, data: str | None) -> Settings:
    """The run's settings (``--config``, ``--data``); raises ConfigError."""
    from .context import resolve_settings

    return resolve_settings(config, data)


def out_dir(settings: Settings, period: Period, out: str | None) -> Path:
    """``--out`` (one report's folder), else ``<report.output_dir>/<PERIOD>``."""
    return Path(out).expanduser() if out else Path(settings.report.output_dir) / period.label


@dataclass
class ReportRun:
    """One report: what it is made from (settings, the period, the data set, the notebooks) and
    where it goes (``out_dir``, as given: relative paths stay relative in messages).

    ``config_path`` and ``data`` are the command line's, passed on to the section notebooks;
    ``dataset`` is opened on first use (:meth:`open`) unless given — the periods of one run share
    one."""

    settings: Settings
    period: Period
    out_dir: Path
    config_path: str | None = None
    data: str | None = None
    notebooks_dir: Path | None = None
    dataset: Dataset | None = None

    @classmethod
    def of(cls, settings: Settings, period: Period, *, out_dir: Path | None = None, config_path: str | None = None,
           data: str | None = None, notebooks_dir: Path | None = None, dataset: Dataset | None = None) -> ReportRun:
        return cls(settings, period, Path(out_dir) if out_dir else Path(settings.report.output_dir) / period.label,
                   config_path, data, notebooks_dir, dataset)

    @property
    def label(self) -> str:
        return self.period.label

    def open(self, say: Say = _quiet) -> Dataset:
        """The validated data set: the one given, else opened (and validated) now, once."""
        if self.dataset is None:
            from .data import open_dataset

            say(f"[metrics] reading {self.settings.source_shown()} …")
            self.dataset = open_dataset(self.settings)
        return self.dataset

    def writes(self) -> list[str]:
        """The executed notebooks the run writes into its report folder (relative paths)."""
        from .pipeline import report_writes

        return report_writes(self.settings, self.notebooks_dir)


def announce_sample(settings: Settings, say: Say) -> None:
    """Say that the embedded sample is generated now, when no data are configured and it is missing."""
    s = settings.source
    if s.path or s.url or s.kind not in ("auto", "sample"):
        return
    from .sample import DEFAULT_SAMPLE_PATH

    if not DEFAULT_SAMPLE_PATH.exists():
        say(f"No data configured: generating the embedded sample payment log at {DEFAULT_SAMPLE_PATH} (once) …")


def run_reports(
    periods: Sequence[PeriodArg],
    *,
    config: str | None = None,
    data: str | None = None,
    out: str | None = None,
    notebooks: str | None = None,
    say: Say = _quiet,
) -> Iterator[tuple[ReportRun, RunResult]]:
    """``run``: the report of each period, in the order given (a period given twice, once), from
    one read of the data; yields each run and its result when its report is in place. The first
    failure stops (the reports before it stay).

    Raises ConfigError (settings), OutputError (a folder that must not be replaced, before any
    work), DataError, NotebookFailed, :class:`RunFailed` (disk full …, naming what was kept) and
    :class:`RunStopped` (SIGINT/SIGTERM)."""
    from .data import open_dataset
    from .data.sources import check_source_keys
    from .outputs import check_report_out
    from .pipeline import run_report

    settings = settings_for(config, data)
    resolved: list[Period] = []
    for arg in periods:
        p = arg.for_settings(settings, say)
        if p not in resolved:  # last-quarter and 2026-Q3 are one report
            resolved.append(p)
    nb_dir = Path(notebooks) if notebooks else None
    runs = [ReportRun(settings, p, out_dir(settings, p, out), config or None, data or None, nb_dir) for p in resolved]
    writes = runs[0].writes() if runs else []
    for run in runs:
        check_report_out(run.out_dir, writes)  # before any work: nothing the user owns is replaced
    check_source_keys(settings)  # a config error, before a kernel is started
    announce_sample(settings, say)
    if len(runs) > 1:
        t0 = time.perf_counter()
        say(f"[data] reading {settings.source_shown()} once for {len(runs)} periods …")
        dataset = open_dataset(settings)
        say(f"[data] {dataset.quality.rows_used:,} payments read in {time.perf_counter() - t0:.1f}s")
        for run in runs:
            run.dataset = dataset
    for run in runs:
        existed = run.out_dir.exists()
        try:
            result = run_report(run.settings, run.period, config_path=run.config_path, data=run.data,
                                out_dir=run.out_dir if out else None, notebooks_dir=run.notebooks_dir,
                                progress=say, dataset=run.dataset)
        except OSError as exc:  # disk full, quota, read-only or vanished folder while writing
            raise RunFailed(f"{os_problem(exc)}: the report for {run.label} was not written; " + (
                f"the previous report in {run.out_dir} is kept" if existed
                else f"nothing was left in {run.out_dir}"), 1) from exc
        except KeyboardInterrupt as exc:  # SIGINT or SIGTERM (pipeline.Interrupted)
            raise stopped(exc, f"the run for {run.label} was stopped and its temporary files removed; " + (
                f"the previous report in {run.out_dir} is untouched" if existed
                else f"no report was written to {run.out_dir}")) from exc
        yield run, result


@dataclass(frozen=True)
class MetricsResult:
    """What ``metrics`` made: the document, and where it was written (None: ``--stdout``)."""

    period: Period
    doc: dict[str, Any]
    path: Path | None
    seconds: float


def run_metrics(
    arg: PeriodArg,
    *,
    config: str | None = None,
    data: str | None = None,
    out: str | None = None,
    stdout: bool = False,
    say: Say = _quiet,
) -> MetricsResult:
    """``metrics``: metrics.json of the period only (no notebooks, no rendering), written into
    ``--out`` (default ``reports/<PERIOD>/``) unless ``stdout``; a report folder (new or ours)
    records what it was computed from, and the reports' archive page is updated.

    Raises ConfigError, OutputError (before any work), DataError and :class:`RunFailed` (disk
    full …: the previous files are kept)."""
    from .outputs import check_metrics_out

    settings = settings_for(config, data)
    p = arg.for_settings(settings, say)
    target = out_dir(settings, p, out)
    marked = False
    if not stdout:
        marked = check_metrics_out(target)  # before any work: no foreign file is overwritten
    from .pipeline import compute_metrics, write_metrics

    announce_sample(settings, say)
    t0 = time.perf_counter()
    doc = compute_metrics(settings, p)
    if stdout:
        return MetricsResult(p, doc, None, time.perf_counter() - t0)
    try:
        path = write_metrics(doc, target / "metrics.json")
        if marked:  # a report folder (new or ours): record it and what metrics.json was computed from
            from .outputs import content_record, update_marker

            update_marker(target, p.label, metrics=content_record(settings))
    except OSError as exc:  # both written atomically: the previous ones are kept
        raise RunFailed(f"{os_problem(exc)}: metrics.json for {p.label} was not written completely", 1) from exc
    if marked:
        from .archive import update_for

        update_for(target, settings, say=say)  # reports/index.html, when target is in the reports folder
    return MetricsResult(p, doc, path, time.perf_counter() - t0)


def run_scores(
    arg: PeriodArg,
    out: str,
    *,
    config: str | None = None,
    data: str | None = None,
    force: bool = False,
    say: Say = _quiet,
) -> tuple[Period, Path, int]:
    """``scores``: the per-customer predicted-value scores of the period to the CSV file ``out``;
    returns the period, the file and the number of customers.

    Raises ConfigError, ScoresError (the target, before any data is read; exit 2) and
    :class:`RunFailed` (the data or the export, exit 1)."""
    from .data import DataError
    from .scores import ScoresError, check_scores_out, export_scores

    settings = settings_for(config, data)
    p = arg.for_settings(settings, say)
    target = check_scores_out(out, force)  # before any data is read
    announce_sample(settings, say)
    try:
        n = export_scores(settings, p, target, force=force)
    except (DataError, ScoresError) as exc:
        raise RunFailed(str(exc), 1) from exc
    return p, target, n
