"""Delivering the report mail: the SMTP password, the SMTP transaction, retries, and the record of
who was sent what (``email-log.json`` next to the report).

:func:`send_report` reads no settings file and builds nothing: it takes a composed message
(:func:`retention_report.mail.compose.build_message`), validated recipients and the password
(:func:`require_password`: only from the environment variable named by ``email.password_env`` or a
git-ignored ``.env`` file). Transient failures (connection errors, timeouts, 4xx replies) are
retried with exponential backoff, permanent ones (authentication, 5xx, TLS) never; per recipient the
log records what was and was not sent, so a retry skips those already served with the same message.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from ..config import EmailSettings, Settings
from ..fsio import write_atomic
from ..secrets import read_secret
from .addresses import MailError, Recipients, bare

__all__ = ["LOG_NAME", "UNKNOWN", "SendResult", "check_security", "message_key", "read_password", "require_password",
           "send_report"]

LOG_NAME = "email-log.json"
# the status of a recipient whose delivery nobody knows (email-log.json)
UNKNOWN = "unknown — check before resending"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


# ---------------------------------------------------------------------------------------- secrets

def read_password(settings: EmailSettings, env_file: Path | str = ".env") -> str | None:
    """The SMTP password from the environment variable ``settings.password_env``, else from that
    key in ``env_file`` (:func:`retention_report.secrets.read_secret`); ``None`` when neither has it."""
    return read_secret(settings.password_env, env_file) or None


def _no_password(em: EmailSettings) -> str:
    return (f"email.user is set but there is no password: set the environment variable {em.password_env} "
            f"or put {em.password_env}=... in a git-ignored .env file in the current directory")


def require_password(settings: EmailSettings, env_file: Path | str = ".env") -> str | None:
    """:func:`read_password`; raises MailError, naming where to put it, when ``email.user`` is set
    (the server wants a login) and there is none. ``None`` when no login is configured and none is set."""
    password = read_password(settings, env_file)
    if settings.user and not password:
        raise MailError(_no_password(settings))
    return password


# ---------------------------------------------------------------------------------------- the log

def message_key(msg: EmailMessage) -> str:
    """Identifies the content (subject + attachments): a re-run with the same report is the same
    message, whatever its Date and Message-ID."""
    h = hashlib.sha256(str(msg["Subject"]).encode())
    for part in msg.iter_attachments():
        h.update(part.get_content() if isinstance(part.get_content(), bytes) else part.get_content().encode())
    return h.hexdigest()[:32]


@dataclass
class SendResult:
    sent: list[str]
    skipped: list[str]          # already served by an earlier run with the same message
    failed: dict[str, str]      # address → reason
    attempts: int
    log_path: Path
    message_id: str = ""
    # address → why nobody knows whether it was delivered (the server got the whole message but its
    # answer never came): never sent again automatically
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unknown


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_log(path: Path, log: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(log, indent=2), mode=0o644)


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


# ------------------------------------------------------------------------------------------- SMTP

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


def is_local_host(host: str) -> bool:
    """``localhost``, a loopback address (127.0.0.0/8, ::1): mail to it never leaves the machine."""
    import ipaddress

    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_security(em: EmailSettings) -> None:
    """Raise ConfigError for ``email.security = "none"`` with a login to another host than this
    machine: the password (and the report) would cross the network in clear text."""
    from ..config import ConfigError

    if em.security == "none" and em.user and not is_local_host(em.smtp_host):
        raise ConfigError(
            f"email.security = 'none' sends the password of email.user in clear text; it is allowed only "
            f"for a relay on this machine (email.smtp_host = {', '.join(LOCAL_HOSTS)}), not "
            f"{em.smtp_host!r}: set email.security = 'starttls' (port 587) or 'tls' (port 465)")


class DeliveryUnknown(Exception):
    """The whole message went to the server (after DATA) but its answer never came (a timeout, a
    dropped connection): it may or may not have been accepted."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _DataTracking:
    """Notes when the end of the message data (``CRLF . CRLF``, sent by ``smtplib.SMTP.data`` in one
    piece) has gone to the server."""

    data_sent = False

    def send(self, s: Any) -> None:
        super().send(s)  # type: ignore[misc]
        end = b"\r\n.\r\n" if isinstance(s, bytes) else "\r\n.\r\n"
        if s.endswith(end):
            self.data_sent = True


class _SMTP(_DataTracking, smtplib.SMTP):
    pass


