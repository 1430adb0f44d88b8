"""One report run: metrics → section notebooks (papermill) → HTML + PDF, written atomically.

Everything is written to a temporary folder next to the output and moved into
``<output_dir>/<PERIOD>/`` only when every step succeeded. A failed notebook cell stops the run with
:class:`NotebookFailed` naming the notebook and cell; the partially executed notebooks are kept in
``<output_dir>/<PERIOD>.failed/`` and a previous good report is left untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings
from .periods import Period

__all__ = [
    "NOTEBOOKS_DIR",
    "SECTION_NOTEBOOKS",
    "NotebookFailed",
    "RunResult",
    "compute_metrics",
    "write_metrics",
    "run_report",
    "section_notebooks",
    "notebook_parameters",
]

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
# section name (config report.sections) → notebook file, in report order
SECTION_NOTEBOOKS = {
    "summary": "01_summary.ipynb",
    "new_vs_returning": "02_new_vs_returning.ipynb",
    "segments": "03_segments.ipynb",
    "customer_base": "04_customer_base.ipynb",
    "cohorts": "05_cohorts.ipynb",
    "behaviour": "06_behaviour_ltv.ipynb",
    "appendix": "07_appendix.ipynb",
}

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


def section_notebooks(settings: Settings, notebooks_dir: Path | None = None) -> list[Path]:
    base = notebooks_dir or NOTEBOOKS_DIR
    return [base / SECTION_NOTEBOOKS[s] for s in SECTION_NOTEBOOKS if s in settings.report.sections]


def compute_metrics(settings: Settings, period: Period, ds: Any = None) -> dict[str, Any]:
    """The metrics.json document of ``period`` (opens the data set unless given)."""
    from .context import ReportContext

    ctx = ReportContext(period, settings)
    if ds is not None:
        ctx.__dict__["ds"] = ds
    return ctx.doc


def write_metrics(doc: dict[str, Any], path: Path) -> Path:
    """Write metrics.json atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".metrics.", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def notebook_parameters(period: Period, config_path: str | None, data: str | None, metrics_path: Path) -> dict[str, Any]:
    """Parameters passed to every section notebook: only non-secret values (papermill writes
    them into the executed notebook)."""
    if data and "://" in data and re.search(r"://[^/@]*:[^/@]*@", data):
        raise ValueError("a password in the data URL would be written into the notebooks; "
                         "put it in an environment variable named by source.password_env")
    return {
        "period": period.label,
        "config_path": str(Path(config_path).resolve()) if config_path else "",
        "data": str(data or ""),
        "metrics_path": str(metrics_path.resolve()),
    }


