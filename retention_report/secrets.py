"""Secrets (database and SMTP passwords): only from the environment or a git-ignored ``.env``.

They are never read from the config file, the command line or notebook parameters (papermill writes
parameters into the executed notebooks). This module is also the one place that keeps them out of
what the tool shows and writes:

* :func:`redact` — any text (a source URL or path, a progress or error line) with every secret in
  it replaced by ``***``: the password of ``scheme://user:password@host``, secret-looking query
  parameters and DSN ``key=value`` pairs (``password=``, ``pwd=``, ``token=``, ``api_key=``,
  ``secret=`` …), and any value :func:`read_secret` has handed out in this process;
* :func:`inline_secret` — what secret a source URL or path carries itself (refused before any data
  are read: the password belongs in ``source.password_env``);
* :func:`kernel_environment` — the environment for notebook kernels, without the configured password
  variables nor any other secret-looking one (a section printing ``os.environ`` shows no password).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["inline_secret", "kernel_environment", "read_secret", "redact", "secret_name"]

MASK = "***"
# the words of a name (a query parameter, DSN key, environment variable) that make it a secret's:
# "password", "db_password", "PGPASSWORD", "motherduck_token", "api-key", "AccountKey", "sig" …
_SECRET_WORDS = {"pass", "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey",
                 "accountkey", "sharedaccesskey", "sig", "signature"}
_SECRET_PARTS = ("password", "passwd", "secret", "token")  # inside a word: PGPASSWORD, authtoken
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("account", "key"),
                 ("secret", "key"), ("client", "secret")}
_NOT_SECRET_ENV = {"PWD", "OLDPWD"}  # the working directories, not an ODBC password
# scheme://user:password@host — the password runs to the last "@" before the query (it may itself
# hold an unescaped "@" or "/")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/?#@]*):[^\s?#]*@")
# key=value in a query string, a DSN ("host=h password='a b'"), a JDBC/ODBC string ("...;PWD=x;")
# or a dict repr ('password': 'x'); the key decides (secret_name)
_PAIR = re.compile(
    r"""(?x)
    (?P<key>(?<![A-Za-z0-9_.\-])[A-Za-z][A-Za-z0-9_.\-]*)
    (?P<sep>\s*=\s*|['"]\s*:\s*)
    (?P<value>'[^']*'|"[^"]*"|[^\s&;#,)'"]*)
    """
)
_known: set[str] = set()  # secret values read in this process (read_secret)


def secret_name(name: str) -> bool:
    """Whether ``name`` (a query parameter, DSN key or environment variable) looks like it holds a
    secret: ``password``, ``PGPASSWORD``, ``pwd``, ``db_pass``, ``motherduck_token``, ``api_key`` …"""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if any(w in _SECRET_WORDS or any(p in w for p in _SECRET_PARTS) for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def _pair(m: re.Match[str]) -> str:
    key, sep, value = m.group("key"), m.group("sep"), m.group("value")
    if not value or not secret_name(key):
        return m.group(0)
    quote = value[0] if value[0] in "'\"" else ""
    return f"{key}{sep}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``***`` (see the module's docstring): the one
    redaction used wherever a source or an error is shown or written."""
    if not text:
        return text
    text = _USERINFO.sub(rf"\1:{MASK}@", str(text))
    text = _PAIR.sub(_pair, text)
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def inline_secret(text: str) -> str:
    """What secret a source URL (or URL-like path, or DSN string) carries itself, for an error
    line ('' when none): ``"a password (user:password@host)"`` or ``"the parameter 'token'"``."""
    if not text:
        return ""
    if _USERINFO.search(text):
        return "a password (user:password@host)"
    for m in _PAIR.finditer(text):
        if m.group("value") and secret_name(m.group("key")):
            return f"the parameter {m.group('key')!r}"
    return ""


def read_secret(name: str, env_file: str | os.PathLike[str] = ".env") -> str | None:
    """The value of the environment variable ``name``, else of the ``name=…`` line of ``env_file``
    (default: ``.env`` in the working directory; ``export``, quotes and comments as in a shell; no
    ``$VAR`` interpolation). The environment wins; ``None`` when neither has a non-empty value
    (an empty environment variable with nothing in ``.env`` gives ``""``). A value handed out is
    remembered and :func:`redact` masks it wherever it appears."""
    if not name:
        return None
    value = os.environ.get(name)
    if value:
        _remember(value)
        return value
    path = Path(env_file)
    if path.is_file():
        from dotenv import dotenv_values

        from_file = dotenv_values(path, interpolate=False, encoding="utf-8").get(name)
        if from_file:
            _remember(from_file)
            return from_file
    return value  # "" (set but empty) or None


def _remember(value: str) -> None:
    if len(value) >= 4:  # masking "x" everywhere would mangle every line
        _known.add(value)


def kernel_environment(names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a notebook kernel starts with: this process's (``environ``) without the
    variables ``names`` (the configured ``source.password_env`` and ``email.password_env``) and
    without any variable whose name looks secret (:func:`secret_name`)."""
    drop = {n for n in names if n}
    env = dict(os.environ if environ is None else environ)
    return {k: v for k, v in env.items() if k not in drop and (k in _NOT_SECRET_ENV or not secret_name(k))}
