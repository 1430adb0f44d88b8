"""The section registry is the one list of report sections: every shipped notebook is in it, with
its heading; config validation, the pipeline and the precomputation read it."""

from __future__ import annotations

import re

import nbformat
import pytest

from retention_report.config import ConfigError, load_settings
from retention_report.context import SECTION_DATA
from retention_report.pipeline import NOTEBOOKS_DIR, SECTION_NOTEBOOKS, section_notebooks
from retention_report.sections import SECTION_NAMES, SECTIONS, in_report_order, section


def test_every_shipped_notebook_is_registered_once_with_its_heading():
    """Each notebook shows its section's title with ``rr.heading("<name>")`` (in the reader's
    language, i18n.py) before any other heading, and has no Markdown heading of its own (it would
    stay English)."""
    shipped = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(s.notebook for s in SECTIONS) == shipped
    assert len(set(SECTION_NAMES)) == len(SECTIONS)
    for s in SECTIONS:
        nb = nbformat.read(str(NOTEBOOKS_DIR / s.notebook), as_version=4)
        headings = [k for c in nb.cells if c.cell_type == "code" for k in re.findall(r'rr\.heading\("([^"]+)"', c.source)]
        assert headings[:1] == [s.name], s.notebook
        assert all(k.startswith(s.name + ".") for k in headings[1:]), s.notebook
        assert not [c for c in nb.cells if c.cell_type == "markdown" and c.source.lstrip().startswith("#")], s.notebook


def test_config_pipeline_and_precompute_read_the_registry():
    assert list(load_settings(None).report.sections) == list(SECTION_NAMES)
    assert SECTION_NOTEBOOKS == {s.name: s.notebook for s in SECTIONS}
    assert SECTION_DATA == {s.name: s.data for s in SECTIONS if s.data}
    # the config's order does not change the report's
    s = load_settings(None, **{"report.sections": ["cohorts", "summary"]})
    assert [p.name for p in section_notebooks(s)] == ["01_summary.ipynb", "05_cohorts.ipynb"]
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['sumary'\]"):
        load_settings(None, **{"report.sections": ["sumary"]})


def test_lookup_names_the_known_sections():
    assert section("cohorts").title == "Cohort retention"
    with pytest.raises(KeyError, match="known: .*'summary'"):
        section("nope")
    with pytest.raises(KeyError, match="unknown section"):
        in_report_order(["summary", "nope"])
    assert [s.name for s in in_report_order(["appendix", "summary"])] == ["summary", "appendix"]


def test_the_frequency_segments_are_named_by_what_they_hold():
    """Issue 22: the frequent/medium/rare groups hold every customer acquired before the period and
    still active at its end (SPEC §4.2) — on CDNOW 55% of the base, most with no purchase in the
    period — while the section called them "regular customers" and "returning customers"."""
    from retention_report.sections import section
    from retention_report.texts import LEADS

    title, lead = section("segments").title, LEADS["segments"]
    for words in (title, lead):
        assert "regular" not in words.lower() and "Returning customers are grouped" not in words
    assert "frequency" in title.lower()
    assert "acquired before the period" in lead and "no purchase in the period" in lead
    from retention_report.tables import definitions

    assert "Returning active customers" not in definitions(365, "order")
    assert "Customers acquired before the period and active at its end" in definitions(365, "order")


def test_notebook_files_are_numbered_in_report_order():
    """Issue 22: the progress said "[7/8] 08_predicted_value" then "[8/8] 07_appendix": a notebook's
    number is its place in the report."""
    assert [s.notebook[:3] for s in SECTIONS] == [f"{i:02d}_" for i in range(1, len(SECTIONS) + 1)]
    shipped = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert shipped == [s.notebook for s in SECTIONS]


def test_a_project_made_before_the_renumbering_keeps_its_notebooks(tmp_path):
    """A report project made before the renumbering has 07_appendix and 08_predicted_value in its
    own notebooks folder: those are run, under the sections they hold."""
    for name in ("01_summary.ipynb", "07_appendix.ipynb", "08_predicted_value.ipynb"):
        (tmp_path / name).write_text("{}")
    settings = load_settings(None, **{"report.sections": ["summary", "predicted_value", "appendix"]})
    assert [p.name for p in section_notebooks(settings, tmp_path)] == [
        "01_summary.ipynb", "08_predicted_value.ipynb", "07_appendix.ipynb"]
    (tmp_path / "07_predicted_value.ipynb").write_text("{}")  # renamed: the new name wins
    assert [p.name for p in section_notebooks(settings, tmp_path)][1] == "07_predicted_value.ipynb"
