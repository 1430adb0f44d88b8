"""One report run: metrics → section notebooks (papermill) → HTML + PDF, written atomically.

Everything is written to a temporary folder next to the output and moved into
``<output_dir>/<PERIOD>/`` only when every step succeeded. A failed notebook cell stops the run with
:class:`NotebookFailed` naming the notebook and cell; the partially executed notebooks are kept in
``<output_dir>/<PERIOD>.failed/`` and a previous good report is left untouched.

The output folder is replaced only when it is missing or a report of this tool
(:func:`retention_report.outputs.check_report_out`, checked before any work). SIGINT and SIGTERM
stop a run cleanly (:class:`Interrupted`): the kernel is killed, the temporary folder, the kernel's
sockets and connection file are removed and the previous report is left as it was; temporary
folders of runs that were killed outright are removed by the next run.

A run is a :class:`~retention_report.runs.ReportRun` (settings, period, data set, output folder);
:func:`execute_run` takes it through its steps. The kernel machinery is
:mod:`retention_report.kernel`, the output folders :mod:`retention_report.outputs`, the cover
text :mod:`retention_report.cover`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from . import paths
from .config import Settings
from .fsio import write_atomic
from .kernel import (
    Interrupted,
    NotebookWorker,
    SignalGuard,
    ipc_kernel_manager,
    kernel_exists,
    kill_kernels,
)
from .outputs import (
    check_report_out,
    content_record,
    data_fingerprint,
    keep_failed,
    new_run_folder,
    normal_permissions,
    remove_failed,
    swap_into_place,
    sweep_stale,
    update_marker,
    written_files,
)
from .paths import NOTEBOOKS_DIR
from .periods import Period
from .runs import ReportRun
from .secrets import redact
from .sections import SECTIONS, in_report_order

if TYPE_CHECKING:
    from .context import ReportContext
    from .data import Dataset

__all__ = [
    "NOTEBOOKS_DIR",
    "SECTION_NOTEBOOKS",
    "Interrupted",
    "NotebookFailed",
    "NotebookParameters",
    "RunResult",
    "compute_metrics",
    "execute_run",
    "write_metrics",
    "run_report",
    "section_notebooks",
    "notebook_parameters",
]

# section name → notebook file, in report order (from the registry, retention_report.sections)
SECTION_NOTEBOOKS = {s.name: s.notebook for s in SECTIONS}

Progress = Callable[[str], None]


class NotebookFailed(RuntimeError):
    """A cell of a section notebook raised."""

    def __init__(self, notebook: str, cell: int | None, exec_count: int | None, error: str, kept: Path):
        self.notebook, self.cell, self.exec_count, self.error, self.kept = notebook, cell, exec_count, error, kept
        where = f"cell {cell}" if cell is not None else "a cell"
        if exec_count is not None:
            where += f" (execution count {exec_count})"
        super().__init__(
            f"notebook {notebook} failed in {where}: {error}\n"
            f"The partially executed notebook is kept at {kept}; any previous report was left untouched."
        )


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    html: Path
    pdf: Path
    metrics: Path
    notebooks: list[Path]
    seconds: float
    timings: dict[str, float]


# the notebooks' former names (numbered before they were in report order): a report project made then
# keeps them in its own notebooks folder
FORMER_NOTEBOOKS = {"07_predicted_value.ipynb": "08_predicted_value.ipynb", "08_appendix.ipynb": "07_appendix.ipynb"}


def section_notebooks(settings: Settings, notebooks_dir: Path | None = None) -> list[Path]:
    """The notebooks of ``report.sections`` in report order, from ``notebooks_dir`` (``--notebooks``),
    else the config's ``report.notebooks_dir``, else the package's (:mod:`retention_report.paths`);
    a notebook missing there under its name but present under its former one
    (:data:`FORMER_NOTEBOOKS`) is taken from that."""
    base = paths.notebooks_dir(settings, notebooks_dir)
    found = []
    for s in in_report_order(settings.report.sections):
        path, former = base / s.notebook, FORMER_NOTEBOOKS.get(s.notebook)
        if former and not path.exists() and (base / former).exists():
            path = base / former
        found.append(path)
    return found


def report_writes(settings: Settings, notebooks_dir: Path | None = None) -> list[str]:
    """The executed notebooks a run writes into its report folder (relative paths), besides the
    fixed report files (:func:`retention_report.outputs.check_report_out` refuses a user's file
    of one of these names)."""
    return [f"notebooks/{nb.name}" for nb in section_notebooks(settings, notebooks_dir)]


def compute_metrics(settings: Settings, period: Period, ds: Dataset | None = None) -> dict[str, Any]:
    """The metrics.json document of ``period`` (opens the data set unless given)."""
    from .context import ReportContext

    return ReportContext(period, settings, dataset=ds).doc


def write_metrics(doc: dict[str, Any], path: Path) -> Path:
    """Write metrics.json atomically (:func:`retention_report.fsio.write_atomic`), with the
    permissions of any file the user writes (``metrics --out`` wrote it owner-only before)."""
    return write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


class NotebookParameters(TypedDict):
    """What a run passes to the section notebooks' ``parameters`` cell (papermill: JSON values;
    the notebook opens its context from them, :func:`retention_report.context.open_report`)."""

    period: str  # the concrete period's label: a notebook re-run later shows the same period
    config_path: str
    data: str
    metrics_path: str  # the run's metrics.json; the section results it precomputed lie beside it


def notebook_parameters(period: Period, config_path: str | None, data: str | None,
                        metrics_path: Path) -> NotebookParameters:
    """Parameters passed to every section notebook: only non-secret values (papermill writes
    them into the executed notebook)."""
    from .secrets import inline_secret

    for value in (data, config_path):
        if value and inline_secret(value):
            raise ValueError(f"{inline_secret(value)} in {redact(value)!r} would be written into the "
                             "notebooks; put the password in an environment variable named by "
                             "source.password_env")
    return {
        "period": period.label,
        "config_path": str(Path(config_path).resolve()) if config_path else "",
        "data": str(data or ""),
        "metrics_path": str(metrics_path.resolve()),
    }


def _failure_details(exc: Exception, joined: Path, names: list[str], running: tuple[str | None, int | None] = (None, None),
                     timeout: float | None = None) -> tuple[str, int | None, int | None, str]:
    """(section notebook, cell number as in that notebook, execution count, error line) of the
    failed cell of an executed joined notebook (:mod:`retention_report.runbook`). A cell that ran
    out of time (``[report] cell_timeout_seconds``) has no error output: it is ``running``, the cell
    started last."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError

    from .runbook import failed_cell

    if isinstance(exc, CellTimeoutError | TimeoutError):
        secs = f"{timeout:g}" if timeout is not None else "?"
        return (running[0] or (names[0] if names else "?"), running[1], None,
                f"the cell ran longer than {secs} s (report.cell_timeout_seconds) and was stopped")
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    section: str | None = None
    cell_idx = exec_count = None
    try:
        section, cell_idx, exec_count = failed_cell(nbformat.read(str(joined), as_version=4))
    except Exception:  # pragma: no cover - the notebook may be unreadable if the kernel died
        pass
    if section is None and running[0] is not None:  # no error output (the kernel died): the running cell
        section, cell_idx = running
    return section or (names[0] if names else "?"), cell_idx, exec_count, f"{ename}: {evalue}".strip()