class _SMTP_SSL(_DataTracking, smtplib.SMTP_SSL):  # smtplib's name
    pass


def _transaction(msg: EmailMessage, sender: str, rcpts: list[str], em: EmailSettings, password: str | None) -> dict[str, tuple[int, bytes]]:
    """One SMTP session (TLS or STARTTLS, login when ``email.user`` is set) delivering ``msg`` to
    ``rcpts``; returns the recipients refused at RCPT (``smtplib.SMTP.send_message``). Raises
    :class:`DeliveryUnknown` when the message was sent but no answer to it came."""
    port = _port(em)
    if em.security == "tls":
        smtp: _SMTP | _SMTP_SSL = _SMTP_SSL(em.smtp_host, port, timeout=em.timeout_seconds, context=_tls_context(em))
    else:
        smtp = _SMTP(em.smtp_host, port, timeout=em.timeout_seconds)
    try:
        smtp.ehlo()
        if em.security == "starttls":
            smtp.starttls(context=_tls_context(em))
            smtp.ehlo()
        if em.user:
            smtp.login(em.user, password or "")
        try:
            refused = smtp.send_message(msg, from_addr=sender, to_addrs=rcpts)
        except smtplib.SMTPResponseException:
            raise  # the server answered (a 4xx or 5xx to the message): it was not accepted
        except Exception as exc:
            if smtp.data_sent:
                raise DeliveryUnknown(exc) from exc
            raise
    finally:
        try:
            smtp.quit()
        except Exception:  # closing a broken connection
            smtp.close()
    return refused


def _too_many(code: int, text: str) -> bool:
    """A 452 to RCPT: too many recipients in this transaction (RFC 5321 §4.5.3.1.10)."""
    return code == 452


