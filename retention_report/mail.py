"""Email the rendered report to management.

The message (:func:`build_message`) is a ``multipart/mixed`` of

* ``multipart/alternative``: a plain-text part and a ``multipart/related`` HTML part (inline styles
  only, no scripts, no ``data:`` URIs) whose one chart is a CID-referenced PNG;
* the PDF report (and the HTML report when ``email.attach_html`` is set).

Sending (:func:`send_report`) validates every address before connecting, reads the SMTP password only
from the environment variable named by ``email.password_env`` or a git-ignored ``.env`` file, retries
transient failures (connection errors, 4xx replies) with exponential backoff, never retries permanent
ones (authentication, 5xx), and records per recipient what was and was not sent in
``email-log.json`` next to the report, so a retry skips those already served with the same message.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import smtplib
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from .config import EmailSettings, Settings
from .formatting import HEADLINE_KPIS, KPI_SPECS, change, fmt_value
from .periods import Period

__all__ = [
    "MailError",
    "SendResult",
    "build_message",
    "email_command",
    "read_password",
    "send_report",
    "validate_address",
]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "email"
LOG_NAME = "email-log.json"
EML_NAME = "email.eml"
CHART_CID = "revenue-chart"

# RFC 5322 "dot-atom" local part and an LDH domain with at least one dot (what real mailboxes use)
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")

TONE_COLOURS = {"good": "#1a7f37", "bad": "#c0392b", "neutral": "#5b6475"}


class MailError(Exception):
    """A clear, one-line reason why the report was not (fully) sent."""


# ------------------------------------------------------------------------------------- addresses

def validate_address(value: str, what: str = "address") -> str:
    """Return ``value`` if it is one valid mailbox (``a@b.example`` or ``Name <a@b.example>``).

    Raises
    ------
    MailError
        naming the offending value: empty, line breaks (header injection), several addresses in one
        string, or not of the form ``local@domain.tld``.
    """
    raw = value if isinstance(value, str) else str(value)
    if not raw.strip():
        raise MailError(f"{what} is empty")
    if any(c in raw for c in "\r\n\0"):
        raise MailError(f"invalid {what} {raw!r}: contains a line break")
    if "," in raw.replace('","', "") and raw.count("@") > 1:
        raise MailError(f"invalid {what} {raw!r}: one address per entry, please")
    try:
        name, addr = parseaddr(raw, strict=True)  # Python ≥ 3.11.10 / 3.12.6: stricter parsing
    except TypeError:  # pragma: no cover - older patch releases
        name, addr = parseaddr(raw)
    if not addr or not _ADDRESS.match(addr) or len(addr) > 254:
        raise MailError(f"invalid {what} {raw!r}: expected name@domain.tld or 'Name <name@domain.tld>'")
    return formataddr((name, addr)) if name else addr


def _bare(address: str) -> str:
    return parseaddr(address)[1]


# ---------------------------------------------------------------------------------------- secrets

def read_password(settings: EmailSettings, env_file: Path | str = ".env") -> str | None:
    """The SMTP password from the environment variable ``settings.password_env``, else from a
    ``KEY=VALUE`` line of ``env_file`` (quotes stripped); ``None`` when neither has it."""
    name = settings.password_env
    if not name:
        return None
    if os.environ.get(name):
        return os.environ[name]
    path = Path(env_file)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.removeprefix("export ").partition("=")
            if key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                return value or None
    return None


# ----------------------------------------------------------------------------------------- message

def _jinja():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _kpi_rows(doc: dict[str, Any], currency: str) -> list[dict[str, Any]]:
    rows = []
    for key in HEADLINE_KPIS:
        cur = doc["kpis"].get(key)
        vs_prev = change(key, cur, doc["previous"].get(key), currency)
        vs_ago = change(key, cur, doc["year_ago"].get(key), currency)
        rows.append({
            "label": KPI_SPECS[key].label,
            "value": fmt_value(key, cur, currency),
            "previous": fmt_value(key, doc["previous"].get(key), currency),
            "year_ago": fmt_value(key, doc["year_ago"].get(key), currency),
            "vs_previous": vs_prev.text, "vs_previous_colour": TONE_COLOURS[vs_prev.tone],
            "vs_year_ago": vs_ago.text, "vs_year_ago_colour": TONE_COLOURS[vs_ago.tone],
        })
    return rows


def chart_png(doc: dict[str, Any], currency: str) -> bytes:
    """The key chart for the mail: gross revenue from new and returning purchases a year ago, in the
    previous period and now (drawn from metrics.json, so it always matches the table beside it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import plots

    plots.set_theme()
    labels = [doc.get("year_ago_period", {}).get("period", "year ago"),
              doc.get("previous_period", {}).get("period", "previous"), doc["period"]]
    frame = pd.DataFrame({
        "period": labels,
        "revenue_new": [doc[b].get("revenue_new") or 0.0 for b in ("year_ago", "previous", "kpis")],
        "revenue_returning": [doc[b].get("revenue_returning") or 0.0 for b in ("year_ago", "previous", "kpis")],
    })
    fig, ax = plt.subplots(figsize=(6.4, 3.3))
    plots.revenue_trend(frame, currency=currency, ax=ax)
    gross = frame.revenue_new + frame.revenue_returning
    ago = gross.iloc[0]
    title = ax.get_title(loc="left")
    if ago:
        ch = gross.iloc[-1] / ago - 1
        title += f" and {'up' if ch >= 0 else 'down'} {abs(ch):.0%} on {labels[0]}"
    ax.set_title(title, fontsize=10.5, loc="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=144)
    plt.close(fig)
    return buf.getvalue()


@dataclass(frozen=True)
class Recipients:
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)

    @property
    def envelope(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in [*self.to, *self.cc, *self.bcc]:
            seen.setdefault(_bare(a).lower(), None)
        return list(seen)


def recipients_from(settings: EmailSettings, to: Iterable[str] | None = None) -> Recipients:
    """Validated recipients: ``to`` (CLI) replaces the configured To list; cc/bcc from the config."""
    to_list = list(to) if to else list(settings.to)
    if not to_list:
        raise MailError("no recipients: set email.to in the config or pass --to ADDRESS")
    return Recipients(
        to=[validate_address(a, "recipient (to)") for a in to_list],
        cc=[validate_address(a, "recipient (cc)") for a in settings.cc],
        bcc=[validate_address(a, "recipient (bcc)") for a in settings.bcc],
    )


def build_message(report_dir: Path, settings: Settings, period: Period,
                  recipients: Recipients | None = None) -> EmailMessage:
    """The complete message for the report in ``report_dir`` (``report.pdf`` and ``metrics.json``).

    Raises MailError when a file is missing, an address is invalid or the attachments exceed
    ``email.max_attachment_mb``.
    """
    report_dir = Path(report_dir)
    em = settings.email
    pdf_path = report_dir / "report.pdf"
    metrics_path = report_dir / "metrics.json"
    for p in (pdf_path, metrics_path):
        if not p.is_file():
            raise MailError(f"{p} is missing: render the report first (make report PERIOD={period.label})")
    if not em.sender:
        raise MailError("email.sender is not set in the config (the From address)")
    sender = validate_address(em.sender, "sender (email.sender)")
    reply_to = validate_address(em.reply_to, "reply-to (email.reply_to)") if em.reply_to else ""
    recipients = recipients or recipients_from(em)

    doc = json.loads(metrics_path.read_text(encoding="utf-8"))
    currency = settings.report.currency
    pdf = pdf_path.read_bytes()
    attachments: list[tuple[bytes, str, str, str]] = [(pdf, "application", "pdf", f"retention-report-{period.label}.pdf")]
    if em.attach_html and (report_dir / "report.html").is_file():
        attachments.append(((report_dir / "report.html").read_bytes(), "text", "html",
                            f"retention-report-{period.label}.html"))
    total_mb = sum(len(a[0]) for a in attachments) / 1e6
    if total_mb > em.max_attachment_mb:
        names = ", ".join(f"{a[3]} ({len(a[0]) / 1e6:.1f} MB)" for a in attachments)
        raise MailError(f"attachments of {total_mb:.1f} MB exceed email.max_attachment_mb = "
                        f"{em.max_attachment_mb:g} MB ({names}); nothing was sent")

    title = settings.report.title
    where = settings.report.report_url or str((report_dir / "report.html").resolve())
    context = {
        "title": title,
        "period": period,
        "complete": bool(doc.get("complete")),
        "rows": _kpi_rows(doc, currency),
        "previous_label": period.previous().title,
        "year_ago_label": period.year_ago().title,
        "findings": doc.get("findings", []),
        "where": where,
        "where_is_url": bool(settings.report.report_url),
        "chart_cid": CHART_CID,
        "pdf_name": attachments[0][3],
        "source": doc.get("source") or "",
    }
    env = _jinja()
    text = env.get_template("body.txt.j2").render(**context)
    html = env.get_template("body.html.j2").render(**context)

    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = f"{title} — {period.title}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients.to)
    if recipients.cc:
        msg["Cc"] = ", ".join(recipients.cc)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=f"rr-{period.label}", domain=_bare(sender).rsplit("@", 1)[1])
    msg["X-Report-Period"] = period.label
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(chart_png(doc, currency), maintype="image", subtype="png", cid=f"<{CHART_CID}>",
                          filename="revenue.png", disposition="inline")
    for data, maintype, subtype, name in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def message_key(msg: EmailMessage) -> str:
    """Identifies the content (subject + attachments): a re-run with the same report is the same
    message, whatever its Date and Message-ID."""
    h = hashlib.sha256(str(msg["Subject"]).encode())
    for part in msg.iter_attachments():
        h.update(part.get_content() if isinstance(part.get_content(), bytes) else part.get_content().encode())
    return h.hexdigest()[:32]


# -------------------------------------------------------------------------------------------- send

@dataclass
class SendResult:
    sent: list[str]
    skipped: list[str]          # already served by an earlier run with the same message
    failed: dict[str, str]      # address → reason
    attempts: int
    log_path: Path

    @property
    def ok(self) -> bool:
        return not self.failed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError, socket.timeout))


