"""The report's sections: one registry that config validation, the pipeline, the precomputation of
section data and the tests all read.

Adding a section is two steps: write its notebook in ``notebooks/`` (a ``parameters`` cell, then
``ctx = rr.open_report(...)`` and calls into the package, under its heading ``rr.heading("<name>")``),
and add one :class:`Section` entry here. ``data`` names the :class:`~retention_report.context.ReportContext`
methods the notebook reads the data through, so a report run computes them once on the data set it
has open instead of every notebook reopening the data (a test checks each shipped notebook calls no
other data-reading method).

An analyst's own section can also live outside the shipped ones: ``report.sections`` may name a
notebook file (``"analysis/churn_drivers.ipynb"``, relative to the config file's folder) besides
the registry's names. It runs with the same parameters in the same kernel as the others and is
placed after the shipped section named before it in the list (first when none is).

This module imports nothing from the package but :mod:`retention_report.i18n`: every layer may
read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .i18n import N_, _

__all__ = ["Section", "SECTIONS", "SECTION_NAMES", "section", "in_report_order", "is_notebook_path"]


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
        The section's heading (``rr.heading(name)`` in the notebook, the report's table of
        contents), in English: a gettext msgid, shown translated by :attr:`heading`.
    data
        ReportContext methods the notebook reads the data through (precomputed by a report run).
    """

    name: str
    notebook: str
    title: str
    data: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        """The title in the current report language (:mod:`retention_report.i18n`)."""
        return _(self.title)


SECTIONS: tuple[Section, ...] = (
    Section("summary", "01_summary.ipynb", N_("Executive summary")),
    Section("new_vs_returning", "02_new_vs_returning.ipynb", N_("New vs returning sales"),
            ("new_vs_returning", "trend")),
    Section("segments", "03_segments.ipynb", N_("Customers by purchase frequency"), ("segments",)),
    Section("customer_base", "04_customer_base.ipynb", N_("Customer base flow"), ("bridge",)),
    Section("cohorts", "05_cohorts.ipynb", N_("Cohort retention"), ("cohorts", "cohort_curves")),
    Section("behaviour", "06_behaviour_ltv.ipynb", N_("Purchase behaviour and LTV"), ("second_purchase",)),
    Section("predicted_value", "07_predicted_value.ipynb", N_("Predicted customer value"), ("clv",)),
    Section("appendix", "08_appendix.ipynb", N_("Appendix")),
)

SECTION_NAMES: tuple[str, ...] = tuple(s.name for s in SECTIONS)
_BY_NAME = {s.name: s for s in SECTIONS}


def section(name: str) -> Section:
    """The section called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown section {name!r}; known: {list(SECTION_NAMES)}") from None


def is_notebook_path(name: str) -> bool:
    """``name`` in ``report.sections`` names a notebook file of one's own, not a registered section."""
    return name.lower().endswith(".ipynb")


def in_report_order(names: list[str] | tuple[str, ...] | None = None) -> list[Section]:
    """The sections named (all when None), in report order whatever order they were named in.

    A notebook path among ``names`` (:func:`is_notebook_path`) is a section of its own
    (``Section(path, path, "")``, no precomputed data), placed right after the registered section
    that precedes it in ``names`` (at the start when none does); several such keep their order."""
    if names is None:
        return list(SECTIONS)
    unknown = {n for n in names if n not in _BY_NAME and not is_notebook_path(n)}
    if unknown:
        raise KeyError(f"unknown section(s) {sorted(unknown)}; known: {list(SECTION_NAMES)}")
    after: dict[str | None, list[Section]] = {}
    anchor: str | None = None
    for n in names:
        if n in _BY_NAME:
            anchor = n
        elif all(s.notebook != n for group in after.values() for s in group):
            after.setdefault(anchor, []).append(Section(n, n, ""))
    wanted = set(names)
    ordered = list(after.get(None, []))
    for s in SECTIONS:
        if s.name in wanted:
            ordered += [s, *after.get(s.name, [])]
    return ordered
