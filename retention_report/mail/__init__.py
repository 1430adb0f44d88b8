"""Email the rendered report to management: composing the message and delivering it.

* :mod:`~retention_report.mail.compose` — subject, headers, the HTML and plain-text bodies (KPI
  table, findings, one chart), the attachments (:func:`build_message`), ``email.eml``
  (:func:`write_eml`);
* :mod:`~retention_report.mail.deliver` — the SMTP password (:func:`read_password`,
  :func:`require_password`), the SMTP transaction with retries and deferred recipients, and
  ``email-log.json`` (:func:`send_report`);
* :mod:`~retention_report.mail.addresses` — address validation and recipients, used by both.

The ``email`` command (:mod:`~retention_report.mail.command`, called by :mod:`retention_report.cli`)
puts these together: settings, rendering a missing report, the check that the report was made from
the current source and settings, dry run or send, exit codes.
"""

from .addresses import MailError, Recipients, recipients_from, split_addresses, validate_address
from .compose import (
    CHART_CID,
    EML_NAME,
    build_message,
    chart_caption,
    chart_png,
    check_headers,
    write_eml,
)
from .deliver import (
    LOG_NAME,
    UNKNOWN,
    SendResult,
    check_security,
    message_key,
    read_password,
    require_password,
    send_report,
)

__all__ = [
    "CHART_CID",
    "EML_NAME",
    "LOG_NAME",
    "MailError",
    "Recipients",
    "SendResult",
    "UNKNOWN",
    "build_message",
    "chart_caption",
    "chart_png",
    "check_headers",
    "check_security",
    "message_key",
    "read_password",
    "recipients_from",
    "require_password",
    "send_report",
    "split_addresses",
    "validate_address",
    "write_eml",
]
