"""Emailing the report, against a real SMTP server (aiosmtpd on 127.0.0.1 with STARTTLS and AUTH,
or implicit TLS) using a throwaway self-signed certificate.

The report folder is built here (metrics.json from the real metric engine on a small sample, a small
real PDF), so the tests run on a clean clone; only the slow test renders a whole report.
"""

from __future__ import annotations

import email
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from retention_report.context import resolve_settings
from retention_report.mail import (
    EML_NAME,
    LOG_NAME,
    MailError,
    read_password,
    validate_address,
)
from retention_report.mail.command import email_command
from retention_report.outputs import MARKER, content_record, update_marker

PASSWORD = "s3cret-Pa55-word-xyz"
USER = "reporter"
SENDER = "Reports <reports@shop.example>"
REPLY_TO = "Analytics <analytics@shop.example>"
TO = ["Board <board@shop.example>", "ceo@shop.example"]
CC = ["cfo@shop.example"]
BCC = ["archive@shop.example"]
EVERYONE = ["board@shop.example", "ceo@shop.example", "cfo@shop.example", "archive@shop.example"]
CLI = Path(sys.executable).with_name("retention-report")
SOURCE: dict[str, str] = {}  # the data the test reports are made from (see _sample_source)


@pytest.fixture(autouse=True)
def _sample_source(sample_parquet):
    """Every test config names the data the `rendered` report was made from: the email command
    refuses a report rendered from another source or settings."""
    SOURCE["path"] = str(sample_parquet)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A server TLS context with a throwaway self-signed certificate for localhost."""
    if not shutil.which("openssl"):  # pragma: no cover - the test environment installs it
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


class Recorder:
    """aiosmtpd handler: keeps every accepted message; refuses chosen recipients with 550, defers
    others once with 450, and answers DATA with queued replies (e.g. a 451) before accepting."""

    def __init__(self, refuse=(), defer_once=(), data_replies=()):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse = {a.lower() for a in refuse}
        self.defer_once = {a.lower() for a in defer_once}
        self.data_replies = list(data_replies)
        self.peers: set = set()
        self.data_commands = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.peers.add(session.peer)  # smtplib always says EHLO first; (host, port) per connection
        session.host_name = hostname
        return responses

    @property
    def connections(self) -> int:
        return len(self.peers)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address.lower() in self.defer_once:
            self.defer_once.discard(address.lower())
            return "450 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def start_starttls_server(cert, handler):
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, tls_context=cert, require_starttls=True,
                     authenticator=authenticator, auth_required=True, auth_require_tls=True)
    ctl.start()
    return ctl, port


def send_via(cert, handler, tmp_path, report_dir, monkeypatch):
    """One `email` command against a STARTTLS server with ``handler``; returns (exit code, output)."""
    ctl, port = start_starttls_server(cert, handler)
    try:
        monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
        cap = Captured()
        rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    finally:
        ctl.stop()
    return rc, cap


@pytest.fixture
def smtp_starttls(cert):
    handler = Recorder(refuse=["nobody@shop.example"])
    ctl, port = start_starttls_server(cert, handler)
    yield handler, port
    ctl.stop()


@pytest.fixture
def smtp_implicit_tls(cert):
    handler = Recorder()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=cert, server_hostname="localhost")
    ctl.start()
    yield handler, port
    ctl.stop()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, sample_parquet) -> Path:
    """A report folder as `make report` leaves it: metrics.json from the real metric engine, a small
    real PDF and HTML (the full pipeline is tested elsewhere and in the slow test below)."""
    from weasyprint import HTML

    d = tmp_path_factory.mktemp("rendered") / "2024-Q1"
    r = subprocess.run([str(CLI), "metrics", "--period", "2024-Q1", "--data", str(sample_parquet), "--out", str(d)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    HTML(string="<h1>Sales &amp; customer retention</h1><p>Q1 2024</p>" * 20).write_pdf(d / "report.pdf")
    (d / "report.html").write_text("<!DOCTYPE html><title>report</title><h1>Report</h1>")
    # what `run` records: the report was rendered from the sample with default settings
    update_marker(d, "2024-Q1", report=content_record(resolve_settings(None, str(sample_parquet))))
    return d


@pytest.fixture
def report_dir(rendered, tmp_path) -> Path:
    d = tmp_path / "2024-Q1"
    shutil.copytree(rendered, d)
    return d


def write_config(tmp_path, port, **email_overrides) -> str:
    em = {"sender": SENDER, "reply_to": REPLY_TO, "to": TO, "cc": CC, "bcc": BCC, "smtp_host": "127.0.0.1",
          "smtp_port": port, "security": "starttls", "user": USER, "verify_tls": False, "retries": 2,
          "retry_backoff_seconds": 0.0, "timeout_seconds": 10.0}
    em.update(email_overrides)
    lines = ["[email]"] + [f"{k} = {json.dumps(v)}" for k, v in em.items()]
    lines += ["[report]", 'report_url = "https://reports.shop.example/2024-Q1/"']
    if SOURCE:
        lines += ["[source]", f"path = {json.dumps(SOURCE['path'])}"]
    path = tmp_path / "mail.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class Captured:
    """Runs email_command with its output captured and backoff waits recorded instead of slept."""

    def __init__(self):
        self.out: list[str] = []
        self.err: list[str] = []
        self.waits: list[float] = []

    def run(self, **kw) -> int:
        return email_command(period="2024-Q1", say=self.out.append, err=self.err.append, sleep=self.waits.append, **kw)

    @property
    def text(self) -> str:
        return "\n".join(self.out + self.err)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def read_log(report_dir: Path) -> dict:
    return json.loads((report_dir / LOG_NAME).read_text())


def assert_complete_message(msg, raw: bytes, report_dir: Path) -> None:
    """Headers, structure, PDF, HTML and text parts of a report mail."""
    assert msg["Subject"] == "Sales & customer retention — Q1 2024"
    assert msg["From"] == SENDER and msg["Reply-To"] == REPLY_TO
    assert msg["To"] == "Board <board@shop.example>, ceo@shop.example"
    assert msg["Cc"] == "cfo@shop.example"
    assert msg["Bcc"] is None and b"archive@shop.example" not in raw  # bcc only in the envelope
    assert msg["Message-ID"] and msg["Date"]
    assert msg.get_content_type() == "multipart/mixed"
    alternative = next(msg.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "multipart/related"]

    # the PDF, byte for byte
    pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_filename() == "retention-report-2024-Q1.pdf"
    assert pdfs[0].get_content() == (report_dir / "report.pdf").read_bytes()

    # HTML: KPI table with changes, findings, the chart; nothing a mail client blocks or strips
    html = msg.get_body(("html",)).get_content()
    doc = json.loads((report_dir / "metrics.json").read_text())
    assert "Headline KPIs" in html and "Revenue (net)" in html and "vs Q4 2023" in html and "vs Q1 2023" in html
    assert re.search(r"[▲▼▶] [+−]\d", html)
    assert doc["findings"] and all(f.replace("&", "&amp;") in html for f in doc["findings"])
    cids = {p["Content-ID"].strip("<>"): p for p in msg.walk() if p["Content-ID"]}
    refs = set(re.findall(r'src="cid:([^"]+)"', html))
    assert refs and refs <= set(cids)
    for ref in refs:
        assert cids[ref].get_content_type() == "image/png" and cids[ref].get_content()[:4] == b"\x89PNG"
    assert "data:" not in html and "<script" not in html.lower() and "<style" not in html.lower()
    assert " class=" not in html and "javascript:" not in html.lower()
    assert "https://reports.shop.example/2024-Q1/" in html

    text = msg.get_body(("plain",)).get_content()
    assert "Revenue (net)" in text and "retention-report-2024-Q1.pdf" in text and "&amp;" not in text
    assert "https://reports.shop.example/2024-Q1/" in text and doc["findings"][0] in text


# --------------------------------------------------------------------------------------------- sending

@pytest.mark.slow
def test_sends_over_starttls_with_auth(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    assert rc == 0, cap.text
    assert len(handler.messages) == 1 and handler.connections == 1
    mail_from, rcpts, raw = handler.messages[0]
    assert mail_from == "reports@shop.example"
    assert sorted(rcpts) == sorted(EVERYONE)
    msg = parse(raw)
    assert_complete_message(msg, raw, report_dir)

    # the log: per recipient status, time and Message-ID
    log = read_log(report_dir)
    assert {a: v["status"] for a, v in log["recipients"].items()} == dict.fromkeys(EVERYONE, "sent")
    assert all(v["message_id"] == msg["Message-ID"] and v["at"] for v in log["recipients"].values())
    assert log["message_id"] == msg["Message-ID"] and log["period"] == "2024-Q1"

    # the password is nowhere: message, log, output
    assert PASSWORD.encode() not in raw
    assert PASSWORD not in (report_dir / LOG_NAME).read_text() and PASSWORD not in cap.text

    # the same command again: everybody has it already, nothing is sent
    cap2 = Captured()
    assert cap2.run(config=write_config(tmp_path, port), out=str(report_dir)) == 0
    assert len(handler.messages) == 1 and handler.connections == 1
    assert "already sent to" in cap2.text and "nothing to send" in cap2.text


@pytest.mark.slow
def test_implicit_tls_without_login(smtp_implicit_tls, report_dir, tmp_path):
    handler, port = smtp_implicit_tls
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port, security="tls", user="", bcc=[], cc=[]), out=str(report_dir))
    assert rc == 0, cap.text
    assert len(handler.messages) == 1 and len(handler.messages[0][1]) == 2


@pytest.mark.slow
def test_certificate_check_failure_is_clear_and_not_retried(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port, verify_tls=True), out=str(report_dir)) == 1
    assert "TLS certificate of 127.0.0.1" in cap.text and "self-signed" in cap.text
    assert "retrying" not in cap.text and handler.connections == 1 and handler.messages == []


# -------------------------------------------------------------------------------------------- failures

@pytest.mark.slow
def test_server_down_is_retried_with_backoff_then_reported(report_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    port = free_port()  # nothing listens here
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port, retries=2, retry_backoff_seconds=1.5), out=str(report_dir))
    assert rc == 1
    assert f"cannot connect to the SMTP server 127.0.0.1:{port}: connection refused" in cap.text
    assert "gave up after 3 attempts" in cap.text
    assert cap.text.count("retrying") == 2 and cap.waits == [1.5, 3.0]  # exponential backoff
    assert "Traceback" not in cap.text
    errors = [line for line in cap.err if line.startswith("error:")]
    assert errors and all("\n" not in line for line in errors)
    log = read_log(report_dir)
    assert len(log["attempts"]) == 3 and all(a["transient"] for a in log["attempts"])
    assert {v["status"] for v in log["recipients"].values()} == {"not sent"}


@pytest.mark.slow
def test_bad_password_is_not_retried(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", "wrong-password")
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    assert rc == 1
    assert "login refused by 127.0.0.1" in cap.text and "535" in cap.text
    assert "retrying" not in cap.text and handler.connections == 1
    assert handler.messages == []
    assert "wrong-password" not in cap.text and "wrong-password" not in (report_dir / LOG_NAME).read_text()
    assert {v["status"] for v in read_log(report_dir)["recipients"].values()} == {"not sent"}


@pytest.mark.slow
def test_transient_4xx_is_retried_and_delivered_once(cert, report_dir, tmp_path, monkeypatch):
    handler = Recorder(data_replies=["451 4.3.0 temporary local problem, try later"])
    rc, cap = send_via(cert, handler, tmp_path, report_dir, monkeypatch)
    assert rc == 0, cap.text
    assert "451" in cap.text and cap.text.count("retrying") == 1
    assert handler.data_commands == 2 and len(handler.messages) == 1
    assert sorted(handler.messages[0][1]) == sorted(EVERYONE)
    log = read_log(report_dir)
    assert len(log["attempts"]) == 2 and set(log["recipients"]) == set(EVERYONE)


@pytest.mark.slow
def test_permanent_5xx_is_not_retried(cert, report_dir, tmp_path, monkeypatch):
    handler = Recorder(data_replies=["554 5.7.1 message rejected as spam"])
    rc, cap = send_via(cert, handler, tmp_path, report_dir, monkeypatch)
    assert rc == 1
    assert "554 5.7.1 message rejected as spam" in cap.text and "retrying" not in cap.text
    assert handler.data_commands == 1 and handler.messages == []
    assert {v["status"] for v in read_log(report_dir)["recipients"].values()} == {"not sent"}


@pytest.mark.slow
def test_a_deferred_recipient_is_retried_alone_with_the_same_message(cert, report_dir, tmp_path, monkeypatch):
    handler = Recorder(defer_once=["cfo@shop.example"])
    rc, cap = send_via(cert, handler, tmp_path, report_dir, monkeypatch)
    assert rc == 0, cap.text
    assert "deferred cfo@shop.example" in cap.text
    assert [sorted(m[1]) for m in handler.messages] == [
        sorted(a for a in EVERYONE if a != "cfo@shop.example"), ["cfo@shop.example"]]
    ids = {parse(m[2])["Message-ID"] for m in handler.messages}
    assert len(ids) == 1  # one message, delivered in two transactions
    assert {v["status"] for v in read_log(report_dir)["recipients"].values()} == {"sent"}


@pytest.mark.slow
def test_missing_password_is_a_clear_error(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.chdir(tmp_path)  # no .env here
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    assert rc == 1 and "RETENTION_REPORT_SMTP_PASSWORD" in cap.text and ".env" in cap.text
    assert handler.connections == 0


@pytest.mark.slow
def test_password_from_dotenv(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"# local secrets\nOTHER=1\nexport RETENTION_REPORT_SMTP_PASSWORD='{PASSWORD}'\n")
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), out=str(report_dir)) == 0, cap.text
    assert len(handler.messages) == 1
    assert PASSWORD not in cap.text and PASSWORD not in (report_dir / LOG_NAME).read_text()


@pytest.mark.slow
def test_one_refused_recipient_and_a_retry_sends_no_duplicates(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cfg = write_config(tmp_path, port, to=TO + ["nobody@shop.example"])
    cap = Captured()
    assert cap.run(config=cfg, out=str(report_dir)) == 1
    assert "not sent to nobody@shop.example: recipient refused by 127.0.0.1" in cap.text and "550" in cap.text
    assert "retrying" not in cap.text  # 550 is permanent
    assert len(handler.messages) == 1 and "nobody@shop.example" not in handler.messages[0][1]
    first_id = parse(handler.messages[0][2])["Message-ID"]
    log = read_log(report_dir)
    assert log["recipients"]["nobody@shop.example"]["status"] == "refused"
    assert "550" in log["recipients"]["nobody@shop.example"]["error"]
    assert log["recipients"]["board@shop.example"]["status"] == "sent"
    assert "email-log.json" in cap.text

    # the same command again: only the refused address is tried; nobody gets a second copy
    cap2 = Captured()
    assert cap2.run(config=cfg, out=str(report_dir)) == 1
    assert "already sent to board@shop.example, ceo@shop.example, cfo@shop.example, archive@shop.example" in cap2.text
    assert len(handler.messages) == 1  # the only new RCPT was refused again, no DATA

    # the mailbox exists now: it gets the same message (same Message-ID), and only it
    handler.refuse.clear()
    cap3 = Captured()
    assert cap3.run(config=cfg, out=str(report_dir)) == 0, cap3.text
    assert len(handler.messages) == 2 and handler.messages[1][1] == ["nobody@shop.example"]
    assert parse(handler.messages[1][2])["Message-ID"] == first_id
    assert read_log(report_dir)["recipients"]["nobody@shop.example"]["status"] == "sent"

    # the address removed from the config: nothing left to send
    cap4 = Captured()
    assert cap4.run(config=write_config(tmp_path, port), out=str(report_dir)) == 0
    assert len(handler.messages) == 2


@pytest.mark.slow
def test_a_re_rendered_report_is_a_new_message(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cfg = write_config(tmp_path, port, cc=[], bcc=[])
    assert Captured().run(config=cfg, out=str(report_dir)) == 0
    with (report_dir / "report.pdf").open("ab") as f:  # a new rendering of the report
        f.write(b"\n% re-rendered\n")
    assert Captured().run(config=cfg, out=str(report_dir)) == 0
    assert len(handler.messages) == 2
    log = read_log(report_dir)
    assert len(log["earlier"]) == 1 and log["earlier"][0]["message_key"] != log["message_key"]


@pytest.mark.slow
def test_attachment_over_the_limit_sends_nothing(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port, max_attachment_mb=0.001), out=str(report_dir)) == 1
    assert "exceed email.max_attachment_mb = 0.001 MB" in cap.text and "retention-report-2024-Q1.pdf" in cap.text
    assert "nothing was sent" in cap.text
    assert handler.connections == 0 and handler.messages == []


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["not-an-address", "a@b", "two@@shop.example", "a@shop.example\r\nBcc: x@evil.example",
                                 "a@shop.example\nSubject: hi", "a@shop.example, b@", "",
                                 "Evil <a@shop.example>\r\n", "a@-shop.example", "a b@shop.example"])
def test_invalid_addresses_are_rejected_before_connecting(smtp_starttls, report_dir, tmp_path, bad):
    handler, port = smtp_starttls
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), to=[bad], out=str(report_dir)) == 1
    assert "recipient (to)" in cap.text
    if bad.strip():
        assert repr(bad) in cap.text  # the error names the address
    assert handler.connections == 0
    assert not (report_dir / LOG_NAME).exists()


@pytest.mark.slow
def test_several_addresses_in_one_to_option(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    to = ['"Doe, Jane" <jane@shop.example>, max@shop.example', "eva@shop.example"]
    assert cap.run(config=write_config(tmp_path, port, cc=[], bcc=[]), to=to, out=str(report_dir)) == 0, cap.text
    assert sorted(handler.messages[0][1]) == ["eva@shop.example", "jane@shop.example", "max@shop.example"]
    assert parse(handler.messages[0][2])["To"] == '"Doe, Jane" <jane@shop.example>, max@shop.example, eva@shop.example'


@pytest.mark.slow
def test_invalid_cc_in_the_config_is_rejected_before_connecting(smtp_starttls, report_dir, tmp_path):
    handler, port = smtp_starttls
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port, cc=["cfo at shop"]), out=str(report_dir)) == 1
    assert "recipient (cc)" in cap.text and "'cfo at shop'" in cap.text
    assert handler.connections == 0


@pytest.mark.parametrize("good", ["a@shop.example", "Jane Doe <jane.doe+reports@mail.shop.example>",
                                  "o'neil@shop.co.uk", '"Doe, Jane" <jane@shop.example>'])
def test_valid_addresses(good):
    assert validate_address(good)


@pytest.mark.slow
def test_invalid_sender(report_dir, tmp_path):
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, 1, sender="reports at shop"), out=str(report_dir)) == 1
    assert "sender (email.sender)" in cap.text


def test_missing_sender_and_password_fail_before_rendering(tmp_path, monkeypatch):
    """Checked before a missing report is rendered (which takes a while), not after."""
    monkeypatch.chdir(tmp_path)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, 1, sender=""), out=str(tmp_path / "r")) == 1
    assert "email.sender is not set" in cap.text and "rendering" not in cap.text
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, 1), out=str(tmp_path / "r")) == 1
    assert "RETENTION_REPORT_SMTP_PASSWORD" in cap.text and "rendering" not in cap.text
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_title_with_a_line_break_is_refused(report_dir, tmp_path):
    cfg = Path(write_config(tmp_path, 1))
    cfg.write_text(cfg.read_text().replace("[report]\n", '[report]\ntitle = "Sales\\r\\nBcc: x@evil.example"\n'))
    cap = Captured()
    assert cap.run(config=str(cfg), dry_run=True, out=str(report_dir)) == 1
    assert "report.title" in cap.text and "line break" in cap.text


@pytest.mark.slow
def test_no_recipients(report_dir, tmp_path):
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, 1, to=[], cc=[], bcc=[]), out=str(report_dir)) == 1
    assert "no recipients" in cap.text and "--to" in cap.text


# --------------------------------------------------------------------------------------------- dry run

@pytest.mark.slow
def test_dry_run_writes_the_complete_message_and_sends_nothing(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"RETENTION_REPORT_SMTP_PASSWORD={PASSWORD}\n")
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port, attach_html=True), dry_run=True, out=str(report_dir)) == 0
    assert handler.connections == 0 and "nothing was sent" in cap.text
    raw = (report_dir / EML_NAME).read_bytes()
    assert b"\r\n" in raw and all(len(line) <= 998 for line in raw.split(b"\r\n"))  # RFC 5322 line limit
    msg = parse(raw)
    assert_complete_message(msg, raw, report_dir)
    names = sorted(p.get_filename() for p in msg.iter_attachments())
    assert names == ["retention-report-2024-Q1.html", "retention-report-2024-Q1.pdf"]
    html_att = next(p for p in msg.iter_attachments() if p.get_filename().endswith(".html"))
    assert html_att.get_content() == (report_dir / "report.html").read_text()
    assert PASSWORD.encode() not in raw and PASSWORD not in cap.text
    assert not (report_dir / LOG_NAME).exists()


def test_missing_report_fails_clearly_when_told_not_to_render(tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, 1), out=str(tmp_path / "none"), render_missing=False)
    assert rc == 1 and "no rendered report for 2024-Q1" in cap.text
    assert not (tmp_path / "none").exists()


def test_bad_period_and_config_exit_2(tmp_path):
    cap = Captured()
    assert email_command(period="2024-Q5", say=cap.out.append, err=cap.err.append) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[email]\nsecurity = 'ssl'\n")
    assert cap.run(config=str(bad)) == 2 and "email.security" in cap.text


# ------------------------------------------------------------------------------------ command line

@pytest.mark.slow
def test_command_line_dry_run_and_errors(report_dir, tmp_path):
    cfg = write_config(tmp_path, 1)
    r = subprocess.run([str(CLI), "email", "--period", "2024-Q1", "--config", cfg, "--out", str(report_dir),
                        "--dry-run", "--to", "Manager <manager@shop.example>"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    msg = parse((report_dir / EML_NAME).read_bytes())
    assert msg["To"] == "Manager <manager@shop.example>" and msg["Cc"] == "cfo@shop.example"

    r = subprocess.run([str(CLI), "email", "--period", "2024-Q1", "--config", cfg, "--out", str(report_dir),
                        "--to", "manager@shop.example\nBcc: x@evil.example"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.startswith("error: invalid recipient (to)") and "Traceback" not in r.stderr

    r = subprocess.run([str(CLI), "email", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "password" not in r.stdout.lower()  # no way to pass a secret as a flag


def test_read_password_prefers_the_environment(tmp_path, monkeypatch):
    from retention_report.config import EmailSettings

    (tmp_path / ".env").write_text('SMTP_PW="from-file"\n')
    s = EmailSettings(password_env="SMTP_PW")
    assert read_password(s, tmp_path / ".env") == "from-file"
    monkeypatch.setenv("SMTP_PW", "from-env")
    assert read_password(s, tmp_path / ".env") == "from-env"
    assert read_password(EmailSettings(password_env="NOT_THERE"), tmp_path / ".env") is None
    with pytest.raises(MailError):
        validate_address("x\ny@shop.example")


def test_the_password_cannot_come_from_the_config(tmp_path):
    from retention_report.config import ConfigError, load_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('[email]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(cfg)


# ------------------------------------------------------------------------------------------- slow

@pytest.mark.slow
def test_a_missing_report_is_rendered_first(smtp_starttls, sample_parquet, tmp_path, monkeypatch):
    """End to end: no report yet → the whole pipeline renders it, then the real PDF is sent."""
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cfg = Path(write_config(tmp_path, port))  # its [source] is sample_parquet
    out = tmp_path / "reports" / "2024-Q1"
    cap = Captured()
    assert cap.run(config=str(cfg), out=str(out)) == 0, cap.text
    assert "rendering it first" in cap.text
    assert (out / "report.pdf").is_file() and (out / "report.html").is_file()
    assert len(handler.messages) == 1
    raw = handler.messages[0][2]
    assert_complete_message(parse(raw), raw, out)
    assert PASSWORD not in json.dumps([p.read_text() for p in (out / "notebooks").glob("*.ipynb")])


# ----------------------------------------------------------- the report matches the config and data

@pytest.mark.slow
def test_a_report_rendered_from_another_source_or_config_is_not_sent(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cfg = tmp_path / "german.toml"
    german = tmp_path / "de.csv"
    german.write_text("customer_id,paid_at,amount\na,2024-01-10,10\n")
    cfg.write_text(Path(write_config(tmp_path, port)).read_text().replace("[report]\n", '[report]\ntitle = "Umsatz & Kundenbindung"\ncurrency = "CHF"\n')
                   .replace(f"path = {json.dumps(SOURCE['path'])}", f"path = {json.dumps(str(german))}"))
    cap = Captured()
    assert cap.run(config=str(cfg), out=str(report_dir)) == 1
    assert "another source or settings" in cap.text and "--force" in cap.text
    assert "report.title: 'Sales & customer retention' in the report, 'Umsatz & Kundenbindung' now" in cap.text
    assert "source.path" in cap.text and "report.currency" in cap.text
    assert handler.connections == 0 and not (report_dir / LOG_NAME).exists()
    assert len([line for line in cap.err if line.startswith("error:")]) == 1
    # the same with a different --data (the config's source is overridden)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), data=str(german), out=str(report_dir)) == 1
    assert "source.path" in cap.text and handler.connections == 0
    # --force sends it anyway, saying so
    cap = Captured()
    assert cap.run(config=str(cfg), out=str(report_dir), force=True) == 0, cap.text
    assert "warning (--force)" in cap.text and len(handler.messages) == 1


@pytest.mark.slow
def test_email_settings_do_not_count_as_a_different_report(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cfg = Path(write_config(tmp_path, port, to=["other@shop.example"], cc=[], bcc=[], attach_html=True))
    cfg.write_text(cfg.read_text() + '\n[engine]\nthreads = 1\n')
    cap = Captured()
    assert cap.run(config=str(cfg), out=str(report_dir)) == 0, cap.text
    assert len(handler.messages) == 1


@pytest.mark.slow
def test_a_report_without_a_record_of_its_settings_is_refused(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    (report_dir / MARKER).unlink()  # rendered by an older version
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), out=str(report_dir)) == 1
    assert "does not record which source and settings" in cap.text and "--force" in cap.text
    assert "make report PERIOD=2024-Q1" in cap.text
    assert handler.connections == 0
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), out=str(report_dir), force=True) == 0, cap.text


@pytest.mark.slow
def test_metrics_recomputed_with_other_settings_after_rendering_is_refused(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    other = resolve_settings(None, SOURCE["path"], **{"metrics.activity_window_days": 180})
    update_marker(report_dir, "2024-Q1", metrics=content_record(other))  # what `metrics --out` records
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), out=str(report_dir)) == 1
    assert "metrics.json" in cap.text and "metrics.activity_window_days: 365 in the report, 180 now" not in cap.text
    assert "metrics.activity_window_days: 180 in the report, 365 now" in cap.text
    assert handler.connections == 0


@pytest.mark.slow
def test_command_line_has_data_and_force(report_dir, tmp_path):
    r = subprocess.run([str(CLI), "email", "--help"], capture_output=True, text=True, timeout=120)
    assert "--force" in r.stdout and "--data" in r.stdout
    cfg = write_config(tmp_path, 1)
    r = subprocess.run([str(CLI), "email", "--period", "2024-Q1", "--config", cfg, "--out", str(report_dir),
                        "--dry-run", "--data", str(tmp_path / "another.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: the report in") and "Traceback" not in r.stderr
    assert not (report_dir / EML_NAME).exists()


# ------------------------------------------------- the data changed at the same path (issue 21 item 7)

CSV_Q1 = "customer_id,paid_at,amount\na,2024-01-10 10:00:00,100\nb,2024-02-01 09:00:00,200\n"
CSV_Q1_EDITED = CSV_Q1.replace(",100\n", ",900\n")  # same size; the mtime is put back below


def _rendered_from_csv(tmp_path) -> tuple[Path, Path]:
    """A report folder made from a CSV file, recording the content of the data as `run` does."""
    from weasyprint import HTML

    from retention_report.outputs import data_fingerprint

    csv = tmp_path / "payments.csv"
    csv.write_text(CSV_Q1)
    d = tmp_path / "reports" / "2024-Q1"
    r = subprocess.run([str(CLI), "metrics", "--period", "2024-Q1", "--data", str(csv), "--out", str(d)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    HTML(string="<h1>Report</h1>").write_pdf(d / "report.pdf")
    (d / "report.html").write_text("<!DOCTYPE html><title>report</title><h1>Report</h1>")
    settings = resolve_settings(None, str(csv))
    update_marker(d, "2024-Q1", report={**content_record(settings), "data": data_fingerprint(settings)})
    assert json.loads((d / "metrics.json").read_text())["kpis"]["gross_revenue"] == 300
    return csv, d


def _edit_keeping_size_and_mtime(csv: Path) -> None:
    import os

    st = csv.stat()
    csv.write_text(CSV_Q1_EDITED)
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert csv.stat().st_size == st.st_size and csv.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.slow
def test_changed_data_at_the_same_path_is_not_mailed(smtp_starttls, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    csv, d = _rendered_from_csv(tmp_path)
    SOURCE["path"] = str(csv)
    cfg = write_config(tmp_path, port)
    # unchanged data: sent
    cap = Captured()
    assert cap.run(config=cfg, out=str(d), render_missing=False) == 0, cap.text
    assert len(handler.messages) == 1
    # the file changed (same path, size and modification time): refused with --no-render
    _edit_keeping_size_and_mtime(csv)
    cap = Captured()
    assert cap.run(config=cfg, out=str(d), render_missing=False) == 1
    assert "changed since the report" in cap.text and "--force" in cap.text
    assert len(handler.messages) == 1 and len([e for e in cap.err if e.startswith("error:")]) == 1
    # --force sends the old report, saying so
    cap = Captured()
    assert cap.run(config=cfg, out=str(d), render_missing=False, force=True) == 0, cap.text
    assert "warning (--force)" in cap.text and "changed since" in cap.text


@pytest.mark.slow
def test_changed_data_is_rendered_again_before_mailing(smtp_starttls, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    csv, d = _rendered_from_csv(tmp_path)
    SOURCE["path"] = str(csv)
    _edit_keeping_size_and_mtime(csv)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), out=str(d)) == 0, cap.text
    assert "rendering it again" in cap.text
    assert json.loads((d / "metrics.json").read_text())["kpis"]["gross_revenue"] == 900 + 200
    assert len(handler.messages) == 1
    html = parse(handler.messages[0][2]).get_body(("html",)).get_content()
    assert "1,100" in html or "1 100" in html or "1.100" in html, html[:2000]


# ------------------------------------------------------ no answer after DATA, plain SMTP, 452 (item 7)

class SilentAfterData(Recorder):
    """Receives the whole message, then never answers it (until the test releases it): the client's
    timeout fires with the message on the server."""

    def __init__(self):
        super().__init__()
        import threading

        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.data_commands += 1
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        while not self.release.is_set():  # the test sets it once the client has given up
            await asyncio.sleep(0.05)
        return "250 late"


class DropsAfterData(Recorder):
    """Receives the whole message, then drops the connection instead of answering."""

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        server.transport.close()
        return "250 never seen"


def _run_against(cert, handler, tmp_path, report_dir, **kw):
    ctl, port = start_starttls_server(cert, handler)
    try:
        cap = Captured()
        rc = cap.run(config=write_config(tmp_path, port, timeout_seconds=1.0), out=str(report_dir), **kw)
    finally:
        if hasattr(handler, "release"):
            handler.release.set()
        ctl.stop()  # waits for the server thread (aiosmtpd's own deadline)
    return rc, cap


@pytest.mark.slow
@pytest.mark.parametrize("server", [SilentAfterData, DropsAfterData])
def test_no_answer_after_data_is_never_resent_automatically(server, cert, report_dir, tmp_path, monkeypatch):
    from retention_report.mail import UNKNOWN

    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    handler = server()
    rc, cap = _run_against(cert, handler, tmp_path, report_dir)
    assert rc == 1
    assert handler.data_commands == 1 and "retrying" not in cap.text  # sent once, not again
    errors = [e for e in cap.err if e.startswith("error:")]
    assert errors and all(UNKNOWN in e for e in errors if "delivery to" in e) and len(errors) == len(EVERYONE)
    log = read_log(report_dir)
    assert {v["status"] for v in log["recipients"].values()} == {UNKNOWN}
    # the next (scheduled) run does not send it again either
    again = server()
    rc, cap = _run_against(cert, again, tmp_path, report_dir)
    assert rc == 1 and again.data_commands == 0 and again.connections == 0
    assert "--resend-unknown" in cap.text and UNKNOWN in cap.text
    # once checked, --resend-unknown sends it
    ok = Recorder()
    rc, cap = _run_against(cert, ok, tmp_path, report_dir, resend_unknown=True)
    assert rc == 0, cap.text
    assert len(ok.messages) == 1 and sorted(ok.messages[0][1]) == sorted(EVERYONE)
    assert {v["status"] for v in read_log(report_dir)["recipients"].values()} == {"sent"}


@pytest.mark.slow
@pytest.mark.parametrize("host", ["mail.shop.example", "10.0.0.5", "2001:db8::1"])
def test_plain_smtp_with_a_password_only_to_this_machine(host, report_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    cfg = write_config(tmp_path, 2525, security="none", smtp_host=host)
    assert cap.run(config=cfg, out=str(report_dir)) == 2
    assert "email.security" in cap.text and "email.smtp_host" in cap.text and host in cap.text
    assert len(cap.err) == 1 and not (report_dir / LOG_NAME).exists()
    r = subprocess.run([str(CLI), "email", "--period", "2024-Q1", "--config", cfg, "--out", str(report_dir)],
                       capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                           "RETENTION_REPORT_SMTP_PASSWORD": PASSWORD})
    assert r.returncode == 2 and "email.security" in r.stderr and "Traceback" not in r.stderr


def test_plain_smtp_to_this_machine_is_allowed():
    from retention_report.config import EmailSettings
    from retention_report.mail import check_security

    for host in ("localhost", "127.0.0.1", "::1", "[::1]", "127.0.0.2", "LOCALHOST."):
        check_security(EmailSettings(security="none", user="u", smtp_host=host))
    check_security(EmailSettings(security="none", smtp_host="relay.internal"))  # no login: no password


class RecipientLimit(Recorder):
    """A server that takes at most ``limit`` recipients per transaction (452 for the rest)."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= self.limit:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.mark.slow
