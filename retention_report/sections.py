"""The report's sections: one registry that config validation, the pipeline, the precomputation of
section data and the tests all read.

Adding a section is two steps: write its notebook in ``notebooks/`` (a ``parameters`` cell, then
``ctx = rr.open_report(...)`` and calls into the package, under a ``## <title>`` heading), and add
one :class:`Section` entry here. ``data`` names the :class:`~retention_report.context.ReportContext`
methods the notebook reads the data through, so a report run computes them once on the data set it
has open instead of every notebook reopening the data (a test checks each shipped notebook calls no
other data-reading method).

This module imports nothing from the package: every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Section", "SECTIONS", "SECTION_NAMES", "section", "in_report_order"]


@dataclass(frozen=True)
class Section:
    """One report section.

    Attributes
    ----------
    name
        The key in ``report.sections`` of the config.
    notebook
        The notebook's file name in the notebooks folder.
    title
        The section's heading (the notebook's ``##`` heading, the report's table of contents).
    data
        ReportContext methods the notebook reads the data through (precomputed by a report run).
    """

    name: str
    notebook: str
    title: str
    data: tuple[str, ...] = ()


SECTIONS: tuple[Section, ...] = (
    Section("summary", "01_summary.ipynb", "Executive summary"),
    Section("new_vs_returning", "02_new_vs_returning.ipynb", "New vs returning sales", ("new_vs_returning", "trend")),
    Section("segments", "03_segments.ipynb", "Regular-customer segments", ("segments",)),
    Section("customer_base", "04_customer_base.ipynb", "Customer base flow", ("bridge",)),
    Section("cohorts", "05_cohorts.ipynb", "Cohort retention", ("cohorts", "cohort_curves")),
    Section("behaviour", "06_behaviour_ltv.ipynb", "Purchase behaviour and LTV", ("second_purchase",)),
    Section("predicted_value", "08_predicted_value.ipynb", "Predicted customer value", ("clv",)),
    Section("appendix", "07_appendix.ipynb", "Appendix"),
)

SECTION_NAMES: tuple[str, ...] = tuple(s.name for s in SECTIONS)
_BY_NAME = {s.name: s for s in SECTIONS}


def section(name: str) -> Section:
    """The section called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown section {name!r}; known: {list(SECTION_NAMES)}") from None


def in_report_order(names: list[str] | tuple[str, ...] | None = None) -> list[Section]:
    """The sections named (all when None), in report order whatever order they were named in."""
    wanted = set(SECTION_NAMES if names is None else names)
    unknown = wanted - set(SECTION_NAMES)
    if unknown:
        raise KeyError(f"unknown section(s) {sorted(unknown)}; known: {list(SECTION_NAMES)}")
    return [s for s in SECTIONS if s.name in wanted]