def _failure_details(exc: Exception, nb_path: Path) -> tuple[int | None, int | None, str]:
    """(cell index, execution count, error line) of the failed cell in an executed notebook."""
    import nbformat

    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell_idx = exec_count = None
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
        # number cells as in the source notebook: skip the cells papermill inserted
        inserted = {"injected-parameters", "papermill-error-cell-tag"}
        own = [c for c in nb.cells if not inserted & set(c.get("metadata", {}).get("tags", []))]
        for i, cell in enumerate(own):
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                cell_idx = i + 1
                exec_count = cell.get("execution_count")
                break
    except Exception:  # pragma: no cover - the notebook may be unreadable if the kernel died
        pass
    return cell_idx, exec_count, f"{ename}: {evalue}".strip()


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with two renames; the old report survives until the new one is
    in place."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{int(time.time())}")
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
) -> RunResult:
    """Run the whole report for ``period`` and return where it was written.

    Raises
    ------
    NotebookFailed
        A cell of a section notebook raised (details and the kept notebook in the message).
    retention_report.data.DataError
        The data source is unreachable or its data is invalid (before any notebook runs).
    """
    import papermill as pm

    from .data import open_dataset
    from .render import combine_notebooks, render_html, render_pdf

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    final = Path(out_dir) if out_dir else Path(settings.report.output_dir) / period.label
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    # kernel IPC sockets: a short absolute path (unix sockets allow ~100 characters)
    sockets = Path(tempfile.mkdtemp(prefix="rr-kernel-"))
    try:
        # 1. data and metrics (fast path, also validates the data before any notebook runs)
        progress(f"[metrics] reading {settings.source.name or settings.source.path or settings.source.url or 'sample data'} …")
        t = time.perf_counter()
        ds = open_dataset(settings)
        from .context import ReportContext, sections_path

        ctx = ReportContext(period, settings)
        ctx.__dict__["ds"] = ds
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

        # 2. section notebooks
        params = notebook_parameters(period, config_path, data, metrics_path)
        nbs = section_notebooks(settings, notebooks_dir)
        executed: list[Path] = []
        (tmp / "notebooks").mkdir()
        kernel = kernel_name or settings.report.kernel
        kernel = kernel if _kernel_exists(kernel) else "python3"  # ipykernel's own, in this env
        for i, nb in enumerate(nbs, 1):
            out_nb = tmp / "notebooks" / nb.name
            t = time.perf_counter()
            progress(f"[{i}/{len(nbs)}] {nb.name} …")
            try:
                pm.execute_notebook(
                    str(nb),
                    str(out_nb),
                    parameters=params,
                    kernel_name=kernel,
                    progress_bar=False,
                    log_output=False,
                    cwd=str(nb.parent),
                    kernel_manager_class=_ipc_kernel_manager(sockets),
                )
            except Exception as exc:  # papermill raises PapermillExecutionError for a failed cell
                cell, count, error = _failure_details(exc, out_nb)
                sections.unlink(missing_ok=True)
                failed = final.with_name(final.name + ".failed")
                if failed.exists():
                    shutil.rmtree(failed)
                _normal_permissions(tmp)
                os.replace(tmp, failed)
                raise NotebookFailed(nb.name, cell, count, error, failed / "notebooks" / nb.name) from None
            timings[nb.name] = time.perf_counter() - t
            executed.append(out_nb)
            progress(f"[{i}/{len(nbs)}] {nb.name} done in {timings[nb.name]:.1f}s")

        sections.unlink(missing_ok=True)  # internal to the run, not part of the report

        # 3. render
        t = time.perf_counter()
        combined = combine_notebooks(executed)
        prev, ago = period.previous(), period.year_ago()
        last = ds.quality.last_payment
        report = {
            "title": settings.report.title,
            "kicker": "Sales & retention report",
            "period_title": period.title,
            "date_range": period.date_range,
            "source": doc.get("source") or ds.source_name,
            "previous_title": prev.title,
            "year_ago_title": ago.title,
            "generated_at": datetime.now().astimezone().strftime("%d %b %Y %H:%M %Z").strip(),
            "complete": bool(doc.get("complete")),
            "incomplete_text": (
                f"Incomplete period: the data end on {str(last)[:10]}, before the period ends on "
                f"{period.end.isoformat()}. Totals and rates for this period will still change."
                if last else "Incomplete period: there are no payments in the data."
            ),
            "version": __version__,
        }
        html = render_html(combined, report)
        (tmp / "report.html").write_text(html, encoding="utf-8")
        timings["html"] = time.perf_counter() - t
        progress(f"[render] report.html ({len(html) / 1e6:.1f} MB) in {timings['html']:.1f}s")
        t = time.perf_counter()
        render_pdf(html, tmp / "report.pdf")
        timings["pdf"] = time.perf_counter() - t
        progress(f"[render] report.pdf ({(tmp / 'report.pdf').stat().st_size / 1e6:.1f} MB) in {timings['pdf']:.1f}s")

        # 4. move into place
        _normal_permissions(tmp)
        _swap_into_place(tmp, final)
        stale = final.with_name(final.name + ".failed")
        if stale.exists():
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    total = time.perf_counter() - t0
    return RunResult(
        out_dir=final,
        html=final / "report.html",
        pdf=final / "report.pdf",
        metrics=final / "metrics.json",
        notebooks=[final / "notebooks" / p.name for p in executed],
        seconds=total,
        timings=timings,
    )


def _kernel_exists(name: str) -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return name in KernelSpecManager().find_kernel_specs()
    except Exception:  # pragma: no cover
        return False



def _ipc_kernel_manager(sockets: Path) -> type:
    """A kernel manager talking to the kernel over local IPC sockets in the run's temporary folder:
    no TCP ports to collide when reports run in parallel, nothing reachable from the network, and no
    "running over TCP without encryption" warning in the terminal."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return str(sockets / "k")

    return IPCKernelManager


def _normal_permissions(root: Path) -> None:
    """mkdtemp/mkstemp create owner-only (0700/0600) entries; give the report the permissions any
    file written by the user would get (the umask), so colleagues and web servers can read it."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