def test_too_many_recipients_are_sent_in_batches(cert, report_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    many = [f"manager{i}@shop.example" for i in range(9)]
    handler = RecipientLimit(2)
    ctl, port = start_starttls_server(cert, handler)
    try:
        cap = Captured()
        rc = cap.run(config=write_config(tmp_path, port, to=many, cc=[], bcc=[], retries=1), out=str(report_dir))
    finally:
        ctl.stop()
    assert rc == 0, cap.text
    assert [len(m[1]) for m in handler.messages] == [2, 2, 2, 2, 1]  # 9 recipients, 2 per message
    assert sorted(a for m in handler.messages for a in m[1]) == sorted(many)  # each exactly once
    assert cap.waits == [] and "2 recipient(s) per message" in cap.text  # a limit, not a failure
    assert len({parse(m[2])["Message-ID"] for m in handler.messages}) == 1
    assert {v["status"] for v in read_log(report_dir)["recipients"].values()} == {"sent"}


@pytest.mark.slow
@pytest.mark.parametrize("attach_html", [False, True])
def test_without_report_url_the_mail_says_attached_and_shows_no_local_path(report_dir, tmp_path, attach_html):
    """Issue 22: without [report] report_url the mail ended with "HTML version: /home/…/report.html",
    a path on the machine that rendered it. Now it says what is attached, never a local path."""
    from retention_report.config import load_settings
    from retention_report.mail.compose import build_message
    from retention_report.periods import parse_period

    settings = load_settings(None, **{"email.sender": SENDER, "email.to": TO, "email.attach_html": attach_html})
    assert settings.report.report_url in (None, "")
    msg = build_message(report_dir, settings, parse_period("2024-Q1"))
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert str(report_dir) not in part and str(report_dir.resolve()) not in part
        assert "report.html" not in part and "HTML version:" not in part and "/home/" not in part
        assert "attached as" in part and "retention-report-2024-Q1.pdf" in part
        assert ("retention-report-2024-Q1.html" in part) == attach_html


@pytest.mark.slow  # the report_dir fixture renders a report folder with the CLI (a process)
def test_a_mail_or_archive_in_another_language_leaves_the_callers_language_and_findings_alone(report_dir, tmp_path):
    """Issue 23: the reader's language was process-wide, set as a side effect by the email, the
    archive and the report context, so metrics.json's findings came out in whatever language the
    process had set last. Each now speaks its own language for its own text only (i18n.using)."""
    from retention_report.archive import write_index
    from retention_report.context import ReportContext
    from retention_report.i18n import get_language
    from retention_report.mail.compose import build_message
    from retention_report.periods import parse_period

    cyrillic = re.compile("[а-яё]", re.IGNORECASE)
    settings = resolve_settings(None, SOURCE["path"])  # what the `rendered` report was made from
    assert settings.report.language == "en"
    ctx = ReportContext(parse_period("2024-Q1"), settings)  # its metrics.json not computed yet
    russian = settings.with_overrides(**{"report.language": "ru", "email.sender": SENDER, "email.to": TO})
    msg = build_message(report_dir, russian, parse_period("2024-Q1"))
    assert cyrillic.search(msg.get_body(("plain",)).get_content()), "the mail is in Russian"
    assert get_language() == "en"
    page = write_index(report_dir.parent, russian).read_text(encoding="utf-8")
    assert '<html lang="ru">' in page
    assert get_language() == "en"
    found = ctx.doc["findings"]
    assert found and not cyrillic.search(" ".join(found))
    assert found == json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))["findings"]
    russian_findings = ReportContext(parse_period("2024-Q1"), russian, dataset=ctx.ds).doc["findings"]
    assert cyrillic.search(" ".join(russian_findings)), "the configured language, whatever the caller's"
    assert get_language() == "en"
