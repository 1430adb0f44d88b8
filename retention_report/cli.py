"""Command line: ``retention-report run|metrics|index|sample-data|validate|email|kernel|git-setup|init``.

Thin: each command parses options, makes one call into the library and turns known errors into
one clear line on stderr and a non-zero exit code (2: bad PERIOD/config, 1: data or run failure).
Heavy libraries are imported inside the commands, so a malformed PERIOD fails in well under a
second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from .config import ConfigError
from .periods import ACCEPTED_FORMS, PeriodError
from .runs import PeriodArg, RunStopped

if TYPE_CHECKING:
    from .config import Settings

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


def _fail(message: str, code: int) -> NoReturn:
    from .secrets import redact

    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _period(text: str, as_of: str = "") -> PeriodArg:
    """``--period`` (with ``--as-of``) parsed, once: a malformed form fails before anything is
    loaded, exit 2; a relative one is resolved in the report time zone by the library call."""
    try:
        return PeriodArg.parse(text, as_of)
    except PeriodError as exc:
        _fail(str(exc), 2)


def _data_code(exc: Exception) -> int:
    """Exit code of a data error: 2 when it is the configuration's (a ``[source]`` key the source
    does not read), else 1."""
    return 2 if isinstance(exc, ConfigError) else 1


def _settings(config: str, data: str) -> Settings:
    from .runs import settings_for

    try:
        return settings_for(config, data)
    except ConfigError as exc:
        _fail(str(exc), 2)


def _stopped(exc: RunStopped) -> NoReturn:
    """One line for a command stopped by SIGINT/SIGTERM, exit 130/143 (128 + signal)."""
    typer.secho(f"interrupted ({exc.signal}): {exc.message}", fg=typer.colors.YELLOW, err=True)
    raise typer.Exit(exc.code)


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
    from .data import DataError
    from .outputs import OutputError
    from .pipeline import NotebookFailed
    from .runs import RunFailed, RunStopped, run_reports

    args = [_period(text, as_of) for text in period]  # a malformed PERIOD fails before anything is loaded
    if len(period) > 1 and out:
        _fail("--out names the folder of one report: leave it out to render several periods "
              "(each into reports/<PERIOD>/), or run one period at a time", 2)
    try:
        for run_, result in run_reports(args, config=config, data=data, out=out, notebooks=notebooks, say=_say):
            typer.echo(f"Report for {run_.label} written to {result.out_dir}/ in {result.seconds:.1f}s: "
                       "report.html, report.pdf, metrics.json, notebooks/")
    except DataError as exc:
        _fail(str(exc), _data_code(exc))
    except (ConfigError, OutputError) as exc:
        _fail(str(exc), 2)
    except (NotebookFailed, RunFailed) as exc:
        _fail(str(exc), 1)
    except RunStopped as exc:
        _stopped(exc)


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

    from .data import DataError
    from .outputs import OutputError
    from .runs import RunFailed, run_metrics

    arg = _period(period, as_of)  # a malformed PERIOD fails before anything is loaded
    try:
        result = run_metrics(arg, config=config, data=data, out=out, stdout=stdout, say=_say)
    except DataError as exc:
        _fail(str(exc), _data_code(exc))
    except (ConfigError, OutputError) as exc:
        _fail(str(exc), 2)
    except RunFailed as exc:
        _fail(exc.message, exc.code)
    if result.path is None:
        typer.echo(json.dumps(result.doc, indent=2, ensure_ascii=False))
        return
    typer.echo(f"metrics.json for {result.period.label} written to {result.path} in {result.seconds:.1f}s")


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
    arg = _period(period, as_of)  # a malformed PERIOD or --as-of fails before anything is loaded
    from .mail.command import email_command
    from .runs import RunStopped, stopped

    try:
        try:
            code = email_command(arg, config=config or None, to=to or None, dry_run=dry_run,
                                 render_missing=not no_render, out=out or None, data=data or None, force=force,
                                 resend_unknown=resend_unknown)
        except KeyboardInterrupt as exc:  # while rendering a missing report, or sending
            raise stopped(exc, "the email command was stopped; a report being rendered was not kept, and "
                               "email-log.json records what was sent") from exc
    except RunStopped as exc:
        _stopped(exc)
    raise typer.Exit(code)


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
    from .runs import describe_period

    try:
        line = describe_period(period, as_of, config)
    except (ConfigError, PeriodError) as exc:
        _fail(str(exc), 2)
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
    from .runs import RunFailed, run_scores
    from .scores import ScoresError

    arg = _period(period, as_of)  # a malformed PERIOD fails before anything is loaded
    try:
        p, target, n = run_scores(arg, out, config=config, data=data, force=force, say=_say)
    except (ConfigError, ScoresError) as exc:
        _fail(str(exc), 2)
    except RunFailed as exc:
        _fail(exc.message, exc.code)
    typer.echo(f"scores of {n:,} customers for {p.label} written to {target}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
