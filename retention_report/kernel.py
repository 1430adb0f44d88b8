"""The notebook kernel of a report run: started early in a worker thread, run over IPC sockets,
killed cleanly on SIGINT/SIGTERM.

* :class:`NotebookWorker` — the thread that starts the kernel at once (it imports the report's
  libraries while the main thread reads the data and computes the metrics) and then runs the
  joined section notebook in it (papermill), away from the main thread's signal handlers;
* :func:`ipc_kernel_manager` — a kernel manager talking over unix sockets in the run's private
  folder (no TCP ports, nothing reachable from the network);
* :class:`SignalGuard` and :class:`Interrupted` — SIGINT and SIGTERM stop a run, except while its
  report is moved into place; :func:`kill_kernels` stops the kernels a stopped run started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["Interrupted", "SignalGuard", "NotebookWorker", "ipc_kernel_manager", "kernel_exists", "kill_kernels",
           "preload_renderers", "KERNEL_ARGS"]


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM (cron, systemd, CI); everything it wrote
    was removed. ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


class SignalGuard:
    """While active (main thread only), SIGINT and SIGTERM raise :class:`Interrupted` — except
    inside :meth:`deferred` (the final move into place), where a signal is only recorded in
    ``pending``: it came too late to stop the run, which completes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> SignalGuard:
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


def kernel_exists(name: str) -> bool:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return name in KernelSpecManager().find_kernel_specs()
    except Exception:  # pragma: no cover
        return False



def ipc_kernel_manager(sockets: Path, started: list[Any]) -> type:
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
KERNEL_WARMUP = ("import matplotlib.pyplot, seaborn, retention_report.notebook, retention_report.context, "
                  "retention_report.plots, retention_report.tables")
KERNEL_ARGS = [
    # jupyter_client interrupts a kernel before shutting it down, which the kernel app logs as an
    # ERROR on our stderr; cell errors come back as messages, not this log
    "--IPKernelApp.log_level=CRITICAL",
    f"--IPKernelApp.exec_lines={KERNEL_WARMUP}",
]


def preload_renderers() -> None:
    """Import WeasyPrint (0.6 s) and nbconvert's exporter while the notebooks run, not after."""
    import nbconvert.exporters.html  # noqa: F401
    import weasyprint  # noqa: F401


class NotebookWorker:
    """The thread that runs the report's notebooks. Made before the metrics, it starts the kernel at
    once — the kernel process imports pandas, matplotlib and the package on the second core while
    the main thread reads the data and computes the metrics — and then waits for :meth:`run`.

    Papermill runs in this thread, not the main one: nbclient installs its own SIGINT/SIGTERM
    handlers when it runs in the main thread, which swallow Ctrl-C (the notebook runs on) and leave
    SIGTERM to kill the process without clean-up; here it cannot, so the signals reach
    :class:`SignalGuard`. The kernel manager lives in this thread's event loop (jupyter_core's
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
            run_sync(km.start_kernel)(extra_arguments=list(KERNEL_ARGS), cwd=cwd, **extra)
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
                kill_kernels(self._kernels)
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


def kill_kernels(kernels: list[Any]) -> None:
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
