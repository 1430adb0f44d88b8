"""Command line: ``retention-report run|metrics|index|sample-data|validate|email|kernel|git-setup|init``.

Thin: each command parses options, makes one call into the library and turns known errors into
one clear line on stderr and a non-zero exit code (2: bad PERIOD/config, 1: data or run failure).
Heavy libraries are imported inside the commands, so a malformed PERIOD fails in well under a
second.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import ConfigError
from .periods import ACCEPTED_FORMS, Period, PeriodError, is_relative, resolve_period, today_in

app = typer.Typer(
    name="retention-report",
    help="Sales and customer-retention reports from a payment log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PeriodOpt = Annotated[str, typer.Option("--period", "-p", help=f"Report period: {ACCEPTED_FORMS}.")]
ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="TOML config file (default: built-in defaults).")]
DataOpt = Annotated[str, typer.Option("--data", "-d", help="Payment data file, folder, glob or connection URL; overrides the config's source.")]
OutOpt = Annotated[str, typer.Option("--out", "-o", help="Output folder (default: reports/<PERIOD>/).")]
AsOfOpt = Annotated[str, typer.Option(
    "--as-of", metavar="YYYY-MM-DD",
    help="The day a relative PERIOD (last-month, this-quarter …) counts from, instead of today in the "
         "report time zone (reproducible runs).")]


def _fail(message: str, code: int) -> None:
    from .secrets import redact

    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _os_problem(exc: OSError) -> str:
    """An OSError as one line: ``no space left on device writing reports/2024-Q1/report.pdf``."""
    import errno
    import os

    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system"}.get(exc.errno or 0) or (
        exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__))
    return f"{what[0].lower()}{what[1:]}" + (f" writing {exc.filename}" if exc.filename else "")


def _clock() -> datetime:
    """The current instant (time-zone-aware) that relative periods are resolved at; tests replace it."""
    return datetime.now(UTC)


def _as_of(text: str | None) -> date | None:
    """``--as-of`` as a date (None when not given); a malformed day fails with exit 2."""
    if not text:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            return date.fromisoformat(text.strip())
        raise ValueError("not in the form YYYY-MM-DD")
    except ValueError as exc:
        _fail(f"--as-of {text!r} is not a day: {exc}; give it as YYYY-MM-DD, e.g. 2026-11-23", 2)
        raise  # unreachable


def _period(text: str, as_of: str = "", settings: Any = None) -> Period:
    """The Period of ``--period``; a relative form (``last-month`` …) is resolved at ``--as-of``, else
    at today in the report time zone. Called once before the settings are read, only to fail fast
    on a malformed form (in UTC), and again with the settings (their ``timezone``)."""
    tz = settings.timezone if settings is not None else "UTC"
    try:
        p = resolve_period(text, tz, as_of=_as_of(as_of), now=_clock())
    except PeriodError as exc:
        _fail(str(exc), 2)
        raise  # unreachable
    if settings is not None and is_relative(text):
        _say(_resolved(text, p, tz, _as_of(as_of)))
    return p


def _today(tz: str, as_of: date | None) -> date:
    return as_of if as_of is not None else today_in(tz, _clock())


def _resolved(text: str, p: Period, tz: str, as_of: date | None) -> str:
    """``last-month on 2026-11-01 is 2026-10 (2026-10-01 .. 2026-10-31; today in Europe/Moscow)``."""
    today = _today(tz, as_of)
    how = "given by --as-of" if as_of is not None else f"in {tz}"
    current = "; the current period, still incomplete" if p.end >= today else ""
    return f"{text.strip().lower()} on {today} is {p.label} ({p.start} .. {p.end}; today {how}){current}"


def _data_code(exc: Exception) -> int:
    """Exit code of a data error: 2 when it is the configuration's (a ``[source]`` key the source
    does not read), else 1."""
    return 2 if isinstance(exc, ConfigError) else 1


def _settings(config: str, data: str) -> Any:
    from .context import resolve_settings

    try:
        return resolve_settings(config, data)
    except ConfigError as exc:
        _fail(str(exc), 2)


def _out_dir(settings: Any, period: Period, out: str) -> Path:
    return Path(out).expanduser() if out else Path(settings.report.output_dir) / period.label


def _interrupted(exc: KeyboardInterrupt, message: str) -> None:
    """One line for a command stopped by SIGINT/SIGTERM, exit 130/143 (128 + signal)."""
    from .pipeline import Interrupted

    code = exc.exit_code if isinstance(exc, Interrupted) else 130
    name = str(exc) if isinstance(exc, Interrupted) else "SIGINT"
    typer.secho(f"interrupted ({name}): {message}", fg=typer.colors.YELLOW, err=True)
    raise typer.Exit(code)


def _say(msg: str) -> None:
    from .secrets import redact

    typer.echo(redact(msg), err=True)  # progress lines show no secret either


PeriodsOpt = Annotated[list[str], typer.Option(
    "--period", "-p", help=f"Report period: {ACCEPTED_FORMS}. Repeat it to render several periods "
                           "in one run: the data are read and validated once.")]


@app.command()
def run(
    period: PeriodsOpt,
    config: ConfigOpt = "",
    data: DataOpt = "",
    out: OutOpt = "",
    notebooks: Annotated[str, typer.Option(help="Folder of section notebooks (default: the project's notebooks/).")] = "",
    as_of: AsOfOpt = "",
) -> None:
    """Compute the metrics, run the section notebooks and render report.html, report.pdf and
    metrics.json into reports/<PERIOD>/ (replaced only when everything succeeded). With several
    --period, one report each, in the order given, from one read of the data; the first failure
    stops the run (the reports before it stay)."""
    from .outputs import OutputError, check_report_out

    for text in period:
        _period(text, as_of)  # a malformed PERIOD fails before anything is loaded
    if len(period) > 1 and out:
        _fail("--out names the folder of one report: leave it out to render several periods "
              "(each into reports/<PERIOD>/), or run one period at a time", 2)
    settings = _settings(config, data)
    periods: list[Period] = []
    for text in period:
        p = _period(text, as_of, settings)
        if p not in periods:  # last-quarter and 2026-Q3 are one report
            periods.append(p)
    targets = [_out_dir(settings, p, out) for p in periods]
    from .pipeline import NotebookFailed, report_writes, run_report

    writes = report_writes(settings, Path(notebooks) if notebooks else None)
    try:
        for target in targets:
            check_report_out(target, writes)  # before any work: nothing the user owns is replaced
    except OutputError as exc:
        _fail(str(exc), 2)
    from .data import DataError, open_dataset
    from .data.sources import check_source_keys

    try:
        check_source_keys(settings)  # a config error, before a kernel is started
    except DataError as exc:
        _fail(str(exc), _data_code(exc))
    _announce_sample(settings)
    dataset = None
    if len(periods) > 1:
        t0 = time.perf_counter()
        _say(f"[data] reading {settings.source_shown()} once for {len(periods)} periods …")
        try:
            dataset = open_dataset(settings)
        except DataError as exc:
            _fail(str(exc), _data_code(exc))
        _say(f"[data] {dataset.quality.rows_used:,} payments read in {time.perf_counter() - t0:.1f}s")
    for p, target in zip(periods, targets, strict=True):
        existed = target.exists()
        try:
            result = run_report(settings, p, config_path=config or None, data=data or None,
                                out_dir=target if out else None,
                                notebooks_dir=Path(notebooks) if notebooks else None, progress=_say,
                                dataset=dataset)
        except OutputError as exc:
            _fail(str(exc), 2)
        except DataError as exc:
            _fail(str(exc), _data_code(exc))
        except NotebookFailed as exc:
            _fail(str(exc), 1)
        except OSError as exc:  # disk full, quota, read-only or vanished folder while writing
            _fail(f"{_os_problem(exc)}: the report for {p.label} was not written; " + (
                f"the previous report in {target} is kept" if existed else f"nothing was left in {target}"), 1)
        except KeyboardInterrupt as exc:  # SIGINT or SIGTERM (pipeline.Interrupted)
            _interrupted(exc, f"the run for {p.label} was stopped and its temporary files removed; " + (
                f"the previous report in {target} is untouched" if existed else f"no report was written to {target}"))
        typer.echo(f"Report for {p.label} written to {result.out_dir}/ in {result.seconds:.1f}s: "
                   "report.html, report.pdf, metrics.json, notebooks/")


@app.command()
def metrics(
    period: PeriodOpt,
    config: ConfigOpt = "",
    data: DataOpt = "",
    out: OutOpt = "",
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the JSON instead of writing a file.")] = False,
    as_of: AsOfOpt = "",
) -> None:
    """Compute metrics.json only (no notebooks, no rendering): the fast path for other tools."""
    import json
    import time

    from .outputs import OutputError, check_metrics_out

    _period(period, as_of)  # a malformed PERIOD fails before anything is loaded
    settings = _settings(config, data)
    p = _period(period, as_of, settings)
    target = _out_dir(settings, p, out)
    marked = False
    if not stdout:
        try:
            marked = check_metrics_out(target)  # before any work: no foreign file is overwritten
        except OutputError as exc:
            _fail(str(exc), 2)
    from .data import DataError
    from .pipeline import compute_metrics, write_metrics

    _announce_sample(settings)
    t0 = time.perf_counter()
    try:
        doc = compute_metrics(settings, p)
    except DataError as exc:
        _fail(str(exc), _data_code(exc))
    if stdout:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    try:
        path = write_metrics(doc, target / "metrics.json")
        if marked:  # a report folder (new or ours): record it and what metrics.json was computed from
            from .outputs import content_record, update_marker

            update_marker(target, p.label, metrics=content_record(settings))
    except OSError as exc:  # both written atomically: the previous ones are kept
        _fail(f"{_os_problem(exc)}: metrics.json for {p.label} was not written completely", 1)
    if marked:
        from .archive import update_for

        update_for(target, settings, say=_say)  # reports/index.html, when target is in the reports folder
    typer.echo(f"metrics.json for {p.label} written to {path} in {time.perf_counter() - t0:.1f}s")


@app.command()
def index(
    reports: Annotated[str, typer.Option("--reports", "-r", help="Reports folder (default: the config's report.output_dir, reports/).")] = "",
    config: ConfigOpt = "",
    data: DataOpt = "",
) -> None:
    """Rebuild reports/index.html, the archive of every rendered period, from each folder's
    metrics.json (no data access); periods made from another source or config than --config and
    --data are marked."""
    from .archive import ArchiveError, write_index

    settings = _settings(config, data)
    root = Path(reports).expanduser() if reports else Path(settings.report.output_dir)
    try:
        path = write_index(root, settings)
    except ArchiveError as exc:
        _fail(str(exc), 1)
    typer.echo(f"report archive written to {path}")


@app.command()
def validate(config: ConfigOpt = "", data: DataOpt = "") -> None:
    """Read and validate the payment data; print the data-quality summary."""
    settings = _settings(config, data)
    from .data import DataError, open_dataset

    try:
        ds = open_dataset(settings)
    except DataError as exc:
        _fail(str(exc), _data_code(exc))
    q = ds.quality
    typer.echo(f"source: {ds.source_name}")
    typer.echo(f"rows read: {q.rows_read:,}; used: {q.rows_used:,}")
    for reason, n in q.rows_dropped.items():
        typer.echo(f"dropped ({reason}): {n:,}")
    if q.guest_rows is not None:  # validation.empty_customer_id = "guest"
        typer.echo(f"guest payments (no customer id): {q.guest_rows:,} rows, net revenue {q.guest_revenue:,.2f}")
    typer.echo(f"payments from {q.first_payment} to {q.last_payment}")


@app.command("sample-data")
def sample_data(
    path: Annotated[str, typer.Option(help="Where to write the Parquet file.")] = "",
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    force: Annotated[bool, typer.Option(help="Regenerate even if the file exists.")] = False,
) -> None:
    """Generate the deterministic sample payment log (the embedded default data)."""
    from .sample import DEFAULT_SAMPLE_PATH, write_sample

    target = Path(path) if path else DEFAULT_SAMPLE_PATH
    if target.exists() and not force:
        typer.echo(f"{target} exists (use --force to regenerate)")
        return
    write_sample(target, n_customers=customers, seed=seed)
    typer.echo(f"sample payment log written to {target}")


@app.command()
def email(
    period: PeriodOpt,
    config: ConfigOpt = "",
    to: Annotated[list[str] | None, typer.Option("--to", help="Recipient (repeatable); overrides the config.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write reports/<PERIOD>/email.eml; send nothing.")] = False,
    no_render: Annotated[bool, typer.Option("--no-render", help="Fail instead of rendering a missing report.")] = False,
    out: OutOpt = "",
    data: DataOpt = "",
    force: Annotated[bool, typer.Option("--force", help="Send even if the report was rendered from another source or settings.")] = False,
    as_of: AsOfOpt = "",
    resend_unknown: Annotated[bool, typer.Option(
        "--resend-unknown", help="Send again to recipients whose delivery an earlier run could not confirm "
                                 "(email-log.json: 'unknown — check before resending'), once you have checked.")] = False,
) -> None:
    """Email the period's rendered report (PDF attached) to management, rendering it first when
    reports/<PERIOD>/ holds no complete report yet. Exit code: 0 sent (or, with --dry-run,
    written), 1 the rendering or the sending failed, 2 bad PERIOD, config or output folder."""
    _period(period, as_of)  # a malformed PERIOD or --as-of fails before anything is loaded
    try:
        code = email_command(period=period, config=config or None, to=to or None, dry_run=dry_run,
                             render_missing=not no_render, out=out or None, data=data or None, force=force,
                             as_of=_as_of(as_of), resend_unknown=resend_unknown)
    except KeyboardInterrupt as exc:  # while rendering a missing report, or sending
        _interrupted(exc, "the email command was stopped; a report being rendered was not kept, and "
                          "email-log.json records what was sent")
    raise typer.Exit(code)


def email_command(
    period: str,
    config: str | None = None,
    to: list[str] | None = None,
    dry_run: bool = False,
    render_missing: bool = True,
    out: str | None = None,
    *,
    data: str | None = None,
    force: bool = False,
    as_of: date | None = None,
    say: Callable[[str], None] = print,
    err: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    sleep: Callable[[float], None] = time.sleep,
    resend_unknown: bool = False,
) -> int:
    """``retention-report email``: render if needed, build, then send or (dry run) write email.eml.

    A relative ``period`` (``last-month`` …) is resolved once, at ``as_of`` or at today in the
    report time zone, and everything after uses the concrete period (its folder reports/<label>/).
    The report is rendered first when its folder lacks report.html, report.pdf or metrics.json
    (``render_missing``; a folder of ``make metrics`` holds only metrics.json).

    Everything that can be checked without the report (recipients, sender, title, password) is
    checked before a (slow) rendering. The report must have been rendered from the current config
    and ``data`` (source and the settings that shape its content, as recorded by ``run``:
    :func:`retention_report.outputs.report_mismatch`); otherwise nothing is sent unless ``force``.
    ``say``/``err``/``sleep`` are the progress and error output and the backoff wait (tests record
    them).

    Returns the process exit code: 0 sent (or written), 1 nothing or not everything was sent,
    2 bad period, config or output folder.
    """
    from .context import resolve_settings
    from .secrets import redact

    shout = err
    err = lambda m: shout(redact(m))  # noqa: E731 - every error line without secrets
    from .mail import (
        EML_NAME,
        MailError,
        build_message,
        check_headers,
        check_security,
        recipients_from,
        require_password,
        send_report,
        write_eml,
    )
    from .outputs import OutputError, data_changed, report_mismatch

    try:
        settings = resolve_settings(config, data)
        p = resolve_period(period, settings.timezone, as_of=as_of, now=_clock())
        check_security(settings.email)  # no password in clear text over the network
    except (PeriodError, ConfigError) as exc:
        err(f"error: {exc}")
        return 2
    if is_relative(period):
        say(_resolved(period, p, settings.timezone, as_of))
    report_dir = _out_dir(settings, p, out or "")
    try:
        # everything that can be checked without the report, before a (slow) rendering
        recipients = recipients_from(settings.email, to)
        check_headers(settings)
        password = None if dry_run else require_password(settings.email)
        if not all((report_dir / name).is_file() for name in ("report.html", "report.pdf", "metrics.json")):
            if not render_missing:
                raise MailError(f"no rendered report for {p.label} in {report_dir} (run `make report "
                                f"PERIOD={p.label}` first, or leave out --no-render to render it now)")
            say(f"no rendered report for {p.label} in {report_dir}: rendering it first …")
            from .pipeline import run_report

            run_report(settings, p, config_path=config, data=data, out_dir=report_dir, progress=say)
        mismatch = report_mismatch(report_dir, settings, p.label)
        if mismatch and not force:
            raise MailError(mismatch)
        changed = data_changed(report_dir, settings)
        if changed and force:
            say(f"warning (--force): {changed}; sending it anyway")
        elif changed:  # never mail old numbers: the report is made again from the data as they are now
            if not render_missing:
                raise MailError(f"{changed}; re-render it (make report PERIOD={p.label}) or leave out "
                                "--no-render to render it now, or pass --force to send it as it is")
            say(f"{changed}: rendering it again …")
            from .pipeline import run_report

            run_report(settings, p, config_path=config, data=data, out_dir=report_dir, progress=say)
        if mismatch:
            say(f"warning (--force): {mismatch.split(': ', 1)[0]}; sending it anyway")
        msg = build_message(report_dir, settings, p, recipients)
        if dry_run:
            path = write_eml(msg, report_dir / EML_NAME)
            say(f"dry run: message for {len(recipients.envelope)} recipient(s) written to {path} "
                f"({path.stat().st_size / 1e6:.1f} MB); nothing was sent")
            return 0
        result = send_report(msg, recipients, settings, report_dir, password, sleep=sleep, say=say,
                             resend_unknown=resend_unknown)
    except MailError as exc:
        err(f"error: {exc}")
        return 1
    except OutputError as exc:  # --out names a folder that is not a report (checked before rendering)
        err(f"error: {exc}")
        return 2
    except Exception as exc:  # render/data errors: one line, no traceback wall
        err(f"error: {type(exc).__name__}: {exc}")
        return 1
    if result.sent:
        say(f"sent '{msg['Subject']}' to {', '.join(result.sent)} (Message-ID {result.message_id}; "
            f"record: {result.log_path})")
    for addr, reason in result.failed.items():
        err(f"error: not sent to {addr}: {reason}")
    for addr, reason in result.unknown.items():
        err(f"error: delivery to {addr} is {reason}; it is not sent again automatically (--resend-unknown "
            "once you have checked)")
    if result.failed or result.unknown:
        err(f"record of what was and was not sent: {result.log_path}")
        return 1
    return 0


@app.command()
def kernel(
    name: Annotated[str, typer.Option(help="Kernel name.")] = "retention-report",
    autoreload: Annotated[bool, typer.Option(help="Reload edited retention_report modules before each cell.")] = True,
) -> None:
    """Register this environment as a named Jupyter kernel (used by the notebooks), with
    autoreload for the package."""
    from .kernelspec import install_kernel

    path = install_kernel(name, autoreload=autoreload)
    typer.echo(f"kernel {name!r} installed in {path}" + (" (autoreload: retention_report)" if autoreload else ""))


@app.command("git-setup")
def git_setup(folder: Annotated[str, typer.Argument(metavar="[DIR]", help="A folder in the git repository.")] = ".") -> None:
    """Strip notebook outputs on commit (nbstripout git filter) and diff notebooks cell by cell
    (nbdime) in the git repository holding DIR; adds the lines to DIR/.gitattributes."""
    from .gitsetup import GitSetupError, configure

    try:
        done = configure(folder)
    except GitSetupError as exc:
        _fail(str(exc), 1)
    for line in done or [f"{folder} is not in a git repository: nothing to do"]:
        typer.echo(line)


@app.command()
def init(directory: Annotated[str, typer.Argument(metavar="DIR", help="A new (or empty) folder for the project.")]) -> None:
    """Create a report project of your own in DIR: notebooks/, templates/, config.toml and a
    Makefile (make report PERIOD=…) that runs the installed package on them."""
    from .scaffold import ScaffoldError, init_project

    try:
        path = init_project(directory)
    except ScaffoldError as exc:
        _fail(str(exc), 2)
    typer.echo(f"report project created in {path}: edit notebooks/, templates/ and config.toml there; "
               f"`make -C {directory} report PERIOD=2024-Q1` renders a report")


cache_app = typer.Typer(help="The cache of validated, derived tables kept between runs ([engine] cache_dir).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(config: ConfigOpt = "") -> None:
    """Remove the cached derived tables (a source's next load validates and derives them again)."""
    settings = _settings(config, "")
    from .data.cache import CacheError, cache_dir, clear

    try:
        n = clear(settings)  # only files it proves are its cache files; never a folder with others
    except CacheError as exc:
        _fail(str(exc), 2)
    typer.echo(f"removed {n} cached table file(s) from {cache_dir(settings)}")


@app.command("check-period")
def check_period(
    period: Annotated[str, typer.Argument(help="A PERIOD string.")],
    as_of: AsOfOpt = "",
    config: Annotated[str, typer.Option("--config", "-c", help="TOML config file: its timezone is where today is for a relative PERIOD (default: UTC).")] = "",
) -> None:
    """Parse a PERIOD and print its dates, previous and year-ago periods (fails fast if malformed);
    a relative PERIOD (last-quarter …) prints the concrete period it stands for today (or --as-of)."""
    tz = "UTC"
    if config:
        from .config import load_settings

        try:
            tz = load_settings(config).timezone
        except ConfigError as exc:
            _fail(str(exc), 2)
    try:
        p = resolve_period(period, tz, as_of=_as_of(as_of), now=_clock())
    except PeriodError as exc:
        _fail(str(exc), 2)
    line = (f"{p.label}: {p.start} .. {p.end} ({p.days} days); previous {p.previous().label}; "
            f"year ago {p.year_ago().label}")
    if is_relative(period):
        today = _today(tz, _as_of(as_of))
        line += f"; {period.strip().lower()} on {today} ({'--as-of' if as_of else tz})"
        if p.end >= today:
            line += "; the current period, incomplete"
    typer.echo(line)


@app.command()
def version() -> None:
    """Print the package version."""
    from . import __version__

    typer.echo(__version__)


@app.command()
def scores(
    period: PeriodOpt,
    out: Annotated[str, typer.Option("--out", "-o", help="CSV file to write.")],
    config: ConfigOpt = "",
    data: DataOpt = "",
    force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False,
    as_of: AsOfOpt = "",
) -> None:
    """Write per-customer predicted-value scores (P(alive), expected purchases and spend, CLV) of
    the customers acquired by the period end to a CSV file for CRM use. The file holds customer
    ids: it is written only by this command, never into a report."""
    from .scores import ScoresError, check_scores_out, export_scores

    _period(period, as_of)  # a malformed PERIOD fails before anything is loaded
    settings = _settings(config, data)
    p = _period(period, as_of, settings)
    try:
        target = check_scores_out(out, force)  # before any data is read
    except ScoresError as exc:
        _fail(str(exc), 2)
    from .data import DataError

    _announce_sample(settings)
    try:
        n = export_scores(settings, p, target, force=force)
    except (DataError, ScoresError) as exc:
        _fail(str(exc), 1)
    typer.echo(f"scores of {n:,} customers for {p.label} written to {target}")


def _announce_sample(settings: Any) -> None:
    s = settings.source
    if s.path or s.url or s.kind not in ("auto", "sample"):
        return
    from .sample import DEFAULT_SAMPLE_PATH

    if not DEFAULT_SAMPLE_PATH.exists():
        _say(f"No data configured: generating the embedded sample payment log at {DEFAULT_SAMPLE_PATH} (once) …")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
