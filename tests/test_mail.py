"""Emailing the report, against a real SMTP server (aiosmtpd on 127.0.0.1 with STARTTLS and AUTH,
or implicit TLS) using a throwaway self-signed certificate."""

from __future__ import annotations

import email
import json
import re
import socket
import ssl
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from retention_report.mail import (
    EML_NAME,
    LOG_NAME,
    MailError,
    email_command,
    read_password,
    validate_address,
)

PASSWORD = "s3cret-Pa55-word-xyz"
USER = "reporter"
SENDER = "Reports <reports@shop.example>"
TO = ["Board <board@shop.example>", "ceo@shop.example"]
CC = ["cfo@shop.example"]
BCC = ["archive@shop.example"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


class Recorder:
    """aiosmtpd handler: keeps every accepted message, refuses chosen recipients with 550."""

    def __init__(self, refuse=()):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse = {a.lower() for a in refuse}
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_starttls(cert):
    handler = Recorder(refuse=["nobody@shop.example"])
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, tls_context=cert, require_starttls=True,
                     authenticator=authenticator, auth_required=True, auth_require_tls=True)
    ctl.start()
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
    real PDF and HTML (the full pipeline is tested elsewhere)."""
    from weasyprint import HTML

    d = tmp_path_factory.mktemp("rendered") / "2024-Q1"
    cli = Path(sys.executable).with_name("retention-report")
    r = subprocess.run([str(cli), "metrics", "--period", "2024-Q1", "--data", str(sample_parquet), "--out", str(d)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    HTML(string="<h1>Sales &amp; customer retention</h1><p>Q1 2024</p>" * 20).write_pdf(d / "report.pdf")
    (d / "report.html").write_text("<!DOCTYPE html><title>report</title><h1>Report</h1>")
    return d


@pytest.fixture
def report_dir(rendered, tmp_path) -> Path:
    import shutil

    d = tmp_path / "2024-Q1"
    shutil.copytree(rendered, d)
    return d


def write_config(tmp_path, port, **email_overrides) -> str:
    em = {"sender": SENDER, "to": TO, "cc": CC, "bcc": BCC, "smtp_host": "127.0.0.1", "smtp_port": port,
          "security": "starttls", "user": USER, "verify_tls": False, "retries": 2, "retry_backoff_seconds": 0.0,
          "timeout_seconds": 10.0}
    em.update(email_overrides)
    lines = ["[email]"] + [f"{k} = {json.dumps(v)}" for k, v in em.items()]
    lines += ["[report]", 'report_url = "https://reports.shop.example/2024-Q1/"']
    path = tmp_path / "mail.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class Captured:
    def __init__(self):
        self.out: list[str] = []
        self.err: list[str] = []

    def run(self, **kw) -> int:
        return email_command(period="2024-Q1", say=self.out.append, err=self.err.append, sleep=lambda s: None, **kw)

    @property
    def text(self) -> str:
        return "\n".join(self.out + self.err)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def test_sends_over_starttls_with_auth(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    assert rc == 0, cap.text
    assert len(handler.messages) == 1 and handler.connections >= 1  # the EHLO hook counts connections
    mail_from, rcpts, raw = handler.messages[0]
    assert mail_from == "reports@shop.example"
    assert sorted(rcpts) == sorted(["board@shop.example", "ceo@shop.example", "cfo@shop.example",
                                    "archive@shop.example"])
    msg = parse(raw)
    assert msg["Subject"] == "Sales & customer retention — Q1 2024"
    assert msg["From"] == SENDER
    assert msg["To"] == "Board <board@shop.example>, ceo@shop.example"
    assert msg["Cc"] == "cfo@shop.example"
    assert msg["Bcc"] is None and b"archive@shop.example" not in raw  # bcc only in the envelope
    assert msg.get_content_type() == "multipart/mixed"

    # the PDF, byte for byte
    pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_filename() == "retention-report-2024-Q1.pdf"
    assert pdfs[0].get_content() == (report_dir / "report.pdf").read_bytes()

    # HTML: KPI table, findings, every cid: resolves to an inline part, nothing a mail client blocks
    html = msg.get_body(("html",)).get_content()
    doc = json.loads((report_dir / "metrics.json").read_text())
    assert "Headline KPIs" in html and "Revenue (net)" in html
    assert doc["findings"] and all(f.replace("&", "&amp;") in html for f in doc["findings"])
    cids = {p["Content-ID"].strip("<>") for p in msg.walk() if p["Content-ID"]}
    refs = set(re.findall(r'src="cid:([^"]+)"', html))
    assert refs and refs <= cids
    chart = next(p for p in msg.walk() if p["Content-ID"])
    assert chart.get_content_type() == "image/png" and chart.get_content()[:4] == b"\x89PNG"
    assert "data:" not in html and "<script" not in html.lower() and "<style" not in html.lower()
    assert "https://reports.shop.example/2024-Q1/" in html

    text = msg.get_body(("plain",)).get_content()
    assert "Revenue (net)" in text and "retention-report-2024-Q1.pdf" in text and "&amp;" not in text

    # the password is nowhere: message, log, output
    log = json.loads((report_dir / LOG_NAME).read_text())
    assert PASSWORD.encode() not in raw
    assert PASSWORD not in json.dumps(log) and PASSWORD not in cap.text
    assert {a: v["status"] for a, v in log["recipients"].items()} == {
        "board@shop.example": "sent", "ceo@shop.example": "sent", "cfo@shop.example": "sent",
        "archive@shop.example": "sent"}


def test_implicit_tls_without_login(smtp_implicit_tls, report_dir, tmp_path):
    handler, port = smtp_implicit_tls
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port, security="tls", user="", bcc=[], cc=[]), out=str(report_dir))
    assert rc == 0, cap.text
    assert len(handler.messages) == 1 and len(handler.messages[0][1]) == 2


def test_server_down_is_retried_then_reported(report_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    port = free_port()  # nothing listens here
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port, retries=2), out=str(report_dir))
    assert rc == 1
    assert f"cannot connect to the SMTP server 127.0.0.1:{port}: connection refused" in cap.text
    assert cap.text.count("retrying") == 2
    log = json.loads((report_dir / LOG_NAME).read_text())
    assert len(log["attempts"]) == 3
    assert {v["status"] for v in log["recipients"].values()} == {"not sent"}
    assert "Traceback" not in cap.text


def test_bad_password_is_not_retried(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", "wrong-password")
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    assert rc == 1
    assert "login refused by 127.0.0.1" in cap.text and "535" in cap.text
    assert "retrying" not in cap.text
    assert handler.messages == []
    assert "wrong-password" not in cap.text and "wrong-password" not in (report_dir / LOG_NAME).read_text()


def test_missing_password_is_a_clear_error(smtp_starttls, report_dir, tmp_path, monkeypatch):
    _, port = smtp_starttls
    monkeypatch.chdir(tmp_path)  # no .env here
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, port), out=str(report_dir))
    assert rc == 1 and "RETENTION_REPORT_SMTP_PASSWORD" in cap.text


def test_password_from_dotenv(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"# local secrets\nexport RETENTION_REPORT_SMTP_PASSWORD='{PASSWORD}'\n")
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), out=str(report_dir)) == 0, cap.text
    assert len(handler.messages) == 1


def test_one_refused_recipient_and_a_retry_sends_no_duplicates(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cfg = write_config(tmp_path, port, to=TO + ["nobody@shop.example"])
    cap = Captured()
    assert cap.run(config=cfg, out=str(report_dir)) == 1
    assert "not sent to nobody@shop.example: 550" in cap.text
    assert len(handler.messages) == 1 and "nobody@shop.example" not in handler.messages[0][1]
    log = json.loads((report_dir / LOG_NAME).read_text())
    assert log["recipients"]["nobody@shop.example"]["status"] == "refused"
    assert log["recipients"]["board@shop.example"]["status"] == "sent"

    # the same command again: only the refused address is tried; nobody gets a second copy
    cap2 = Captured()
    assert cap2.run(config=cfg, out=str(report_dir)) == 1
    assert "already sent to" in cap2.text
    assert len(handler.messages) == 1  # the only new RCPT was refused again, no DATA

    # the address fixed in the config: nothing left to send
    cap3 = Captured()
    assert cap3.run(config=write_config(tmp_path, port), out=str(report_dir)) == 0
    assert len(handler.messages) == 1


def test_attachment_over_the_limit_sends_nothing(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port, max_attachment_mb=0.001), out=str(report_dir)) == 1
    assert "exceed email.max_attachment_mb = 0.001 MB" in cap.text and "retention-report-2024-Q1.pdf" in cap.text
    assert handler.connections == 0 and handler.messages == []


@pytest.mark.parametrize("bad", ["not-an-address", "a@b", "two@@shop.example", "a@shop.example\r\nBcc: x@evil.example",
                                 "a@shop.example, b@shop.example", ""])
def test_invalid_addresses_are_rejected_before_connecting(smtp_starttls, report_dir, tmp_path, bad):
    handler, port = smtp_starttls
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port), to=[bad], out=str(report_dir)) == 1
    assert "recipient (to)" in cap.text
    assert handler.connections == 0


@pytest.mark.parametrize("good", ["a@shop.example", "Jane Doe <jane.doe+reports@mail.shop.example>",
                                  "o'neil@shop.co.uk"])
def test_valid_addresses(good):
    assert validate_address(good)


def test_invalid_sender(report_dir, tmp_path):
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, 1, sender="reports at shop"), out=str(report_dir)) == 1
    assert "sender (email.sender)" in cap.text


def test_dry_run_writes_the_complete_message_and_sends_nothing(smtp_starttls, report_dir, tmp_path, monkeypatch):
    handler, port = smtp_starttls
    monkeypatch.setenv("RETENTION_REPORT_SMTP_PASSWORD", PASSWORD)
    cap = Captured()
    assert cap.run(config=write_config(tmp_path, port, attach_html=True), dry_run=True, out=str(report_dir)) == 0
    assert handler.connections == 0
    raw = (report_dir / EML_NAME).read_bytes()
    msg = parse(raw)
    names = sorted(p.get_filename() for p in msg.iter_attachments())
    assert names == ["retention-report-2024-Q1.html", "retention-report-2024-Q1.pdf"]
    assert msg["Subject"] == "Sales & customer retention — Q1 2024" and msg["Message-ID"]
    assert PASSWORD.encode() not in raw
    assert not (report_dir / LOG_NAME).exists()


def test_missing_report_fails_clearly_when_told_not_to_render(tmp_path):
    cap = Captured()
    rc = cap.run(config=write_config(tmp_path, 1), out=str(tmp_path / "none"), render_missing=False)
    assert rc == 1 and "no rendered report for 2024-Q1" in cap.text


def test_cli_has_no_password_option_and_reads_no_secret_from_flags():
    from typer.testing import CliRunner

    from retention_report.cli import app

    r = CliRunner().invoke(app, ["email", "--help"])
    assert r.exit_code == 0 and "password" not in r.output.lower()


def test_read_password_prefers_the_environment(tmp_path, monkeypatch):
    from retention_report.config import EmailSettings

    (tmp_path / ".env").write_text('SMTP_PW="from-file"\n')
    s = EmailSettings(password_env="SMTP_PW")
    assert read_password(s, tmp_path / ".env") == "from-file"
    monkeypatch.setenv("SMTP_PW", "from-env")
    assert read_password(s, tmp_path / ".env") == "from-env"
    with pytest.raises(MailError):
        validate_address("x\ny@shop.example")