def _write_split(joined: Path, names: list[str], folder: Path) -> list[Path]:
    """The executed joined notebook as one executed notebook per section (what the run reached),
    in ``folder``; the joined file itself is removed."""
    import nbformat

    from .runbook import split_sections

    written = []
    if joined.is_file():
        for name, nb in split_sections(nbformat.read(str(joined), as_version=4), names).items():
            nbformat.write(nb, str(folder / name))
            written.append(folder / name)
        joined.unlink()
    return written


def run_report(
    settings: Settings,
    period: Period,
    *,
    config_path: str | None = None,
    data: str | None = None,
    out_dir: Path | None = None,
    notebooks_dir: Path | None = None,
    kernel_name: str | None = None,
    progress: Progress = print,
    dataset: Dataset | None = None,
) -> RunResult:
    """Run the whole report for ``period`` and return where it was written: :func:`execute_run`
    of the :class:`~retention_report.runs.ReportRun` of these values (``out_dir`` default
    ``<report.output_dir>/<PERIOD>``; ``dataset``: the data set of ``settings`` already open, so a
    run of several periods reads and validates the data once; opened here when None)."""
    run = ReportRun.of(settings, period, out_dir=out_dir, config_path=config_path, data=data,
                       notebooks_dir=notebooks_dir, dataset=dataset)
    return execute_run(run, kernel_name=kernel_name, progress=progress)


def execute_run(run: ReportRun, *, kernel_name: str | None = None, progress: Progress = print) -> RunResult:
    """Run the report of ``run``: metrics, the section notebooks in one kernel, HTML and PDF, moved
    into ``run.out_dir`` when every step succeeded.

    Raises
    ------
    NotebookFailed
        A cell of a section notebook raised (details and the kept notebook in the message).
    retention_report.data.DataError
        The data source is unreachable or its data is invalid (before any notebook runs).
    retention_report.outputs.OutputError
        The output folder exists and is not a report of this tool (before any work).
    Interrupted
        SIGINT or SIGTERM arrived (in the main thread); nothing was left behind.
    """
    from .i18n import using

    # the report's words in its language, for this run only (i18n.py)
    with using(run.settings.report.language), SignalGuard() as guard:
        try:
            return _Execution(run, kernel_name, progress, guard).execute()
        except Interrupted:
            raise
        except BaseException:
            # the engine may turn the interruption into its own error ("Query interrupted")
            if guard.received is not None:
                raise Interrupted(guard.received) from None
            raise


