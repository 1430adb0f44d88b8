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
from .formatting import HEADLINE_KPIS, change, fmt_value, kpi_spec
from .periods import Period

__all__ = [
    "MailError",
    "SendResult",
    "build_message",
    "email_command",
    "read_password",
    "send_message",
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
    """The SMTP password from the environment variable ``settings.password_env``, else from that
    key in ``env_file`` (:func:`retention_report.secrets.read_secret`); ``None`` when neither has it."""
    from .secrets import read_secret

    return read_secret(settings.password_env, env_file) or None


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
            "label": kpi_spec(key, doc).label,  # "AOV per order" / "AOV per purchase" as in the report
            "value": fmt_value(key, cur, currency),
            "previous": fmt_value(key, doc["previous"].get(key), currency),
            "year_ago": fmt_value(key, doc["year_ago"].get(key), currency),
            "vs_previous": vs_prev.text, "vs_previous_colour": TONE_COLOURS[vs_prev.tone],
            "vs_year_ago": vs_ago.text, "vs_year_ago_colour": TONE_COLOURS[vs_ago.tone],
        })
    return rows


def chart_png(doc: dict[str, Any], currency: str, labels: list[str] | None = None) -> bytes:
    """The key chart for the mail: gross revenue from new and returning purchases a year ago, in the
    previous period and now, as a PNG.

    Why redraw it rather than reuse a chart of ``report.html``: the report's images are anonymous
    base64 ``<img>`` tags whose order and content change whenever a notebook does, and its revenue
    trend is sized for an A4 page (its labels become unreadable at mail width). Drawing this one
    small chart from ``metrics.json`` with the project's theme (:func:`plots.set_theme`,
    :func:`plots.revenue_trend`) takes ~0.3 s, needs only the file the mail is built from anyway,
    always matches the KPI table beside it, and is sized for a 600-pixel mail column at 2x
    resolution for high-density screens.

    ``labels``: the three bar labels (year ago, previous, current); default the periods' labels.
    The chart has no title: :func:`chart_caption` is shown as text above it.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    from . import plots
    plots.set_theme()
    blocks = ("year_ago", "previous", "kpis")
    if labels is None:
        labels = [doc.get("year_ago_period", {}).get("period", "year ago"),
                  doc.get("previous_period", {}).get("period", "previous"), doc["period"]]
    frame = pd.DataFrame({
        "period": labels,
        "revenue_new": [doc[b].get("revenue_new") or 0.0 for b in blocks],
        "revenue_returning": [doc[b].get("revenue_returning") or 0.0 for b in blocks],
    })
    with plt.rc_context({"xtick.labelsize": 9.5, "ytick.labelsize": 8.5, "axes.labelsize": 9,
                         "legend.fontsize": 9}):
        fig, ax = plt.subplots(figsize=(5.4, 2.9))
        plots.revenue_trend(frame, currency=currency, ax=ax)
        for t in ax.texts:  # the totals above the bars
            t.set_fontsize(9.5)
            t.set_fontweight("bold")
        ax.set_title("")  # the title is HTML text above the image: readable, and there with images off
        buf = io.BytesIO()
        # 1184 px wide (tight bounding box aside): shown at 592 CSS pixels, sharp on 2x screens
        fig.savefig(buf, format="png", dpi=220, metadata={"Software": None})
        plt.close(fig)
    return buf.getvalue()


def chart_caption(doc: dict[str, Any], currency: str, labels: list[str]) -> str:
    """``Gross revenue in Q1 2024: €3,130,801, down 16% on Q4 2023 and up 34% on Q1 2023``."""
    from .formatting import fmt_money

    gross = [(doc[b].get("revenue_new") or 0.0) + (doc[b].get("revenue_returning") or 0.0)
             for b in ("year_ago", "previous", "kpis")]
    moves = [f"{'up' if gross[-1] >= ref else 'down'} {abs(gross[-1] / ref - 1):.0%} on {label}"
             for ref, label in ((gross[1], labels[1]), (gross[0], labels[0])) if ref]
    return f"Gross revenue in {labels[-1]}: {fmt_money(gross[-1], currency)}" + (
        ", " + " and ".join(moves) if moves else "")


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


def split_addresses(entries: Iterable[str]) -> list[str]:
    """``["a@x.example, Jane <j@y.example>"]`` → ``["a@x.example", "Jane <j@y.example>"]``: a
    ``--to`` value (or ``make email TO=…``) may list several addresses separated by commas. Entries
    with line breaks or that do not split cleanly are kept whole, so validation names them as given.
    """
    from email.utils import getaddresses

    out: list[str] = []
    for entry in entries:
        parts = []
        if isinstance(entry, str) and "," in entry and not any(c in entry for c in "\r\n\0"):
            try:
                parts = getaddresses([entry], strict=True)
            except TypeError:  # pragma: no cover - older patch releases
                parts = getaddresses([entry])
        if len(parts) > 1 and all(addr and "@" in addr for _, addr in parts):
            out.extend(formataddr(p) if p[0] else p[1] for p in parts)
        else:
            out.append(entry)
    return out


def recipients_from(settings: EmailSettings, to: Iterable[str] | None = None) -> Recipients:
    """Validated recipients: ``to`` (command line; comma-separated lists allowed) replaces the
    configured To list; cc/bcc from the config (one address per list entry)."""
    to_list = split_addresses(to) if to else list(settings.to)
    if not to_list:
        raise MailError("no recipients: set email.to in the config or pass --to ADDRESS")
    return Recipients(
        to=[validate_address(a, "recipient (to)") for a in to_list],
        cc=[validate_address(a, "recipient (cc)") for a in settings.cc],
        bcc=[validate_address(a, "recipient (bcc)") for a in settings.bcc],
    )


def _no_password(em: EmailSettings) -> str:
    return (f"email.user is set but there is no password: set the environment variable {em.password_env} "
            f"or put {em.password_env}=... in a git-ignored .env file in the current directory")


def _check_headers(settings: Settings) -> tuple[str, str]:
    """The validated From and Reply-To; the title (in the Subject) must be one line."""
    em = settings.email
    if not em.sender:
        raise MailError("email.sender is not set in the config (the From address)")
    sender = validate_address(em.sender, "sender (email.sender)")
    reply_to = validate_address(em.reply_to, "reply-to (email.reply_to)") if em.reply_to else ""
    if any(c in settings.report.title for c in "\r\n\0"):
        raise MailError(f"report.title {settings.report.title!r} contains a line break; it is the mail's Subject")
    return sender, reply_to


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
    sender, reply_to = _check_headers(settings)
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
    chart_labels = [period.year_ago().title, period.previous().title, period.title]
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
        "chart_caption": chart_caption(doc, currency, chart_labels),
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
    chart = chart_png(doc, currency, chart_labels)
    html_part.add_related(chart, maintype="image", subtype="png", cid=f"<{CHART_CID}>",
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
    message_id: str = ""

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
    """Worth retrying: connection failures, timeouts and 4xx replies. Not: a refused login, 5xx
    replies, TLS failures (certificate, wrong port) and unknown host names — retrying cannot help."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return False
    if isinstance(exc, socket.gaierror):
        return exc.errno == socket.EAI_AGAIN  # "temporary failure in name resolution"
    return isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError, TimeoutError))


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
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the TLS certificate of {where} was not accepted: {exc.verify_message or exc.reason} "
                f"(a private CA belongs in the system trust store; email.verify_tls = false only for test servers)")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS with {where} failed: {exc.reason or exc} (email.security = {em.security!r}: 'tls' is "
                f"usually port 465, 'starttls' port 587)")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        hint = " (email.security = 'starttls'; use 'tls', or 'none' for a local relay)" if "STARTTLS" in str(exc) else ""
        return f"{where}: {exc}{hint}"
    if isinstance(exc, (ConnectionRefusedError, smtplib.SMTPConnectError)):
        return f"cannot connect to the SMTP server {where}: connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"the SMTP server {where} did not answer within {em.timeout_seconds:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the SMTP host {em.smtp_host!r}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the SMTP server {where} closed the connection ({exc})"
    if isinstance(exc, OSError):
        return f"cannot talk to the SMTP server {where}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _decode(v: Any) -> str:
    """A server reply as one line (multi-line replies are joined)."""
    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return " ".join(text.split())


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


def _load_log(log_path: Path, key: str, msg: EmailMessage) -> dict[str, Any]:
    """The log of this message (same ``message_key``), or a fresh one; the log of an earlier,
    different message (the report was re-rendered) is kept under ``earlier``."""
    old: dict[str, Any] = {}
    if log_path.is_file():
        try:
            old = json.loads(log_path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
    if not isinstance(old, dict):
        old = {}
    if old.get("message_key") == key:
        return old
    earlier = old.pop("earlier", []) if old else []
    if old.get("recipients"):
        earlier = [*earlier, old][-20:]
    log: dict[str, Any] = {
        "message_key": key, "period": str(msg.get("X-Report-Period", "")), "subject": str(msg["Subject"]),
        "message_id": "", "recipients": {}, "attempts": [],
    }
    if earlier:
        log["earlier"] = earlier
    return log


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
    """Send ``msg`` to every recipient not yet served with this message, recording the outcome in
    ``report_dir/email-log.json``.

    * One SMTP transaction carries all pending recipients: the message reaches the server for all of
      them or — when the server refuses single recipients at RCPT — for all but those, which are
      recorded as refused (never silently dropped).
    * Transient failures (connection refused or reset, timeouts, 4xx replies, also a 4xx for single
      recipients) are retried ``email.retries`` times, waiting ``retry_backoff_seconds`` × 1, 2, 4 …;
      permanent ones (refused login, 5xx, TLS errors) are not.
    * Recipients the log shows as served with the same message (:func:`message_key`) are skipped,
      and the message keeps the Message-ID it was first sent with, so a re-run after a partial
      failure completes the same message without duplicates.

    The password is used for ``LOGIN`` only; it is never logged or echoed.
    """
    em = settings.email
    if em.user and not password:
        raise MailError(_no_password(em))
    log_path = Path(report_dir) / LOG_NAME
    key = message_key(msg)
    log = _load_log(log_path, key, msg)
    if log.get("message_id"):
        del msg["Message-ID"]
        msg["Message-ID"] = log["message_id"]
    else:
        log["message_id"] = str(msg["Message-ID"])
    message_id = log["message_id"]
    status: dict[str, dict[str, Any]] = log["recipients"]
    everyone = recipients.envelope
    skipped = [a for a in everyone if status.get(a, {}).get("status") == "sent"]
    pending = [a for a in everyone if a not in skipped]
    if skipped:
        say(f"already sent to {', '.join(skipped)} (same report, see {log_path}); not sending to them again")
    if not pending:
        _write_json_atomic(log_path, log)
        say("every recipient has already received this report; nothing to send")
        return SendResult([], skipped, {}, 0, log_path, message_id)

    sender = _bare(str(msg["From"]))
    port = _port(em)
    attempts = 0
    failed: dict[str, str] = {}
    sent: list[str] = []
    while pending:
        attempts += 1
        for a in pending:  # on record before connecting: an interrupted run leaves a trace
            status[a] = {"status": "sending", "at": _now(), "attempt": attempts}
        _write_json_atomic(log_path, log)
        try:
            refused = _deliver(msg, sender, pending, em, password)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and reported
            reason = _describe(exc, em, port)
            transient = _transient(exc)
            log["attempts"].append({"at": _now(), "recipients": pending, "error": reason, "transient": transient})
            if transient and attempts <= em.retries:
                wait = em.retry_backoff_seconds * (2 ** (attempts - 1))
                say(f"attempt {attempts} failed: {reason}; retrying in {wait:g} s")
                for a in pending:
                    status[a] = {"status": "retrying", "at": _now(), "error": reason}
                _write_json_atomic(log_path, log)
                sleep(wait)
                continue
            if transient and em.retries:
                reason += f" (gave up after {attempts} attempts)"
            for a in pending:
                status[a] = {"status": "not sent", "at": _now(), "error": reason}
                failed[a] = reason
            break
        except BaseException:  # Ctrl-C: nobody knows whether the server got the message
            for a in pending:
                status[a] = {"status": "interrupted", "at": _now(),
                             "error": "interrupted during the SMTP transaction; delivery unknown"}
            _write_json_atomic(log_path, log)
            raise
        refused_bare = {_bare(a).lower(): (code, f"{code} {_decode(m)}") for a, (code, m) in refused.items()}
        log["attempts"].append({"at": _now(), "recipients": pending, "message_id": message_id,
                                "refused": {a: text for a, (_, text) in refused_bare.items()}})
        deferred: list[str] = []
        for a in pending:
            if a not in refused_bare:
                status[a] = {"status": "sent", "at": _now(), "message_id": message_id}
                sent.append(a)
                continue
            code, text = refused_bare[a]
            if 400 <= code < 500 and attempts <= em.retries:
                status[a] = {"status": "retrying", "at": _now(), "error": f"recipient deferred: {text}"}
                deferred.append(a)
            else:
                status[a] = {"status": "refused", "at": _now(), "error": f"recipient refused: {text}"}
                failed[a] = f"recipient refused by {em.smtp_host}:{port}: {text}"
        if deferred:
            wait = em.retry_backoff_seconds * (2 ** (attempts - 1))
            say(f"the server deferred {', '.join(deferred)} ({refused_bare[deferred[0]][1]}); "
                f"retrying them in {wait:g} s")
            _write_json_atomic(log_path, log)
            sleep(wait)
        pending = deferred
    _write_json_atomic(log_path, log)
    return SendResult(sent, skipped, failed, attempts, log_path, message_id)


send_message = send_report  # the name the issue uses


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
    data: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
    err: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``retention-report email``: render if needed, build, then send or (dry run) write email.eml.

    The report must have been rendered from the current config and ``data`` (source and the
    settings that shape its content, as recorded by ``run``); otherwise nothing is sent (exit 1)
    unless ``force``.

    Returns the process exit code: 0 sent (or written), 1 nothing or not everything was sent,
    2 bad period, config or output folder.
    """
    from .config import ConfigError
    from .context import resolve_settings
    from .outputs import OutputError, report_mismatch
    from .periods import PeriodError, parse_period

    try:
        p = parse_period(period)
        settings = resolve_settings(config, data)
    except (PeriodError, ConfigError) as exc:
        err(f"error: {exc}")
        return 2
    report_dir = Path(out).expanduser() if out else Path(settings.report.output_dir) / p.label
    try:
        # everything that can be checked without the report, before a (slow) rendering
        recipients = recipients_from(settings.email, to)
        _check_headers(settings)
        password = None if dry_run else read_password(settings.email)
        if not dry_run and settings.email.user and not password:
            raise MailError(_no_password(settings.email))
        if not (report_dir / "report.pdf").is_file():
            if not render_missing:
                raise MailError(f"no rendered report for {p.label} in {report_dir} (run `make report "
                                f"PERIOD={p.label}` first, or leave out --no-render to render it now)")
            say(f"no rendered report for {p.label} in {report_dir}: rendering it first …")
            from .pipeline import run_report

            run_report(settings, p, config_path=config, data=data, out_dir=report_dir, progress=say)
        mismatch = report_mismatch(report_dir, settings, p.label)
        if mismatch and not force:
            raise MailError(mismatch)
        if mismatch:
            say(f"warning (--force): {mismatch.split(': ', 1)[0]}; sending it anyway")
        msg = build_message(report_dir, settings, p, recipients)
        if dry_run:
            path = write_eml(msg, report_dir / EML_NAME)
            say(f"dry run: message for {len(recipients.envelope)} recipient(s) written to {path} "
                f"({path.stat().st_size / 1e6:.1f} MB); nothing was sent")
            return 0
        result = send_report(msg, recipients, settings, report_dir, password, sleep=sleep, say=say)
    except MailError as exc:
        err(f"error: {exc}")
        return 1
    except OutputError as exc:  # --out names a folder that is not a report (checked before rendering)
        err(f"error: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - render/data errors: one line, no traceback wall
        err(f"error: {type(exc).__name__}: {exc}")
        return 1
    if result.sent:
        say(f"sent '{msg['Subject']}' to {', '.join(result.sent)} (Message-ID {result.message_id}; "
            f"record: {result.log_path})")
    for addr, reason in result.failed.items():
        err(f"error: not sent to {addr}: {reason}")
    if result.failed:
        err(f"record of what was and was not sent: {result.log_path}")
        return 1
    return 0
