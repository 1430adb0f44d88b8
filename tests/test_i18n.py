"""The reader's language (issue 14): ``[report] language`` (en, ru, de) sets every word of the
report and the email (gettext catalogs in retention_report/locale, managed with Babel's tools:
``make catalogs``) and how numbers, money, percentages and dates are written (Babel's locale data).

Two tests here fail until the translators have filled the catalogs, on purpose: every message the
sources mark must have a non-fuzzy translation in each shipped language, and a report rendered in
Russian or German must show no English heading, table header or chart title.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from html import unescape
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import CommandLineInterface, parse_mapping_cfg
from babel.messages.pofile import read_po, write_po
from helpers import REPO

from retention_report import i18n
from retention_report.config import ConfigError, load_settings
from retention_report.formatting import (
    change,
    fmt_compact,
    fmt_count,
    fmt_date,
    fmt_money,
    fmt_month,
    fmt_number,
    fmt_pct,
    kpi_spec,
    movement_phrase,
    period_dates,
    period_title,
)
from retention_report.i18n import _, get_language, set_language, using
from retention_report.periods import parse_period

TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != "en"]
POT = i18n.LOCALE_DIR / "retention_report.pot"


# ------------------------------------------------------------------------------ 1. the catalogs

def _key(message) -> str | tuple[str, ...]:
    return message if isinstance(message, str) else tuple(message)


def _extracted() -> dict[tuple[str | None, str | tuple[str, ...]], str]:
    """Every message the sources mark, as ``make catalogs`` extracts them (babel.cfg), with where
    (``file:line``), in the order of the sources."""
    with (REPO / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[tuple[str | None, str | tuple[str, ...]], tuple[str, int]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(REPO), method_map, options_map, comment_tags=("TRANSLATORS:",)):
        found.setdefault((context, _key(message)), (filename, lineno))
    return {key: f"{f}:{n}" for key, (f, n) in sorted(found.items(), key=lambda kv: kv[1])}


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _ids(catalog: Catalog) -> set[tuple[str | None, str | tuple[str, ...]]]:
    return {(m.context, _key(m.id)) for m in catalog if m.id}


def test_the_pot_lists_exactly_the_messages_of_the_sources():
    """retention_report/locale/retention_report.pot is what the sources mark now (``make catalogs``
    after changing a word)."""
    extracted, pot = _extracted(), _ids(_read(POT))
    new = sorted(f"{where}: {key[1]!r}" for key, where in extracted.items() if key not in pot)
    gone = sorted(repr(key[1]) for key in pot - set(extracted))
    assert not new and not gone, ("the .pot is out of date: run `make catalogs`\n  not in the .pot: "
                                  + "\n    ".join(new[:30]) + "\n  no longer in the sources: " + "\n    ".join(gone[:30]))


def test_no_message_is_marked_inside_an_f_string():
    """Babel's extractor does not look inside f-strings: ``f"{_('Value')}"`` would never reach the
    catalogs and stay English. Mark the message outside and put the variable in."""
    import ast

    found = []
    for path in sorted((REPO / "retention_report").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                found += [f"{path.relative_to(REPO)}:{call.lineno}" for call in ast.walk(node)
                          if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                          and call.func.id in ("_", "N_", "ngettext", "pgettext")
                          and any(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args)]
    assert not found, "gettext calls inside f-strings (not extracted): " + ", ".join(found)


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_catalog_follows_the_pot(language):
    """pybabel update was run: a shipped catalog has the .pot's messages (and its plural forms)."""
    po, _mo = i18n.catalog_paths(language)
    catalog = _read(po, language)
    assert _ids(catalog) == _ids(_read(POT)), f"run `make catalogs` to update {po}"
    assert str(catalog.locale) == language


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_has_a_translation(language):
    """Every message the sources mark has a non-fuzzy translation in ``language`` (all plural forms),
    with the same placeholders. Fails until the translators have filled the catalog (handoff:
    README "The reader's language")."""
    po, _mo = i18n.catalog_paths(language)
    catalog = _read(po, language)
    missing = []
    for (context, msgid), where in _extracted().items():
        m = catalog.get(msgid, context=context)
        strings = () if m is None else (m.string if isinstance(m.string, tuple) else (m.string,))
        if m is None or m.fuzzy or not strings or not all(strings):
            state = "missing" if m is None else "fuzzy" if m.fuzzy else "untranslated"
            missing.append(f"{where} ({state}): {msgid!r}")
    wrong = [f"{m.id!r}: {'; '.join(map(str, errors))}" for m, errors in catalog.check() if errors]
    assert not missing and not wrong, (
        f"{po.relative_to(REPO)}: {len(missing)} message(s) without a translation, {len(wrong)} with "
        "placeholders or plural forms that do not match\n" + "\n".join([*wrong[:20], *missing[:40]]))


