"""One kernel for all sections (issue 13): the section notebooks joined, executed once, split back;
a failing cell is still named by its section notebook and its cell number there."""

from __future__ import annotations

import nbformat
import papermill as pm
import pytest

from retention_report.runbook import (
    ORIGIN,
    SectionClock,
    failed_cell,
    join_sections,
    split_sections,
)


def _nb(path, *sources):
    """A notebook: a parameters cell (period = "x"), a heading, then the code cells given."""
    cells = [nbformat.v4.new_code_cell('period = "x"', metadata={"tags": ["parameters"]}),
             nbformat.v4.new_markdown_cell(f"## {path.stem}")]
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_join_keeps_one_parameters_cell_and_marks_every_cell(tmp_path):
    a = _nb(tmp_path / "01_a.ipynb", "x = 1")
    b = _nb(tmp_path / "02_b.ipynb", "y = 2", "z = 3")
    joined = join_sections([a, b])
    assert [("parameters" in c.metadata.get("tags", [])) for c in joined.cells].count(True) == 1
    origins = [(c.metadata[ORIGIN]["section"], c.metadata[ORIGIN]["cell"]) for c in joined.cells]
    # b's own parameters cell (its cell 1) is left out; its other cells keep their numbers
    assert origins == [("01_a.ipynb", 1), ("01_a.ipynb", 2), ("01_a.ipynb", 3),
                       ("02_b.ipynb", 2), ("02_b.ipynb", 3), ("02_b.ipynb", 4)]


@pytest.fixture()
def executed(tmp_path):
    a = _nb(tmp_path / "01_a.ipynb", "print('a', period)")
    b = _nb(tmp_path / "02_b.ipynb", "print('b', period)", "1 / 0", "print('never')")
    joined = tmp_path / "joined.ipynb"
    nbformat.write(join_sections([a, b]), str(joined))
    lines: list[str] = []
    clock = SectionClock(["01_a.ipynb", "02_b.ipynb"], lines.append)
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(joined), str(joined), parameters={"period": "2024-Q1"}, kernel_name="python3",
                            progress_bar=False, on_cell_execute=clock.on_cell_execute)
    return nbformat.read(str(joined), as_version=4), lines


@pytest.mark.slow
def test_run_once_split_back_and_the_failure_named_by_section_and_cell(executed):
    nb, lines = executed
    # the failing cell: 02_b.ipynb's 4th cell (parameters, heading, print, 1 / 0)
    section, cell, count = failed_cell(nb)
    assert (section, cell) == ("02_b.ipynb", 4) and count is not None
    parts = split_sections(nb, ["01_a.ipynb", "02_b.ipynb"])
    out = {name: "".join(o.get("text", "") for c in p.cells for o in c.get("outputs", [])) for name, p in parts.items()}
    assert out["01_a.ipynb"] == "a 2024-Q1\n" and out["02_b.ipynb"].startswith("b 2024-Q1\n")
    for p in parts.values():  # each audit notebook shows the run's parameters
        assert sum("injected-parameters" in c.metadata.get("tags", []) for c in p.cells) == 1
    assert lines[:3] == ["[1/2] 01_a.ipynb …", lines[1], "[2/2] 02_b.ipynb …"]
    assert lines[1].startswith("[1/2] 01_a.ipynb done in ")


@pytest.mark.slow
def test_the_engine_writes_the_executed_notebook_once_even_when_a_cell_fails(tmp_path, monkeypatch):
    """Papermill's own engine writes the whole notebook before and after every cell (~140 writes
    of a growing 2 MB notebook per report); the report's engine writes it once, at the end, with
    the outputs — and with the error of a failed cell, for the audit folder."""
    import papermill.engines

    from retention_report.runbook import engine

    writes = []
    real = papermill.engines.write_ipynb
    monkeypatch.setattr(papermill.engines, "write_ipynb", lambda nb, path: (writes.append(path), real(nb, path)))
    src = _nb(tmp_path / "a.ipynb", "x = 1", "print(x + 1)", "y = 2")
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, engine_name=engine())
    assert writes == [str(out)]
    nb = nbformat.read(str(out), as_version=4)
    assert any("2" in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))

    writes.clear()
    bad = _nb(tmp_path / "b.ipynb", "x = 1", "raise ValueError('boom')", "y = 2")
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(bad), str(out), kernel_name="python3", progress_bar=False, engine_name=engine())
    assert 1 <= len(writes) <= 2  # the end of the run (papermill adds its error banner in a second write)
    nb = nbformat.read(str(out), as_version=4)
    assert any(o.get("ename") == "ValueError" for c in nb.cells for o in c.get("outputs", []))
