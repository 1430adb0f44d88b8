"""Mail addresses: validation (one mailbox per entry, no header injection), ``--to`` lists, and the
recipients of a message (To and Cc in the headers; Bcc only in the envelope)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formataddr, getaddresses, parseaddr

from ..config import EmailSettings

__all__ = ["MailError", "Recipients", "bare", "recipients_from", "split_addresses", "validate_address"]

# RFC 5322 "dot-atom" local part and an LDH domain with at least one dot (what real mailboxes use)
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")


class MailError(Exception):
    """A clear, one-line reason why the report was not (fully) sent."""


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


def bare(address: str) -> str:
    """``Jane <jane@shop.example>`` → ``jane@shop.example``."""
    return parseaddr(address)[1]


@dataclass(frozen=True)
class Recipients:
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)

    @property
    def envelope(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in [*self.to, *self.cc, *self.bcc]:
            seen.setdefault(bare(a).lower(), None)
        return list(seen)


def split_addresses(entries: Iterable[str]) -> list[str]:
    """``["a@x.example, Jane <j@y.example>"]`` → ``["a@x.example", "Jane <j@y.example>"]``: a
    ``--to`` value (or ``make email TO=…``) may list several addresses separated by commas. Entries
    with line breaks or that do not split cleanly are kept whole, so validation names them as given.
    """
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