# ------------------------------------------------------------------- 2. the catalogs at run time

def _pseudo(tmp_path: Path, language: str, translations: dict, fuzzy: set = frozenset()) -> Path:
    # a translated catalog's header is not fuzzy (pybabel compile skips a catalog whose header is)
    catalog = Catalog(locale=language, domain=i18n.DOMAIN, fuzzy=False)
    for msgid, msgstr in translations.items():
        catalog.add(msgid, msgstr, flags=("fuzzy",) if msgid in fuzzy else ())
    po, _mo = i18n.catalog_paths(language, tmp_path)
    po.parent.mkdir(parents=True)
    with po.open("wb") as fh:
        write_po(fh, catalog)
    return po


def test_a_checkout_without_compiled_catalogs_compiles_the_po_in_memory(tmp_path, monkeypatch):
    _pseudo(tmp_path, "ru", {"Appendix": "Приложение", "Findings": "Выводы", ("%(count)s day", "%(count)s days"):
                             ("%(count)s день", "%(count)s дня", "%(count)s дней")}, fuzzy={"Findings"})
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    with using("ru"):
        assert _("Appendix") == "Приложение"
        assert _("Findings") == "Findings", "a fuzzy translation is not used"
        assert [i18n.ngettext("%(count)s day", "%(count)s days", n) % {"count": n} for n in (1, 3, 5, 21)] == \
            ["1 день", "3 дня", "5 дней", "21 день"]
        assert _("") == ""  # not the catalog's header
    assert _("Appendix") == "Appendix"


def test_a_compiled_catalog_older_than_its_po_is_not_used(tmp_path, monkeypatch):
    po = _pseudo(tmp_path, "de", {"Appendix": "Anhang"})
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    # what `make setup` runs (Babel's compile_catalog; setup.py runs the same for the wheel)
    CommandLineInterface().run(["pybabel", "--quiet", "compile", "-d", str(tmp_path), "-D", i18n.DOMAIN])
    mo = i18n.catalog_paths("de", tmp_path)[1]
    assert mo.is_file()
    with using("de"):
        assert _("Appendix") == "Anhang"
        _pseudo_again = _pseudo(tmp_path / "x", "de", {"Appendix": "Anhang (neu)"})
        po.write_bytes(_pseudo_again.read_bytes())
        os.utime(mo, (1, 1))  # the .po edited after it was compiled
        assert _("Appendix") == "Anhang (neu)"


def test_the_language_is_validated_scoped_and_set_by_a_notebooks_open_report(tmp_path):
    assert load_settings(None).report.language == "en"
    with pytest.raises(ConfigError, match=r"report\.language: .*unknown report language 'fr'; accepted: en, ru, de"):
        load_settings(None, **{"report.language": "fr"})
    with pytest.raises(ValueError, match="use one of en, ru, de"):
        set_language("fr")
    with pytest.raises(ValueError, match="use one of en, ru, de"), using("fr"):
        pass
    with pytest.raises(RuntimeError), using("ru"):  # restored also when the block raises
        assert get_language() == "ru"
        raise RuntimeError
    assert get_language() == "en"
    from retention_report.context import ReportContext, open_report

    # a report context leaves the caller's language alone (it scopes its own: metrics.json's findings)
    ReportContext(parse_period("2024-Q1"), load_settings(None, **{"report.language": "de"}))
    assert get_language() == "en"
    # a notebook's kernel is one report's: open_report sets its language for good, before anything
    # is formatted (no data opened yet)
    config = tmp_path / "de.toml"
    config.write_text('[report]\nlanguage = "de"\n', encoding="utf-8")
    open_report("2024-Q1", config_path=str(config))
    assert get_language() == "de"


