"""The reader's language: message catalogs (gettext) and the current report language.

Every word a reader sees is written in English in the code and marked with :func:`_` (or
:func:`ngettext` for counts, :func:`pgettext` where one English word has two meanings); the
translations live in gettext catalogs under
``retention_report/locale/<lang>/LC_MESSAGES/retention_report.po``, compiled to ``.mo`` by Babel's
``compile_catalog`` (``pybabel compile``): in the wheel's build step (``setup.py``) and by ``make
setup``/``make catalogs`` in a checkout. A checkout whose ``.mo`` is missing or older than its
``.po`` compiles the ``.po`` in memory instead (:func:`translations`, with Babel's ``read_po`` and
``write_mo``, as compile_catalog does), so an edited catalog never silently shows English.

Conventions (README "The reader's language"; the translators' guide is the header of the .pot):

* placeholders are named: ``_("Net revenue was %(amount)s") % {"amount": ...}``, so a translation
  may reorder them; a message used with ``%`` writes a literal percent sign as ``%%``;
* module-level constants (KPI labels, leads, section titles) are marked with :func:`N_` where they
  are defined and translated with :func:`_` where they are shown: the language is set at run time,
  after the modules were imported;
* values from the data (segment values, source names) and metrics.json keys are never translated.

The current language is a :class:`contextvars.ContextVar`, never a process-wide setting: whoever
formats for a reader scopes it with :func:`using` (a report run, ``metrics``, the archive, the
email: each with its own ``[report] language``), so one job's language never leaks into the next
one's text (metrics.json's findings are in the configured language whatever was rendered before).
:func:`set_language` sets it for the rest of the current context: only a process that is one
report's — a section notebook's kernel (:func:`retention_report.context.open_report`) or an
interactive session. Numbers, money, percentages and dates follow it too
(:mod:`retention_report.formatting`, with Babel's locale data).

This module imports nothing from the package: every layer may read it.
"""

from __future__ import annotations

import gettext as _gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "LANGUAGES",
    "DOMAIN",
    "LOCALE_DIR",
    "set_language",
    "get_language",
    "using",
    "locale",
    "translations",
    "catalog_paths",
    "_",
    "ngettext",
    "pgettext",
    "N_",
    "install_gettext",
]

LANGUAGES = ("en", "ru", "de")
DOMAIN = "retention_report"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

# the reader's language of the current context (English unless a run scoped another: using())
_language: ContextVar[str] = ContextVar("retention_report_language", default="en")


def catalog_paths(language: str, locale_dir: Path | None = None) -> tuple[Path, Path]:
    """``(.po, .mo)`` of ``language``'s catalog (under :data:`LOCALE_DIR` unless ``locale_dir``)."""
    base = (locale_dir or LOCALE_DIR) / language / "LC_MESSAGES" / DOMAIN
    return base.with_suffix(".po"), base.with_suffix(".mo")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _compile_po(po: Path) -> bytes:
    """The ``.mo`` bytes of ``po`` (fuzzy entries left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=po.parent.parent.name, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


@cache
def _load(po: Path, mo: Path, po_mtime: float | None, mo_mtime: float | None) -> _gettext.NullTranslations:
    if mo_mtime is not None and (po_mtime is None or mo_mtime >= po_mtime):
        with mo.open("rb") as fh:
            return _gettext.GNUTranslations(fh)
    if po_mtime is not None:  # a checkout: no .mo yet, or the .po was edited since it was compiled
        return _gettext.GNUTranslations(io.BytesIO(_compile_po(po)))
    return _gettext.NullTranslations()


def translations(language: str | None = None) -> _gettext.NullTranslations:
    """The gettext translations of ``language`` (default: the current one): the compiled ``.mo``
    when it is at least as new as its ``.po``, else the ``.po`` compiled in memory; English (the
    msgids themselves) when there is no catalog."""
    language = language or _language.get()
    if language == "en":
        return _gettext.NullTranslations()
    po, mo = catalog_paths(language)
    return _load(po, mo, _mtime(po), _mtime(mo))


def _checked(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"unknown report language {language!r}; use one of {', '.join(LANGUAGES)}")
    return language


def set_language(language: str) -> None:
    """Make ``language`` (one of :data:`LANGUAGES`) the language of everything formatted next in the
    current context, for good: for a process that is one report's (a section notebook's kernel, an
    interactive session). Everything else scopes it with :func:`using`."""
    _language.set(_checked(language))


def get_language() -> str:
    """The current report language code (``en`` unless a run set another)."""
    return _language.get()


@contextmanager
def using(language: str) -> Iterator[str]:
    """Within the block, ``language`` is the current one (the previous one is restored after, also
    when the block raises)."""
    token = _language.set(_checked(language))
    try:
        yield language
    finally:
        _language.reset(token)


def locale(language: str | None = None) -> Any:
    """The :class:`babel.Locale` of ``language`` (default: the current one)."""
    return _babel_locale(language or _language.get())


@cache
def _babel_locale(language: str) -> Any:
    from babel import Locale

    return Locale.parse(language)


def _(message: str) -> str:
    """``message`` in the current language (the English text when it has no translation)."""
    if not message:  # gettext("") is the catalog's header
        return message
    return translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n`` in the current language."""
    return translations().ngettext(singular, plural, int(n))


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, in ``context`` (one English word, two meanings)."""
    return translations().pgettext(context, message)


def install_gettext(env: Any) -> Any:
    """Give a Jinja environment the reader's words: ``{{ _("…%(name)s", name=…) }}`` and
    ``ngettext`` in the current language (Jinja's i18n extension, new-style), before its templates
    are first loaded. Returns ``env``."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext=_, ngettext=ngettext, newstyle=True)
    return env


def N_(message: str) -> str:
    """Mark a message for extraction without translating it now (module-level constants)."""
    return message