class _Execution:
    """One run while it executes: its private folders (the report being written, the kernel's
    sockets), its kernel and its timings; each step of :meth:`execute` is a method."""

    def __init__(self, run: ReportRun, kernel_name: str | None, progress: Progress, guard: SignalGuard) -> None:
        self.run, self.kernel_name, self.progress, self.guard = run, kernel_name, progress, guard
        self.timings: dict[str, float] = {}
        self.kernels: list[Any] = []
        self.sockets: Path | None = None
        self.worker: NotebookWorker | None = None
        self.kernel = "python3"

    def execute(self) -> RunResult:
        t0 = time.perf_counter()
        run = self.run
        # nothing the user owns is replaced (before any work)
        check_report_out(run.out_dir, writes=run.writes())
        # absolute: papermill changes the (process-wide) working directory while a notebook runs
        final = Path(os.path.abspath(run.out_dir))
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(final.parent, say=self.progress)  # what runs killed outright left behind
        tmp = new_run_folder(final)
        try:
            update_marker(tmp, run.label)  # a folder of this tool, of this process, from the start
            nbs = self._start_kernel()
            data_hash, ctx, metrics_path = self._metrics(tmp)
            sections = self._sections(ctx, metrics_path)
            executed = self._notebooks(nbs, tmp, final, metrics_path, sections)
            sections.unlink(missing_ok=True)  # internal to the run, not part of the report
            self._render(executed, tmp, ctx)
            self._put_in_place(tmp, final, data_hash)
        except BaseException:
            kill_kernels(self.kernels)
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if self.worker is not None:
                self.worker.close()  # a kernel the notebooks never got to (the data were bad …) is shut down
            if self.sockets is not None:
                shutil.rmtree(self.sockets, ignore_errors=True)
        # the archive page of the reports folder (reports/index.html); a failure only warns, and a signal
        # now must not make the report, already in place, look failed
        from .archive import update_for

        with self.guard.deferred():
            update_for(final, run.settings, say=self.progress)
        shown = run.out_dir
        return RunResult(
            out_dir=shown,
            html=shown / "report.html",
            pdf=shown / "report.pdf",
            metrics=shown / "metrics.json",
            notebooks=[shown / "notebooks" / p.name for p in executed],
            seconds=time.perf_counter() - t0,
            timings=self.timings,
        )

    def _start_kernel(self) -> list[Path]:
        """0. The kernel starts now, in the notebook thread, and imports the report's libraries
        while this thread reads the data and computes the metrics (issue 13); returns the section
        notebooks."""
        settings = self.run.settings
        # kernel IPC sockets and connection file (it holds the kernel's key): a short absolute path
        # (unix sockets allow ~100 characters), removed with the run
        self.sockets = Path(tempfile.mkdtemp(prefix=f"rr-kernel-{os.getpid()}-"))
        nbs = section_notebooks(settings, self.run.notebooks_dir)
        kernel = self.kernel_name or settings.report.kernel
        self.kernel = kernel if kernel_exists(kernel) else "python3"  # ipykernel's own, in this env
        # the kernel's environment holds no password (a section printing os.environ must not put
        # the SMTP or database password into the report)
        from .secrets import kernel_environment

        env = kernel_environment((settings.source.password_env, settings.email.password_env))
        self.worker = NotebookWorker(self.kernel, str(nbs[0].parent) if nbs else None,
                                     ipc_kernel_manager(self.sockets, self.kernels), self.kernels, env=env)
        return nbs

    def _metrics(self, tmp: Path) -> tuple[str | None, ReportContext, Path]:
        """1. Data and metrics (fast path, also validates the data before any notebook runs); the
        content of the source's files is recorded as it is before they are read (the email command
        re-renders a report whose data changed since)."""
        from .context import ReportContext

        run = self.run
        t = time.perf_counter()
        data_hash = data_fingerprint(run.settings)
        ds = run.open(self.progress)
        ctx = ReportContext(run.period, run.settings, dataset=ds)
        metrics_path = write_metrics(ctx.doc, tmp / "metrics.json")
        self.timings["metrics"] = time.perf_counter() - t
        self.progress(f"[metrics] {ds.quality.rows_used:,} payments, metrics.json written in "
                      f"{self.timings['metrics']:.1f}s")
        return data_hash, ctx, metrics_path

    def _sections(self, ctx: ReportContext, metrics_path: Path) -> Path:
        """The sections of every notebook, on the data set already open: the notebooks take them
        from the run's folder instead of each reopening and re-validating the data."""
        from .context import sections_path

        t = time.perf_counter()
        computed = ctx.precompute(self.run.settings.report.sections)
        sections = ctx.save_sections(sections_path(metrics_path))
        self.timings["sections"] = time.perf_counter() - t
        if computed:
            self.progress(f"[sections] {', '.join(m.replace('_', ' ') for m in computed)} computed in "
                          f"{self.timings['sections']:.1f}s")
        return sections

    def _notebooks(self, nbs: list[Path], tmp: Path, final: Path, metrics_path: Path, sections: Path) -> list[Path]:
        """2. Section notebooks: joined into one notebook and executed in one kernel (one kernel
        start and one import of pandas/matplotlib/Ibis instead of one per section), then split
        back into the executed section notebooks kept for audit (retention_report.runbook). A
        failed cell keeps them in ``<final>.failed`` and raises :class:`NotebookFailed`."""
        import nbformat
        import papermill as pm

        from .kernel import preload_renderers
        from .runbook import SectionClock, engine, join_sections

        run = self.run
        assert self.worker is not None
        params = notebook_parameters(run.period, run.config_path, run.data, metrics_path)
        names = [nb.name for nb in nbs]
        (tmp / "notebooks").mkdir()
        joined = tmp / "notebooks" / ".report.ipynb"
        nbformat.write(join_sections(nbs), str(joined))
        clock = SectionClock(names, self.progress)
        t = time.perf_counter()
        try:
            self.worker.run(lambda km: pm.execute_notebook(
                str(joined),
                str(joined),
                parameters=dict(params),
                kernel_name=self.kernel,
                km=km,  # started by the worker (its owner: it shuts the kernel down)
                engine_name=engine(),  # the executed notebook written once, at the end
                progress_bar=False,
                log_output=False,
                on_cell_execute=clock.on_cell_execute,
                # a hanging cell fails the run instead of blocking it (and a scheduled run) forever
                execution_timeout=run.settings.report.cell_timeout_seconds,
            ), meanwhile=preload_renderers)
        except Exception as exc:  # papermill raises PapermillExecutionError for a failed cell
            clock.abandon()
            failed_nb, cell, count, error = _failure_details(exc, joined, names, clock.last_cell,
                                                             run.settings.report.cell_timeout_seconds)
            _write_split(joined, names, tmp / "notebooks")
            sections.unlink(missing_ok=True)
            failed = keep_failed(tmp, final, run.label)
            raise NotebookFailed(failed_nb, cell, count, error, failed / "notebooks" / failed_nb) from None
        clock.finish()
        self.timings.update(clock.timings)
        self.timings["notebooks"] = time.perf_counter() - t
        return _write_split(joined, names, tmp / "notebooks")

    def _render(self, executed: list[Path], tmp: Path, ctx: ReportContext) -> None:
        """3. report.html and report.pdf, with the cover in the reader's words ([report] language,
        scoped by execute_run; i18n.py)."""
        from .cover import cover_text
        from .render import combine_notebooks, render_html, render_pdf

        settings = self.run.settings
        t = time.perf_counter()
        combined = combine_notebooks(executed)
        ds = ctx.ds
        report = cover_text(settings, self.run.period, ctx.doc, ds.source_name, ds.quality.last_payment)
        html = render_html(combined, report, paths.templates_dir(settings))
        (tmp / "report.html").write_text(html, encoding="utf-8")
        self.timings["html"] = time.perf_counter() - t
        self.progress(f"[render] report.html ({len(html) / 1e6:.1f} MB) in {self.timings['html']:.1f}s")
        t = time.perf_counter()
        render_pdf(html, tmp / "report.pdf", paths.templates_dir(settings))
        self.timings["pdf"] = time.perf_counter() - t
        self.progress(f"[render] report.pdf ({(tmp / 'report.pdf').stat().st_size / 1e6:.1f} MB) in "
                      f"{self.timings['pdf']:.1f}s")

    def _put_in_place(self, tmp: Path, final: Path, data_hash: str | None) -> None:
        """4. Move into place, recording what the report was made from (the email command checks it)."""
        made_from = content_record(self.run.settings)
        # files: what this run wrote, so a re-rendering knows the rest of the folder is the user's
        update_marker(tmp, self.run.label, metrics=made_from, report={**made_from, "data": data_hash},
                      files=written_files(tmp))
        normal_permissions(tmp)
        with self.guard.deferred():  # a signal now would leave the old report half moved away
            swap_into_place(tmp, final)
        remove_failed(final)
