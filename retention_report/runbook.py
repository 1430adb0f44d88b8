"""The section notebooks of a report run as one notebook, executed in one kernel.

Starting a kernel and importing pandas, matplotlib and Ibis costs 2–3 s per notebook: seven
sections paid it seven times (issue 13). A run now joins the section notebooks into one notebook
(:func:`join_sections`) — the first section's ``parameters`` cell stays (papermill injects the run's
values after it), the other sections' are left out — executes it once, and splits the result back
into one executed notebook per section for the audit folder (:func:`split_sections`). Every cell
carries where it came from (``metadata.retention_report``: section notebook and cell number as in
the source notebook), so a failing cell is still reported as "notebook 03_segments.ipynb, cell 4"
(:func:`failed_cell`), and :class:`SectionClock` turns the kernel's cell events into the per-section
progress lines and timings of before.

Analysts keep editing the separate section notebooks; each still runs on its own in JupyterLab.
A section must not rely on variables another section defined (it would work in a run, not in
JupyterLab): every shipped section opens its own context first.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["ORIGIN", "ENGINE", "engine", "join_sections", "split_sections", "failed_cell", "SectionClock"]

ORIGIN = "retention_report"  # cell metadata key: {"section": "03_segments.ipynb", "cell": 4}


def _tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def join_sections(paths: Sequence[Path]) -> nbformat.NotebookNode:
    """One notebook with the cells of ``paths`` in order, each marked with its origin; only the first
    section's ``parameters`` cell is kept (papermill injects the run's parameters after it, and the
    later sections' defaults would overwrite them)."""
    joined: nbformat.NotebookNode | None = None
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        if joined is None:
            joined = copy.deepcopy(nb)
            joined.cells = []
        for number, cell in enumerate(nb.cells, 1):
            if "parameters" in _tags(cell) and any("parameters" in _tags(c) for c in joined.cells):
                continue
            cell = copy.deepcopy(cell)
            cell.setdefault("metadata", {})[ORIGIN] = {"section": path.name, "cell": number}
            joined.cells.append(cell)
    return joined if joined is not None else nbformat.v4.new_notebook()


def split_sections(executed: nbformat.NotebookNode, names: Sequence[str]) -> dict[str, nbformat.NotebookNode]:
    """The executed joined notebook cut back into one notebook per section (``names`` in order):
    its own cells with their outputs, and the run's injected parameters in each (for the audit);
    a section the run did not reach has no entry."""
    injected = [c for c in executed.cells if "injected-parameters" in _tags(c)]
    out: dict[str, nbformat.NotebookNode] = {}
    for cell in executed.cells:
        origin = cell.get("metadata", {}).get(ORIGIN)
        if not origin or origin.get("section") not in names:
            continue
        nb = out.get(origin["section"])
        if nb is None:
            nb = out[origin["section"]] = nbformat.v4.new_notebook(metadata=copy.deepcopy(executed.metadata))
        nb.cells.append(cell)
        if "parameters" in _tags(cell):  # where papermill put them in the first section
            nb.cells.extend(copy.deepcopy(injected))
    for nb in out.values():
        if injected and not any("injected-parameters" in _tags(c) for c in nb.cells):
            nb.cells[0:0] = copy.deepcopy(injected)  # a later section: its parameters cell was left out
    return {n: out[n] for n in names if n in out}


def failed_cell(executed: nbformat.NotebookNode) -> tuple[str | None, int | None, int | None]:
    """(section notebook, cell number in it, execution count) of the first cell with an error
    output; (None, None, None) when there is none."""
    for cell in executed.cells:
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            origin = cell.get("metadata", {}).get(ORIGIN) or {}
            return origin.get("section"), origin.get("cell"), cell.get("execution_count")
    return None, None, None


class SectionClock:
    """Follows the joined notebook's execution (nbclient's ``on_cell_execute`` hook): prints
    ``[i/n] name …`` when a section's first cell starts and ``[i/n] name done in 1.2s`` when the next
    one starts (or the run ends), and keeps each section's time."""

    def __init__(self, names: Sequence[str], progress: Callable[[str], None]) -> None:
        self.names = list(names)
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._current: str | None = None
        self._since = 0.0
        # (section notebook, cell number in it) of the cell started last: the one that was running
        # when the run stopped without an error output (a cell timeout, a dead kernel)
        self.last_cell: tuple[str | None, int | None] = (None, None)

    def _close(self) -> None:
        if self._current is not None:
            took = time.perf_counter() - self._since
            self.timings[self._current] = took
            i = self.names.index(self._current) + 1
            self.progress(f"[{i}/{len(self.names)}] {self._current} done in {took:.1f}s")
            self._current = None

    def on_cell_execute(self, cell: Any, cell_index: int) -> None:
        origin = cell.get("metadata", {}).get(ORIGIN) or {}
        name = origin.get("section")
        if name is not None:
            self.last_cell = (name, origin.get("cell"))
        if name is None or name == self._current or name not in self.names:
            return
        self._close()
        self._current, self._since = name, time.perf_counter()
        self.progress(f"[{self.names.index(name) + 1}/{len(self.names)}] {name} …")

    def finish(self) -> None:
        """The run ended: close the last section (not when it failed: no "done" line then)."""
        self._close()

    def abandon(self) -> None:
        self._current = None


ENGINE = "retention-report"  # papermill engine name (:func:`engine`)


def engine() -> str:
    """Register (once) and name papermill's nbclient engine, writing the executed notebook once.

    Papermill writes the whole output notebook at the start and at the end of every cell, for
    watching a long run from outside: a report's joined notebook has ~70 cells and grows to 2 MB of
    charts, so that was ~140 writes and 1–2 s of the run. This engine writes it when the run ends,
    successful or not (papermill's ``notebook_complete`` runs in a ``finally``; a failed cell's
    notebook is written for the audit folder as before)."""
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
    from papermill.exceptions import PapermillException

    try:
        papermill_engines.get_engine(ENGINE)
        return ENGINE  # registered by an earlier run of this process
    except PapermillException:
        pass

    class SaveAtEnd(NotebookExecutionManager):  # type: ignore[misc]  # papermill is untyped
        final = False

        def save(self, **kwargs: Any) -> None:
            if self.final:
                super().save(**kwargs)

        def notebook_complete(self, **kwargs: Any) -> None:
            self.final = True
            super().notebook_complete(**kwargs)

    class Engine(NBClientEngine):  # type: ignore[misc]
        @classmethod
        def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None,
                             progress_bar: bool = True, log_output: bool = False,
                             autosave_cell_every: int = 30, **kwargs: Any) -> Any:
            nb_man = SaveAtEnd(nb, output_path=output_path, progress_bar=progress_bar,
                               log_output=log_output, autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    papermill_engines.register(ENGINE, Engine)
    return ENGINE
