"""The ``email`` command below the command line: render the period's report when needed, check it
was made from the current source and settings, then send it (or, dry run, write ``email.eml``).

It puts :mod:`~retention_report.mail.compose` and :mod:`~retention_report.mail.deliver` together
with the report run (:func:`retention_report.pipeline.run_report`); :mod:`retention_report.cli`
only parses the options and exits with the code returned.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date

from ..config import ConfigError, Settings
from ..periods import Period, PeriodError
from ..runs import PeriodArg, ReportRun, out_dir, settings_for

__all__ = ["email_command"]

Say = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _render(run: ReportRun, say: Say) -> None:
    """Render the report of ``run`` into its folder (the pipeline, looked up now: tests replace it)."""
    from .. import pipeline

    pipeline.run_report(run.settings, run.period, config_path=run.config_path, data=run.data,
                        out_dir=run.out_dir, progress=say)


def email_command(
    period: str | PeriodArg,
    config: str | None = None,
    to: list[str] | None = None,
    dry_run: bool = False,
    render_missing: bool = True,
    out: str | None = None,
    *,
    data: str | None = None,
    force: bool = False,
    as_of: date | None = None,
    say: Say = print,
    err: Say = _stderr,
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
    from ..secrets import redact

    def error(message: str) -> None:
        err(redact(message))  # every error line without secrets

    try:
        arg = period if isinstance(period, PeriodArg) else PeriodArg.parse(period, as_of)
        settings = settings_for(config, data)
        from . import check_security

        p = arg.resolve(settings.timezone)
        check_security(settings.email)  # no password in clear text over the network
    except (PeriodError, ConfigError) as exc:
        error(f"error: {exc}")
        return 2
    if arg.relative:
        say(arg.resolved(p, settings.timezone))
    return _email(ReportRun(settings, p, out_dir(settings, p, out or ""), config, data), to=to, dry_run=dry_run,
                  render_missing=render_missing, force=force, say=say, error=error, sleep=sleep,
                  resend_unknown=resend_unknown)


def _email(run: ReportRun, *, to: list[str] | None, dry_run: bool, render_missing: bool, force: bool, say: Say,
           error: Say, sleep: Callable[[float], None], resend_unknown: bool) -> int:
    from ..outputs import OutputError, data_changed, report_mismatch
    from . import (
        EML_NAME,
        MailError,
        build_message,
        check_headers,
        recipients_from,
        require_password,
        send_report,
        write_eml,
    )

    settings: Settings = run.settings
    p: Period = run.period
    report_dir = run.out_dir
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
            _render(run, say)
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
            _render(run, say)
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
        error(f"error: {exc}")
        return 1
    except OutputError as exc:  # --out names a folder that is not a report (checked before rendering)
        error(f"error: {exc}")
        return 2
    except Exception as exc:  # render/data errors: one line, no traceback wall
        error(f"error: {type(exc).__name__}: {exc}")
        return 1
    if result.sent:
        say(f"sent '{msg['Subject']}' to {', '.join(result.sent)} (Message-ID {result.message_id}; "
            f"record: {result.log_path})")
    for addr, reason in result.failed.items():
        error(f"error: not sent to {addr}: {reason}")
    for addr, reason in result.unknown.items():
        error(f"error: delivery to {addr} is {reason}; it is not sent again automatically (--resend-unknown "
              "once you have checked)")
    if result.failed or result.unknown:
        error(f"record of what was and was not sent: {result.log_path}")
        return 1
    return 0