def test_headings_are_shown_in_the_readers_language(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    _pseudo(tmp_path, "ru", {"Cohort retention": "Удержание когорт",
                             "Retention by first-purchase %(segment)s": "Удержание по %(segment)s первой покупки"})
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    from retention_report import heading

    with using("ru"):
        heading("cohorts")
        heading("cohorts.segment_retention", segment="<b>" + "x" * 60)
    assert shown[0] == {"text/html": "<h2>Удержание когорт</h2>", "text/plain": "Удержание когорт"}
    assert shown[1]["text/html"].startswith("<h3>Удержание по &lt;b&gt;xxx") and "…" in shown[1]["text/html"]
    with pytest.raises(KeyError, match="no heading 'nope'"):
        heading("nope")


@pytest.mark.slow
def test_the_templates_speak_the_readers_language(tmp_path, monkeypatch):
    """The report page and the email: ``<html lang>`` and their words through gettext."""
    import nbformat

    from retention_report.mail.compose import _jinja
    from retention_report.render import render_html

    _pseudo(tmp_path, "ru", {"Compared with": "Сравнение с", "Headline KPIs": "Главные показатели",
                             "Contents": "Содержание", "vs %(period)s": "к %(period)s"})
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    report = dict.fromkeys(["title", "period_title", "date_range", "source", "previous_title", "year_ago_title",
                            "generated_at", "incomplete_text", "kicker", "version"], "x") | {"complete": True}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Heading")])
    with using("ru"):
        html = render_html(nb, report | {"lang": "ru"})
        assert '<html lang="ru">' in html and "Сравнение с" in html and ">Содержание</p>" in html
        page = _jinja().get_template("body.html.j2").render(
            title="T & co", period_title="1-й кв. 2024", date_range="d", lang="ru", complete=True, rows=[],
            previous_label="<Q4>", year_ago_label="Q1", findings=[], where="https://x.example/", where_is_url=True,
            chart_cid="c", chart_caption="c", pdf_name="r.pdf", source="", unobservable="")
    assert '<html lang="ru">' in page and "Главные показатели" in page and "к &lt;Q4&gt;" in page
    assert '<a href="https://x.example/"' in page and "<b>r.pdf</b>" in page  # markup of the template, kept
    assert '<html lang="en">' in render_html(nb, report)


# ---------------------------------------------------------------------- 3. numbers and dates

NBSP, NNBSP, THIN = "\u00a0", "\u202f", "\u2009"


def _cldr_dash(language: str) -> str:
    """The dash (with its spaces) between the two days of a date range in ``language``, read from
    the locked Babel's CLDR interval pattern (yMMMd, months differ). The project's rule for other
    languages than English is CLDR's pattern: Babel 2.19 (CLDR 47) changed Russian from ' – ' to
    ' — ', which is then a reviewed upgrade of requirements/*.lock, not a red CI (issue 25)."""
    from babel import Locale

    first = Locale.parse(language).interval_formats["yMMMd"]["M"][0]
    dash = re.search(r"[\s\u2009\u202f]*[–—-][\s\u2009\u202f]*$", first)
    assert dash, f"no dash at the end of CLDR's {language} interval pattern {first!r}"
    return dash.group(0)


@pytest.mark.parametrize("language, call, expected", [
    # English as the report always wrote it
    ("en", lambda: fmt_money(26710.0), "€26,710"),
    ("en", lambda: fmt_money(45.6), "€45.60"),
    ("en", lambda: fmt_money(-1234.0, "CHF"), "−1,234 CHF"),
    ("en", lambda: fmt_money(3026360, "RUB", 2), "₽3,026,360.00"),
    ("en", lambda: fmt_money(2.675), "€2.67"),  # rounded as Python rounds (the float is 2.67499…)
    ("en", lambda: fmt_pct(0.1234), "12.3%"),
    ("en", lambda: fmt_pct(-0.00001), "−0.0%"),
    ("en", lambda: fmt_count(12345.4), "12,345"),
    ("en", lambda: fmt_number(-1234.567), "−1,234.57"),
    ("en", lambda: fmt_date(date(2024, 3, 1)), "1 Mar 2024"),
    ("en", lambda: fmt_month(date(2024, 3, 1)), "Mar 2024"),
    ("en", lambda: period_title(parse_period("2024-03")), "March 2024"),
    ("en", lambda: period_dates(parse_period("2024-Q1")), "1 Jan 2024 – 31 Mar 2024"),
    ("en", lambda: change("revenue", 110, 100).text, "▲ +10.0%"),
    ("en", lambda: change("crr", 0.5, 0.488).text, "▲ +1.2 pp"),
    ("en", lambda: movement_phrase(1234.5, 100.0, "Q4 2023"), "up 1134.5% on Q4 2023"),
    # Russian: no-break spaces between thousands and before ₽ and %, decimal comma
    ("ru", lambda: fmt_money(3026360, "RUB", 2), f"3{NBSP}026{NBSP}360,00{NBSP}₽"),
    ("ru", lambda: fmt_money(3026360, "RUB"), f"3{NBSP}026{NBSP}360{NBSP}₽"),
    ("ru", lambda: fmt_money(45.6, "EUR"), f"45,60{NBSP}€"),
    ("ru", lambda: fmt_money(-1234.0, "EUR"), f"−1{NBSP}234{NBSP}€"),
    ("ru", lambda: fmt_pct(0.1234), f"12,3{NBSP}%"),
    ("ru", lambda: fmt_count(12345), f"12{NBSP}345"),
    ("ru", lambda: fmt_number(1234.567), f"1{NBSP}234,57"),
    ("ru", lambda: fmt_date(date(2024, 3, 1)), f"1 мар. 2024{NNBSP}г."),
    ("ru", lambda: period_title(parse_period("2024-03")), f"Март 2024{NNBSP}г."),
    ("ru", lambda: period_title(parse_period("2024-Q1")), f"1-й кв. 2024{NNBSP}г."),
    ("ru", lambda: period_dates(parse_period("2024-Q1")), f"1 янв.{_cldr_dash('ru')}31 мар. 2024{NNBSP}г."),
    ("ru", lambda: change("revenue", 110, 100).text, f"▲ +10,0{NBSP}%"),
    # German: dots between thousands, decimal comma, the symbol after the amount
    ("de", lambda: fmt_money(3026360, "EUR", 2), f"3.026.360,00{NBSP}€"),
    ("de", lambda: fmt_money(3026360, "EUR"), f"3.026.360{NBSP}€"),
    ("de", lambda: fmt_money(3026360, "RUB"), f"3.026.360{NBSP}₽"),  # Babel's German knows only "RUB"
    ("de", lambda: fmt_pct(0.1234), f"12,3{NBSP}%"),
    ("de", lambda: fmt_count(12345), "12.345"),
    ("de", lambda: fmt_date(date(2024, 3, 1)), "1. März 2024"),
    ("de", lambda: fmt_month(date(2024, 3, 1)), "März 2024"),
    ("de", lambda: period_title(parse_period("2024-Q1")), "Q1 2024"),
    ("de", lambda: period_dates(parse_period("2024-Q1")), f"1. Jan.{_cldr_dash('de')}31. März 2024"),
    # chart axes and bar labels: short forms; German has none for thousands (grouped instead)
    ("en", lambda: fmt_compact(3_100_000, "EUR"), "€3.1M"),
    ("en", lambda: fmt_compact(310_000, "EUR"), "€310k"),
    ("en", lambda: fmt_compact(-2_500_000), "−2.5M"),
    ("en", lambda: fmt_compact(950, "CHF"), "950 CHF"),
    ("ru", lambda: fmt_compact(3_100_000, "RUB"), f"3,1{NBSP}млн{NBSP}₽"),
    ("ru", lambda: fmt_compact(12_000), f"12{NBSP}тыс."),
    ("de", lambda: fmt_compact(3_100_000, "EUR"), f"3,1{NBSP}Mio.{NBSP}€"),
    ("de", lambda: fmt_compact(500_000, "EUR"), f"500.000{NBSP}€"),
    ("de", lambda: fmt_compact(12_000), "12.000"),
])
def test_numbers_money_and_dates_follow_the_locale(language, call, expected):
    with using(language):
        assert call() == expected


def test_the_currency_does_not_follow_the_language():
    with using("ru"):
        assert fmt_money(10.0, "USD") == f"10,00{NBSP}$"
    with using("de"):
        assert fmt_money(10.0, "GBP") == f"10,00{NBSP}£"


def test_kpi_labels_are_translated_when_shown_not_when_defined(tmp_path, monkeypatch):
    _pseudo(tmp_path, "de", {"Churn rate": "Abwanderungsrate", "AOV per order": "AOV pro Bestellung"})
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    with using("de"):
        assert kpi_spec("churn_rate").label == "Abwanderungsrate"
        assert kpi_spec("aov", {"aov_basis": "order"}).label == "AOV pro Bestellung"
    assert kpi_spec("churn_rate").label == "Churn rate"


# ------------------------------------------------------------------ 4. a whole report, translated

# what may read the same in every language: numbers, dates of ISO form, and these names and symbols
_SAME_EVERYWHERE = {"CRR", "LTV", "AOV", "CLV", "KPI", "AF", "AL", "CS", "CL", "CN", "NL", "RE", "CE", "X", "Y", "Z",
                    "BG", "NBD", "Pareto", "Gamma", "P", "alive", "pp", "vs", "Q1", "Q2", "Q3", "Q4", "H1", "H2",
                    "EUR", "retention", "report"}


def _reader_texts(html: str) -> list[str]:
    """Headings, table headers, definition terms, captions and the charts' alt texts (their titles)."""
    def text(fragment: str) -> str:
        return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", fragment))).strip()

    found = [text(t) for tag in ("h1", "h2", "h3", "th", "dt", "caption", "figcaption")
             for t in re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", html, re.S)]
    found += [unescape(a) for a in re.findall(r"<img\b[^>]*?\balt=\"([^\"]*)\"", html)]
    return [t for t in found if t]


def _same_everywhere(text: str, data_values: set[str]) -> bool:
    if text in data_values:
        return True
    words = re.findall(r"[^\W\d_]{2,}", text)
    return all(w in _SAME_EVERYWHERE or w in data_values for w in words)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, sample_parquet) -> dict[str, Path]:
    """The report of 2024-Q1 on the test sample in each language."""
    cli = Path(sys.executable).with_name("retention-report")
    out = {}
    for language in i18n.LANGUAGES:
        d = tmp_path_factory.mktemp(f"report-{language}")
        (d / "config.toml").write_text(f'[source]\npath = "{sample_parquet}"\n[report]\nlanguage = "{language}"\n'
                                       '[columns]\nsegments = ["channel", "country", "platform"]\n'
                                       '[metrics]\ncohort_segment = "channel"\n')
        r = subprocess.run([str(cli), "run", "--period", "2024-Q1", "--config", str(d / "config.toml"),
                            "--out", str(d / "out")], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out[language] = d / "out"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("language", TRANSLATED)
def test_a_report_in_another_language_has_no_english_left(rendered, sample_frame, language):
    """Rendered with ``[report] language``: the page says its language, metrics.json keeps its
    numbers (only its findings are prose in the reader's language), and no heading, table header,
    definition or chart title reads as in the English report — unless it is a number, a value
    from the data or a name (CRR, LTV, AOV …). Fails until the catalogs are translated."""
    html = (rendered[language] / "report.html").read_text(encoding="utf-8")
    english = (rendered["en"] / "report.html").read_text(encoding="utf-8")
    assert f'<html lang="{language}">' in html and '<html lang="en">' in english
    doc, doc_en = (json.loads((rendered[x] / "metrics.json").read_text()) for x in (language, "en"))
    for key in ("kpis", "previous", "year_ago", "cohorts", "segments", "clv"):
        assert doc[key] == doc_en[key], key
    data_values = {str(v) for col in ("channel", "country", "platform") for v in sample_frame[col].dropna().unique()}
    same = set(_reader_texts(english))
    left = sorted({t for t in _reader_texts(html) if t in same and not _same_everywhere(t, data_values)})
    assert not left, f"{len(left)} text(s) of the {language} report still read as in English:\n" + "\n".join(left[:60])


def _boxes(box):
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _boxes(child)


@pytest.mark.slow
@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_no_table_or_line_runs_off_the_pdf_page(rendered, language):
    """Longer German and Russian words must not push a table, a chart or a line of text past the
    right edge of the page's content area (column heads wrap; numbers do not)."""
    from weasyprint import HTML

    from retention_report.paths import TEMPLATES_DIR

    html = (rendered[language] / "report.html").read_text(encoding="utf-8")
    doc = HTML(string=html, base_url=str(TEMPLATES_DIR)).render()
    over = []
    for n, page in enumerate(doc.pages, 1):
        root = page._page_box  # WeasyPrint's laid-out page (no public API exposes box geometry)
        right = root.content_box_x() + root.width
        for box in _boxes(root):
            width = getattr(box, "width", None)
            if box is root or not isinstance(width, (int, float)) or not hasattr(box, "position_x"):
                continue
            if box.position_x + width > right + 1:
                element = getattr(box, "element", None)
                over.append(f"page {n}: {type(box).__name__} <{getattr(box, 'element_tag', '')} "
                            f"class={element.get('class') if element is not None else ''}> "
                            f"{box.position_x + width - right:.0f}px past the edge")
    assert not over, "\n".join(over[:20])


def test_run_details_explain_config_values_in_the_readers_language():
    from retention_report.tables import run_details

    public = {"metrics": {"split_basis": "purchase", "cohort_grain": "month", "cohort_count": 12,
                          "lifetime_method": "churn", "activity_window_days": 365, "lookback_months": 12},
              "validation": {"on_invalid": "drop"}}
    with using("en"):
        en = run_details(public, "0.1.0")
    assert "<td>purchase</td>" in en and "<td>month (12 cohorts)</td>" in en and "<td>drop</td>" in en
    with using("ru"):
        ru = run_details(public, "0.1.0")
    # the config's word stays next to its Russian explanation: it is what the config file says
    assert "<td>по покупкам (purchase)</td>" in ru and "<td>по уровню оттока (churn)</td>" in ru
    assert "<td>по месяцам (12 когорт)</td>" in ru and "<td>исключить и посчитать (drop)</td>" in ru


def test_why_there_is_no_prediction_is_said_in_the_readers_language():
    """metrics.json's clv_reason stays the English sentence; the report's banner translates it with
    the locale's numbers and dates."""
    from types import SimpleNamespace

    from retention_report.metrics.predictive import Reason
    from retention_report.tables_clv import unavailable

    reason = Reason("only %(customers)s customers had bought by %(day)s; the model needs at least "
                    "%(minimum)s (clv.min_customers)", customers=1234, day=date(2024, 3, 31), minimum=5000)
    assert reason == "only 1,234 customers had bought by 31 Mar 2024; the model needs at least 5,000 (clv.min_customers)"
    pv = SimpleNamespace(available=False, reason=reason)
    with using("en"):
        assert "No prediction for this period: only 1,234 customers had bought by 31 Mar 2024;" in unavailable(pv)
    with using("ru"):
        assert f"к 31 мар. 2024{NNBSP}г. покупали только 1{NBSP}234 клиентов, а модели нужно не меньше 5{NBSP}000" in unavailable(pv)
    with using("de"):
        assert "bis 31. März 2024 hatten nur 1.234 Kunden gekauft" in unavailable(pv)