def _describe(exc: BaseException, em: EmailSettings, port: int) -> str:
    where = f"{em.smtp_host}:{port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"login refused by {where} for user {em.user!r} ({exc.smtp_code} {_decode(exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "every recipient was refused: " + "; ".join(
            f"{a}: {c} {_decode(m)}" for a, (c, m) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {exc.sender} refused by {where} ({exc.smtp_code} {_decode(exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where} answered {exc.smtp_code} {_decode(exc.smtp_error)}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {where} failed: {exc.reason or exc} (email.security = {em.security!r}, verify_tls = {em.verify_tls})"
    if isinstance(exc, (ConnectionRefusedError, smtplib.SMTPConnectError)):
        return f"cannot connect to the SMTP server {where}: connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"the SMTP server {where} did not answer within {em.timeout_seconds:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the SMTP host {em.smtp_host!r}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the SMTP server {where} closed the connection ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _decode(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _port(em: EmailSettings) -> int:
    return em.smtp_port or {"starttls": 587, "tls": 465, "none": 25}[em.security]


def _tls_context(em: EmailSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not em.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _deliver(msg: EmailMessage, sender: str, rcpts: list[str], em: EmailSettings, password: str | None) -> dict:
    port = _port(em)
    if em.security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(em.smtp_host, port, timeout=em.timeout_seconds, context=_tls_context(em))
    else:
        smtp = smtplib.SMTP(em.smtp_host, port, timeout=em.timeout_seconds)
    try:
        smtp.ehlo()
        if em.security == "starttls":
            smtp.starttls(context=_tls_context(em))
            smtp.ehlo()
        if em.user:
            smtp.login(em.user, password or "")
        refused = smtp.send_message(msg, from_addr=sender, to_addrs=rcpts)
    finally:
        try:
            smtp.quit()
        except Exception:  # noqa: BLE001 - closing a broken connection
            smtp.close()
    return refused


def send_report(
    msg: EmailMessage,
    recipients: Recipients,
    settings: Settings,
    report_dir: Path,
    password: str | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
) -> SendResult:
    """Send ``msg`` to every recipient not yet served with this message, recording the outcome.

    One SMTP transaction carries all pending recipients, so a message either reaches the server for
    all of them or — when the server refuses single recipients — for all but those (recorded as
    failed). Transient failures are retried ``email.retries`` times with exponential backoff.
    """
    em = settings.email
    if em.user and not password:
        raise MailError(f"email.user is set but no password: set the environment variable {em.password_env} "
                        f"or put {em.password_env}=... in a git-ignored .env file")
    log_path = Path(report_dir) / LOG_NAME
    key = message_key(msg)
    log: dict[str, Any] = {}
    if log_path.is_file():
        try:
            log = json.loads(log_path.read_text(encoding="utf-8"))
        except ValueError:
            log = {}
    if log.get("message_key") != key:
        log = {"message_key": key, "period": str(msg.get("X-Report-Period", "")), "subject": str(msg["Subject"]),
               "recipients": {}, "attempts": []}
    status: dict[str, dict[str, Any]] = log["recipients"]
    everyone = recipients.envelope
    skipped = [a for a in everyone if status.get(a, {}).get("status") == "sent"]
    pending = [a for a in everyone if a not in skipped]
    for a in pending:
        status[a] = {"status": "pending", "at": _now()}
    if skipped:
        say(f"already sent to {', '.join(skipped)} (same report, {log_path.name}); not sending again")
    if not pending:
        _write_json_atomic(log_path, log)
        return SendResult([], skipped, {}, 0, log_path)

    sender = _bare(str(msg["From"]))
    port = _port(em)
    attempts = 0
    failed: dict[str, str] = {}
    sent: list[str] = []
    while True:
        attempts += 1
        try:
            refused = _deliver(msg, sender, pending, em, password)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and reported
            reason = _describe(exc, em, port)
            log["attempts"].append({"at": _now(), "error": reason})
            if _transient(exc) and attempts <= em.retries:
                wait = em.retry_backoff_seconds * (2 ** (attempts - 1))
                say(f"attempt {attempts} failed: {reason}; retrying in {wait:g} s")
                _write_json_atomic(log_path, log)
                sleep(wait)
                continue
            for a in pending:
                status[a] = {"status": "not sent", "at": _now(), "error": reason}
                failed[a] = reason
            break
        else:
            log["attempts"].append({"at": _now(), "message_id": str(msg["Message-ID"]),
                                    "refused": {a: f"{c} {_decode(m)}" for a, (c, m) in refused.items()}})
            refused_bare = {_bare(a).lower(): f"{c} {_decode(m)}" for a, (c, m) in refused.items()}
            for a in pending:
                if a in refused_bare:
                    status[a] = {"status": "refused", "at": _now(), "error": refused_bare[a]}
                    failed[a] = refused_bare[a]
                else:
                    status[a] = {"status": "sent", "at": _now(), "message_id": str(msg["Message-ID"])}
                    sent.append(a)
            break
    _write_json_atomic(log_path, log)
    return SendResult(sent, skipped, failed, attempts, log_path)


# ------------------------------------------------------------------------------------------ command

def write_eml(msg: EmailMessage, path: Path) -> Path:
    """Write the complete message (RFC 5322, CRLF line ends) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(msg.as_bytes(policy=SMTP_POLICY))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def email_command(
    period: str,
    config: str | None = None,
    to: list[str] | None = None,
    dry_run: bool = False,
    render_missing: bool = True,
    out: str | None = None,
    *,
    say: Callable[[str], None] = print,
    err: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``retention-report email``: render if needed, build, then send or (dry run) write email.eml.

    Returns the process exit code: 0 sent (or written), 1 nothing or not everything was sent,
    2 bad period or config.
    """
    from .config import ConfigError
    from .context import resolve_settings
    from .periods import PeriodError, parse_period

    try:
        p = parse_period(period)
        settings = resolve_settings(config)
    except (PeriodError, ConfigError) as exc:
        err(f"error: {exc}")
        return 2
    report_dir = Path(out) if out else Path(settings.report.output_dir) / p.label
    try:
        recipients = recipients_from(settings.email, to)
        if settings.email.sender:
            validate_address(settings.email.sender, "sender (email.sender)")
        if not (report_dir / "report.pdf").is_file():
            if not render_missing:
                raise MailError(f"no rendered report for {p.label} in {report_dir} (run `make report "
                                f"PERIOD={p.label}` first, or leave out --no-render to render it now)")
            say(f"no rendered report for {p.label} in {report_dir}: rendering it first …")
            from .pipeline import run_report

            run_report(settings, p, config_path=config, out_dir=report_dir, progress=say)
        msg = build_message(report_dir, settings, p, recipients)
        if dry_run:
            path = write_eml(msg, report_dir / EML_NAME)
            say(f"dry run: message for {len(recipients.envelope)} recipient(s) written to {path} "
                f"({path.stat().st_size / 1e6:.1f} MB); nothing was sent")
            return 0
        password = read_password(settings.email)
        result = send_report(msg, recipients, settings, report_dir, password, sleep=sleep, say=say)
    except MailError as exc:
        err(f"error: {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - render/data errors: one line, no traceback wall
        err(f"error: {type(exc).__name__}: {exc}")
        return 1
    if result.sent:
        say(f"sent '{msg['Subject']}' to {', '.join(result.sent)}")
    for addr, reason in result.failed.items():
        err(f"error: not sent to {addr}: {reason}")
    if result.failed:
        err(f"record of what was and was not sent: {result.log_path}")
        return 1
    return 0
