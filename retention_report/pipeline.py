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
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, paths
from .config import Settings
from .fsio import write_atomic
from .outputs import (
    carry_user_entries,
    check_report_out,
    content_record,
    data_fingerprint,
    is_report_folder,
    remove_own,
    sweep_stale,
    update_marker,
    user_entries,
    written_files,
)
from .paths import NOTEBOOKS_DIR
from .periods import Period
from .secrets import redact
from .sections import SECTIONS, in_report_order

if TYPE_CHECKING:
    from .data import Dataset

__all__ = [
    "NOTEBOOKS_DIR",
    "SECTION_NOTEBOOKS",
    "Interrupted",
    "NotebookFailed",
    "RunResult",
    "compute_metrics",
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


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM (cron, systemd, CI); everything it wrote
    was removed. ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


class _signals_interrupt:
    """While active (main thread only), SIGINT and SIGTERM raise :class:`Interrupted` — except
    inside :meth:`deferred` (the final move into place), where a signal is only recorded in
    ``pending``: it came too late to stop the run, which completes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> _signals_interrupt:
        self.saved: dict[int, Any] = {}
        self.holding = False
        self.pending: int | None = None
        self.received: int | None = None
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.saved[sig] = signal.signal(sig, self._raise)
        return self

    def _raise(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.pending = signum
            return
        self.received = signum
        raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


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


def notebook_parameters(period: Period, config_path: str | None, data: str | None, metrics_path: Path) -> dict[str, Any]:
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


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with two renames; the old report survives until the new one is
    in place. The old report's ``email-log.json`` (who was sent what) is carried over; the email
    command keeps it under ``earlier`` when the new report is sent. So is everything the user
    added to the old report (:func:`retention_report.outputs.user_entries`: notes, notebooks,
    folders), hard-linked or copied into ``tmp`` before the swap: at every moment the user's files
    are in the report folder."""
    old = None
    if final.exists():
        log = final / "email-log.json"
        if log.is_file() and not log.is_symlink() and not (tmp / log.name).exists():
            shutil.copy2(log, tmp / log.name)
        carry_user_entries(final, tmp, user_entries(final))
        # a fresh empty folder of ours (mkdtemp never reuses a name), atomically replaced by the old
        # report: the rename can never land on somebody else's folder
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except Exception:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    """Run the whole report for ``period`` and return where it was written.

    ``dataset``: the data set of ``settings`` already open (:func:`retention_report.data.open_dataset`),
    so a run of several periods reads and validates the data once; opened here when None.

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
    with using(settings.report.language), _signals_interrupt() as guard:
        try:
            return _run_report(settings, period, config_path=config_path, data=data, out_dir=out_dir,
                               notebooks_dir=notebooks_dir, kernel_name=kernel_name, progress=progress,
                               guard=guard, dataset=dataset)
        except Interrupted:
            raise
        except BaseException:
            # the engine may turn the interruption into its own error ("Query interrupted")
            if guard.received is not None:
                raise Interrupted(guard.received) from None
            raise


def _run_report(
    settings: Settings,
    period: Period,
    *,
    config_path: str | None,
    data: str | None,
    out_dir: Path | None,
    notebooks_dir: Path | None,
    kernel_name: str | None,
    progress: Progress,
    guard: _signals_interrupt,
    dataset: Dataset | None = None,
) -> RunResult:
    import nbformat
    import papermill as pm

    from .data import open_dataset
    from .render import combine_notebooks, render_html, render_pdf
    from .runbook import SectionClock, engine, join_sections

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    shown = Path(out_dir) if out_dir else Path(settings.report.output_dir) / period.label
    # nothing the user owns is replaced (before any work)
    check_report_out(shown, writes=report_writes(settings, notebooks_dir))
    # absolute: papermill changes the (process-wide) working directory while a notebook runs
    final = Path(os.path.abspath(shown))
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final.parent, say=progress)  # what runs killed outright left behind
    # .<name>.tmp-<pid>-<random>: the owning process is recoverable from the name
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    kernels: list[Any] = []
    sockets: Path | None = None
    worker: _NotebookWorker | None = None
    try:
        update_marker(tmp, period.label)  # a folder of this tool, of this process, from the start
        # kernel IPC sockets and connection file (it holds the kernel's key): a short absolute path
        # (unix sockets allow ~100 characters), removed with the run
        sockets = Path(tempfile.mkdtemp(prefix=f"rr-kernel-{os.getpid()}-"))
        # 0. the kernel starts now, in the notebook thread, and imports the report's libraries
        # while this thread reads the data and computes the metrics (issue 13)
        nbs = section_notebooks(settings, notebooks_dir)
        kernel = kernel_name or settings.report.kernel
        kernel = kernel if _kernel_exists(kernel) else "python3"  # ipykernel's own, in this env
        # the kernel's environment holds no password (a section printing os.environ must not put
        # the SMTP or database password into the report)
        from .secrets import kernel_environment

        env = kernel_environment((settings.source.password_env, settings.email.password_env))
        worker = _NotebookWorker(kernel, str(nbs[0].parent) if nbs else None,
                                 _ipc_kernel_manager(sockets, kernels), kernels, env=env)
        # 1. data and metrics (fast path, also validates the data before any notebook runs); the
        # content of the source's files is recorded as it is before they are read (the email command
        # re-renders a report whose data changed since)
        t = time.perf_counter()
        data_hash = data_fingerprint(settings)
        if dataset is None:
            progress(f"[metrics] reading {settings.source_shown()} …")
            ds = open_dataset(settings)
        else:  # opened once for the several periods of one run
            ds = dataset
        from .context import ReportContext, sections_path

        ctx = ReportContext(period, settings, dataset=ds)
        doc = ctx.doc
        metrics_path = write_metrics(doc, tmp / "metrics.json")
        timings["metrics"] = time.perf_counter() - t
        progress(f"[metrics] {ds.quality.rows_used:,} payments, metrics.json written in {timings['metrics']:.1f}s")
        # the sections of every notebook, on the data set already open: the notebooks take them
        # from the run's folder instead of each reopening and re-validating the data
        t = time.perf_counter()
        computed = ctx.precompute(settings.report.sections)
        sections = ctx.save_sections(sections_path(metrics_path))
        timings["sections"] = time.perf_counter() - t
        if computed:
            progress(f"[sections] {', '.join(m.replace('_', ' ') for m in computed)} computed in "
                     f"{timings['sections']:.1f}s")

        # 2. section notebooks: joined into one notebook and executed in one kernel (one kernel
        # start and one import of pandas/matplotlib/Ibis instead of one per section), then split
        # back into the executed section notebooks kept for audit (retention_report.runbook)
        params = notebook_parameters(period, config_path, data, metrics_path)
        names = [nb.name for nb in nbs]
        (tmp / "notebooks").mkdir()
        joined = tmp / "notebooks" / ".report.ipynb"
        nbformat.write(join_sections(nbs), str(joined))
        clock = SectionClock(names, progress)
        t = time.perf_counter()
        try:
            worker.run(lambda km: pm.execute_notebook(
                str(joined),
                str(joined),
                parameters=params,
                kernel_name=kernel,
                km=km,  # started by the worker (its owner: it shuts the kernel down)
                engine_name=engine(),  # the executed notebook written once, at the end
                progress_bar=False,
                log_output=False,
                on_cell_execute=clock.on_cell_execute,
                # a hanging cell fails the run instead of blocking it (and a scheduled run) forever
                execution_timeout=settings.report.cell_timeout_seconds,
            ), meanwhile=_preload_renderers)
        except Exception as exc:  # papermill raises PapermillExecutionError for a failed cell
            clock.abandon()
            failed_nb, cell, count, error = _failure_details(exc, joined, names, clock.last_cell,
                                                             settings.report.cell_timeout_seconds)
            _write_split(joined, names, tmp / "notebooks")
            sections.unlink(missing_ok=True)
            failed = final.with_name(final.name + ".failed")
            update_marker(tmp, period.label, files=written_files(tmp))
            _normal_permissions(tmp)
            if failed.exists() and is_report_folder(failed):  # files the user added there are kept
                _swap_into_place(tmp, failed)
            else:
                if failed.exists() or failed.is_symlink():  # appeared during the run and is not ours: keep both
                    failed = Path(tempfile.mkdtemp(prefix=f"{final.name}.failed-", dir=final.parent))
                os.replace(tmp, failed)
            raise NotebookFailed(failed_nb, cell, count, error, failed / "notebooks" / failed_nb) from None
        clock.finish()
        timings.update(clock.timings)
        timings["notebooks"] = time.perf_counter() - t
        executed = _write_split(joined, names, tmp / "notebooks")

        sections.unlink(missing_ok=True)  # internal to the run, not part of the report

        # 3. render
        t = time.perf_counter()
        combined = combine_notebooks(executed)
        prev, ago = period.previous(), period.year_ago()
        last = ds.quality.last_payment
        # the reader's words, in [report] language (scoped by run_report; i18n.py)
        from .formatting import (
            fmt_datetime,
            period_subtitle,
            period_title,
            report_title,
            source_label,
        )
        from .i18n import _, get_language

        report = {
            "title": report_title(settings.report.title),
            "kicker": _("Sales & retention report"),
            "period_title": period_title(period),
            "date_range": period_subtitle(period),
            "source": source_label(str(doc.get("source") or ds.source_name)),
            "previous_title": period_title(prev),
            "year_ago_title": period_title(ago),
            "generated_at": fmt_datetime(datetime.now().astimezone()),
            "complete": bool(doc.get("complete")),
            "incomplete_text": (
                # TRANSLATORS: %(last)s and %(end)s are ISO dates (2024-03-15)
                _("Incomplete period: the data end on %(last)s, before the period ends on %(end)s. Totals and "
                  "rates for this period will still change.") % {"last": str(last)[:10], "end": period.end.isoformat()}
                if last else _("Incomplete period: there are no payments in the data.")
            ),
            "lang": get_language(),
            "version": __version__,
        }
        html = render_html(combined, report, paths.templates_dir(settings))
        (tmp / "report.html").write_text(html, encoding="utf-8")
        timings["html"] = time.perf_counter() - t
        progress(f"[render] report.html ({len(html) / 1e6:.1f} MB) in {timings['html']:.1f}s")
        t = time.perf_counter()
        render_pdf(html, tmp / "report.pdf", paths.templates_dir(settings))
        timings["pdf"] = time.perf_counter() - t
        progress(f"[render] report.pdf ({(tmp / 'report.pdf').stat().st_size / 1e6:.1f} MB) in {timings['pdf']:.1f}s")

        # 4. move into place, recording what the report was made from (the email command checks it)
        made_from = content_record(settings)
        # files: what this run wrote, so a re-rendering knows the rest of the folder is the user's
        update_marker(tmp, period.label, metrics=made_from, report={**made_from, "data": data_hash},
                      files=written_files(tmp))
        _normal_permissions(tmp)
        with guard.deferred():  # a signal now would leave the old report half moved away
            _swap_into_place(tmp, final)
        stale = final.with_name(final.name + ".failed")
        if stale.exists() and is_report_folder(stale):
            remove_own(stale)  # a file the user put there stays
    except BaseException:
        _kill_kernels(kernels)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if worker is not None:
            worker.close()  # a kernel the notebooks never got to (the data were bad …) is shut down
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)
    # the archive page of the reports folder (reports/index.html); a failure only warns, and a signal
    # now must not make the report, already in place, look failed
    from .archive import update_for

    with guard.deferred():
        update_for(final, settings, say=progress)
    total = time.perf_counter() - t0
    return RunResult(
        out_dir=shown,
        html=shown / "report.html",
        pdf=shown / "report.pdf",
        metrics=shown / "metrics.json",
        notebooks=[shown / "notebooks" / p.name for p in executed],
        seconds=total,
        timings=timings,
    )


def _kernel_exists(name: str) -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return name in KernelSpecManager().find_kernel_specs()
    except Exception:  # pragma: no cover
        return False



def _ipc_kernel_manager(sockets: Path, started: list[Any]) -> type:
    """A kernel manager talking to the kernel over local IPC sockets in the run's temporary folder:
    no TCP ports to collide when reports run in parallel, nothing reachable from the network, and no
    "running over TCP without encryption" warning in the terminal. The connection file (with the
    kernel's key) is written there too, and every manager is recorded in ``started`` so an
    interrupted run can stop its kernel."""
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return str(sockets / "k")

        @default("connection_file")
        def _default_connection_file(self) -> str:
            return str(sockets / f"kernel-{uuid.uuid4().hex[:12]}.json")

    return IPCKernelManager


# What the kernel imports while it starts (IPKernelApp.exec_lines, run before the first cell and
# not counted as one): the libraries of the section notebooks' first cell, so that cell does not
# wait for them once the metrics are done.
_KERNEL_WARMUP = ("import matplotlib.pyplot, seaborn, retention_report.notebook, retention_report.context, "
                  "retention_report.plots, retention_report.tables")
_KERNEL_ARGS = [
    # jupyter_client interrupts a kernel before shutting it down, which the kernel app logs as an
    # ERROR on our stderr; cell errors come back as messages, not this log
    "--IPKernelApp.log_level=CRITICAL",
    f"--IPKernelApp.exec_lines={_KERNEL_WARMUP}",
]


def _preload_renderers() -> None:
    """Import WeasyPrint (0.6 s) and nbconvert's exporter while the notebooks run, not after."""
    import nbconvert.exporters.html  # noqa: F401
    import weasyprint  # noqa: F401


class _NotebookWorker:
    """The thread that runs the report's notebooks. Made before the metrics, it starts the kernel at
    once — the kernel process imports pandas, matplotlib and the package on the second core while
    the main thread reads the data and computes the metrics — and then waits for :meth:`run`.

    Papermill runs in this thread, not the main one: nbclient installs its own SIGINT/SIGTERM
    handlers when it runs in the main thread, which swallow Ctrl-C (the notebook runs on) and leave
    SIGTERM to kill the process without clean-up; here it cannot, so the signals reach
    :class:`_signals_interrupt`. The kernel manager lives in this thread's event loop (jupyter_core's
    ``run_sync``), the one nbclient then uses with it. On an interruption the kernels are killed
    (the thread then ends with a dead-kernel error, ignored) before re-raising. (Waiting polls an
    event with ``time.sleep``: ``Thread.join`` interrupted by a signal handler's exception may report
    a running thread as stopped.)"""

    def __init__(self, kernel_name: str, cwd: str | None, manager_class: type, kernels: list[Any],
                 env: dict[str, str] | None = None) -> None:
        self._kernels = kernels
        self._env = env
        self._job: Callable[[Any], Any] | None = None
        self._go = threading.Event()
        self._finished = threading.Event()  # the job's outcome is known
        self._done = threading.Event()  # and the kernel is shut down: the thread ends
        self._outcome: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._target, args=(kernel_name, cwd, manager_class),
                                         name="retention-report-notebook", daemon=True)
        self._thread.start()

    def _target(self, kernel_name: str, cwd: str | None, manager_class: type) -> None:
        from jupyter_core.utils import run_sync

        km = None
        try:
            km = manager_class(kernel_name=kernel_name)
            extra: dict[str, Any] = {} if self._env is None else {"env": self._env}
            run_sync(km.start_kernel)(extra_arguments=list(_KERNEL_ARGS), cwd=cwd, **extra)
            self._go.wait()
            if self._job is not None:
                self._outcome["value"] = self._job(km)
        except BaseException as exc:  # handed to the main thread
            self._outcome["error"] = exc
        finally:
            # the main thread goes on rendering while the kernel shuts down (a second or so);
            # close() waits for the shutdown
            self._finished.set()
            if km is not None:
                with contextlib.suppress(Exception):
                    if run_sync(km.is_alive)():
                        run_sync(km.shutdown_kernel)()
            self._done.set()

    def run(self, job: Callable[[Any], Any], meanwhile: Callable[[], None] | None = None) -> Any:
        """Run ``job(kernel_manager)`` (a papermill execution) in the worker, wait for it here and
        return its value or raise its error; ``meanwhile`` runs here while the worker works."""
        self._job = job
        self._go.set()
        try:
            if meanwhile is not None:
                meanwhile()
            while not self._finished.is_set():
                time.sleep(0.05)
        except BaseException:
            import logging

            logging.disable(logging.CRITICAL)  # no "Kernel died while waiting for execute reply"
            try:
                _kill_kernels(self._kernels)
                deadline = time.monotonic() + 20
                while not self._done.is_set() and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                logging.disable(logging.NOTSET)
            raise
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome.get("value")

    def close(self, timeout: float = 20) -> None:
        """Without a job (the run failed before its notebooks): shut the kernel down; then wait
        for the thread to end."""
        self._go.set()
        self._done.wait(timeout)


def _kill_kernels(kernels: list[Any]) -> None:
    """Kill the kernel processes (their process groups) the run started that still run. Only a
    kernel whose process is still our unreaped child is signalled, so its id cannot belong to
    another process."""
    for km in kernels:
        prov = getattr(km, "provisioner", None)
        proc = getattr(prov, "process", None)
        if proc is None or proc.poll() is not None:
            continue
        pgid = getattr(prov, "pgid", None)
        try:
            if pgid and pgid == proc.pid:  # the kernel leads its own session (start_new_session)
                os.killpg(pgid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except Exception:  # best effort
            pass


def _normal_permissions(root: Path) -> None:
    """mkdtemp/mkstemp create owner-only (0700/0600) entries; give the report the permissions any
    file written by the user would get (the umask), so colleagues and web servers can read it."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