def send_report(
    msg: EmailMessage,
    recipients: Recipients,
    settings: Settings,
    report_dir: Path,
    password: str | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
    resend_unknown: bool = False,
) -> SendResult:
    """Send ``msg`` to every recipient not yet served with this message, recording the outcome in
    ``report_dir/email-log.json``.

    * One SMTP transaction carries the pending recipients: the message reaches the server for all of
      them or — when the server refuses single recipients at RCPT — for all but those, which are
      recorded as refused (never silently dropped). A server that limits the recipients of one
      transaction ("452 too many recipients" after accepting some) gets the rest in further
      transactions of at most as many as it accepted, at once and without using up a retry.
    * Transient failures (connection refused or reset, timeouts, 4xx replies, also a 4xx for single
      recipients) are retried ``email.retries`` times, waiting ``retry_backoff_seconds`` × 1, 2, 4 …;
      permanent ones (refused login, 5xx, TLS errors) are not.
    * Once the whole message went to the server, it is never sent again automatically: when the
      server's answer to it never comes (a timeout, a dropped connection) the recipients are recorded
      as :data:`UNKNOWN` and are skipped by later runs unless ``resend_unknown``.
    * Recipients the log shows as served with the same message (:func:`message_key`) are skipped,
      and the message keeps the Message-ID it was first sent with, so a re-run after a partial
      failure completes the same message without duplicates.

    The password is used for ``LOGIN`` only; it is never logged or echoed.
    """
    em = settings.email
    if em.user and not password:
        raise MailError(_no_password(em))
    try:
        check_security(em)
    except ValueError as exc:
        raise MailError(str(exc)) from None
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
    unknown: dict[str, str] = {}
    if not resend_unknown:
        unknown = {a: str(status[a].get("error", UNKNOWN)) for a in everyone
                   if status.get(a, {}).get("status") == UNKNOWN}
    if skipped:
        say(f"already sent to {', '.join(skipped)} (same report, see {log_path}); not sending to them again")
    if unknown:
        say(f"delivery to {', '.join(unknown)} is unknown since an earlier run ({log_path}); not sending to "
            "them again: check with the mail server or the recipients, then pass --resend-unknown")
    pending = [a for a in everyone if a not in skipped and a not in unknown]
    if not pending:
        _write_log(log_path, log)
        if not unknown:
            say("every recipient has already received this report; nothing to send")
        return SendResult([], skipped, {}, 0, log_path, message_id, unknown)

    sender = bare(str(msg["From"]))
    port = _port(em)
    attempts = 0
    tries = 0  # consecutive attempts that delivered to nobody (the retries and the backoff count them)
    batch = 0  # the most recipients the server takes in one transaction (0: no limit seen)
    failed: dict[str, str] = {}
    sent: list[str] = []
    while pending:
        chunk = pending[:batch] if batch else list(pending)
        attempts += 1
        for a in chunk:  # on record before connecting: an interrupted run leaves a trace
            status[a] = {"status": "sending", "at": _now(), "attempt": attempts}
        _write_log(log_path, log)
        try:
            refused = _transaction(msg, sender, chunk, em, password)
        except DeliveryUnknown as exc:
            reason = (f"{UNKNOWN}: the whole message went to {em.smtp_host}:{port}, but no answer to it "
                      f"came ({_describe(exc.cause, em, port)}); it may have been delivered")
            log["attempts"].append({"at": _now(), "recipients": chunk, "message_id": message_id,
                                    "error": reason, "transient": False})
            for a in chunk:
                status[a] = {"status": UNKNOWN, "at": _now(), "message_id": message_id, "error": reason}
                unknown[a] = reason
            rest = [a for a in pending if a not in chunk]
            for a in rest:  # not tried: a later run sends to them
                status[a] = {"status": "not sent", "at": _now(), "error": f"not tried after: {reason}"}
                failed[a] = f"not tried: the delivery before them is {UNKNOWN}"
            break
        except Exception as exc:  # every failure is classified and reported
            reason = _describe(exc, em, port)
            transient = _transient(exc)
            log["attempts"].append({"at": _now(), "recipients": chunk, "error": reason, "transient": transient})
            tries += 1
            if transient and tries <= em.retries:
                wait = em.retry_backoff_seconds * (2 ** (tries - 1))
                say(f"attempt {attempts} failed: {reason}; retrying in {wait:g} s")
                for a in chunk:
                    status[a] = {"status": "retrying", "at": _now(), "error": reason}
                _write_log(log_path, log)
                sleep(wait)
                continue
            if transient and em.retries:
                reason += f" (gave up after {tries} attempts)"
            for a in pending:
                status[a] = {"status": "not sent", "at": _now(), "error": reason}
                failed[a] = reason
            break
        except BaseException:  # Ctrl-C: nobody knows whether the server got the message
            for a in chunk:
                status[a] = {"status": "interrupted", "at": _now(),
                             "error": "interrupted during the SMTP transaction; delivery unknown"}
            _write_log(log_path, log)
            raise
        refused_bare = {bare(a).lower(): (code, f"{code} {_decode(m)}") for a, (code, m) in refused.items()}
        log["attempts"].append({"at": _now(), "recipients": chunk, "message_id": message_id,
                                "refused": {a: text for a, (_, text) in refused_bare.items()}})
        accepted = [a for a in chunk if a not in refused_bare]
        if accepted:
            tries = 0
        else:
            tries += 1
        deferred: list[str] = []
        limited: list[str] = []
        for a in chunk:
            if a not in refused_bare:
                status[a] = {"status": "sent", "at": _now(), "message_id": message_id}
                sent.append(a)
                continue
            code, text = refused_bare[a]
            if accepted and _too_many(code, text):  # the server's limit: the next batch, at once
                status[a] = {"status": "pending", "at": _now(), "error": f"recipient limit: {text}"}
                limited.append(a)
            elif 400 <= code < 500 and tries <= em.retries:
                status[a] = {"status": "retrying", "at": _now(), "error": f"recipient deferred: {text}"}
                deferred.append(a)
            else:
                status[a] = {"status": "refused", "at": _now(), "error": f"recipient refused: {text}"}
                failed[a] = f"recipient refused by {em.smtp_host}:{port}: {text}"
        if limited:
            batch = min(batch, len(accepted)) if batch else len(accepted)
            say(f"{em.smtp_host}:{port} takes {batch} recipient(s) per message ({refused_bare[limited[0]][1]}); "
                f"sending to the other {len(limited) + len(pending) - len(chunk)} in further batches")
        done = set(chunk) - set(limited) - set(deferred)
        pending = [a for a in pending if a not in done]
        if deferred and not limited and len(pending) == len(deferred):
            wait = em.retry_backoff_seconds * (2 ** (max(tries, 1) - 1))
            say(f"the server deferred {', '.join(deferred)} ({refused_bare[deferred[0]][1]}); "
                f"retrying them in {wait:g} s")
            _write_log(log_path, log)
            sleep(wait)
    _write_log(log_path, log)
    return SendResult(sent, skipped, failed, attempts, log_path, message_id, unknown)
