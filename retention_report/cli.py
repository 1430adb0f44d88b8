"""Command line: ``retention-report run|metrics|sample-data|validate|email|kernel``.

Thin: each command parses options, makes one call into the library and turns known errors into
one clear line on stderr and a non-zero exit code (2: bad PERIOD/config, 1: data or run failure).
Heavy libraries are imported inside the commands, so a malformed PERIOD fails in well under a
second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import ConfigError
from .periods import ACCEPTED_FORMS, Period, PeriodError, parse_period

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


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _period(text: str) -> Period:
    try:
        return parse_period(text)
    except PeriodError as exc:
        _fail(str(exc), 2)
        raise  # unreachable


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
    typer.echo(msg, err=True)


@app.command()
def run(
    period: PeriodOpt,
    config: ConfigOpt = "",
    data: DataOpt = "",
    out: OutOpt = "",
    notebooks: Annotated[str, typer.Option(help="Folder of section notebooks (default: the project's notebooks/).")] = "",
) -> None:
    """Compute the metrics, run the section notebooks and render report.html, report.pdf and
    metrics.json into reports/<PERIOD>/ (replaced only when everything succeeded)."""
    from .outputs import OutputError, check_report_out

    p = _period(period)
    settings = _settings(config, data)
    target = _out_dir(settings, p, out)
    try:
        check_report_out(target)  # before any work: nothing the user owns is replaced
    except OutputError as exc:
        _fail(str(exc), 2)
    from .data import DataError
    from .pipeline import NotebookFailed, run_report

    _announce_sample(settings)
    existed = target.exists()
    try:
        result = run_report(settings, p, config_path=config or None, data=data or None,
                            out_dir=target if out else None,
                            notebooks_dir=Path(notebooks) if notebooks else None, progress=_say)
    except OutputError as exc:
        _fail(str(exc), 2)
    except DataError as exc:
        _fail(str(exc), 1)
    except NotebookFailed as exc:
        _fail(str(exc), 1)
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
) -> None:
    """Compute metrics.json only (no notebooks, no rendering): the fast path for other tools."""
    import json
    import time

    from .outputs import OutputError, check_metrics_out

    p = _period(period)
    settings = _settings(config, data)
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
        _fail(str(exc), 1)
    if stdout:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    path = write_metrics(doc, target / "metrics.json")
    if marked:  # a report folder (new or ours): record it and what metrics.json was computed from
        from .outputs import content_record, update_marker

        update_marker(target, p.label, metrics=content_record(settings))
    typer.echo(f"metrics.json for {p.label} written to {path} in {time.perf_counter() - t0:.1f}s")


@app.command()
def validate(config: ConfigOpt = "", data: DataOpt = "") -> None:
    """Read and validate the payment data; print the data-quality summary."""
    settings = _settings(config, data)
    from .data import DataError, open_dataset

    try:
        ds = open_dataset(settings)
    except DataError as exc:
        _fail(str(exc), 1)
    q = ds.quality
    typer.echo(f"source: {ds.source_name}")
    typer.echo(f"rows read: {q.rows_read:,}; used: {q.rows_used:,}")
    for reason, n in q.rows_dropped.items():
        typer.echo(f"dropped ({reason}): {n:,}")
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
) -> None:
    """Email the period's rendered report (PDF attached) to management."""
    _period(period)
    try:
        from .mail import email_command
    except ImportError:  # pragma: no cover
        _fail("email support is not installed", 1)
    try:
        code = email_command(period=period, config=config or None, to=to or None, dry_run=dry_run,
                             render_missing=not no_render, out=out or None, data=data or None, force=force)
    except KeyboardInterrupt as exc:  # while rendering a missing report, or sending
        _interrupted(exc, "the email command was stopped; a report being rendered was not kept, and "
                          "email-log.json records what was sent")
    raise typer.Exit(code)


@app.command()
def kernel(name: Annotated[str, typer.Option(help="Kernel name.")] = "retention-report") -> None:
    """Register this environment as a named Jupyter kernel (used by the notebooks)."""
    from ipykernel.kernelspec import install

    path = install(user=False, prefix=sys.prefix, kernel_name=name,
                   display_name=f"{name} (Python {sys.version_info.major}.{sys.version_info.minor})")
    typer.echo(f"kernel {name!r} installed in {path}")


@app.command("check-period")
def check_period(period: Annotated[str, typer.Argument(help="A PERIOD string.")]) -> None:
    """Parse a PERIOD and print its dates, previous and year-ago periods (fails fast if malformed)."""
    p = _period(period)
    typer.echo(f"{p.label}: {p.start} .. {p.end} ({p.days} days); previous {p.previous().label}; "
               f"year ago {p.year_ago().label}")


@app.command()
def version() -> None:
    """Print the package version."""
    from . import __version__

    typer.echo(__version__)


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
