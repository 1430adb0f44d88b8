"""The Jupyter kernel the notebooks name (``retention-report``): this environment's Python, with
IPython's ``autoreload`` active for the package, so an edit to ``retention_report/`` shows up in
JupyterLab at the next cell run without restarting the kernel.

Autoreload is part of the kernel spec — its ``argv`` loads the extension and calls
:func:`autoreload_package` at start — not of a profile in the user's home folder or of a cell in
each notebook: every notebook opened with the kernel (JupyterLab, ``make lab``, a report run) gets
it, and ``retention-report kernel`` (run by ``make setup`` and ``make lab``) is the one place that
sets it.

Why the package only (``%autoreload 1`` with the package's modules marked) and not
``%autoreload 2``: mode 2 checks the modification time of every loaded module before each cell —
about 1,900 with pandas, matplotlib and Ibis, 13 ms a cell on the shared 2-core machine
(2026-11-24), half a second per report run — while the package's 40-odd modules cost well under a
millisecond. An analyst who wants their own helper modules reloaded too runs ``%autoreload 2``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["AUTORELOAD_ARGS", "PACKAGE", "autoreload_package", "install_kernel"]

PACKAGE = "retention_report"
# IPKernelApp is an InteractiveShellApp: extensions to load and lines to run at start
AUTORELOAD_ARGS = (
    "--InteractiveShellApp.extensions=autoreload",
    f"--InteractiveShellApp.exec_lines=__import__('{PACKAGE}.kernelspec').kernelspec.autoreload_package()",
)


def install_kernel(name: str = "retention-report", *, prefix: str | None = None,
                   autoreload: bool = True) -> Path:
    """Register this environment's Python as the Jupyter kernel ``name`` in ``prefix`` (default
    this environment's, ``sys.prefix``: ``<prefix>/share/jupyter/kernels/<name>``), with
    :data:`AUTORELOAD_ARGS` unless ``autoreload`` is False; returns the kernel's folder. Replaces
    a kernel of the same name there."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    display = f"{name} (Python {sys.version_info.major}.{sys.version_info.minor})"
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_kernel_spec(Path(tmp) / "spec", overrides={"display_name": display},
                                 extra_arguments=list(AUTORELOAD_ARGS) if autoreload else None)
        path = KernelSpecManager().install_kernel_spec(spec, name, user=False, prefix=prefix or sys.prefix)
    return Path(path)


def autoreload_package(shell: Any = None, package: str = PACKAGE) -> None:
    """Turn on ``autoreload`` for ``package``: ``%autoreload 1`` (reload only the modules marked
    for it), with every module of the package marked — those loaded now, and after each cell those
    the cell imported. Falls back to ``%autoreload 2`` if IPython's reloader is not where this
    expects it. Does nothing outside IPython."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        return
    shell.extension_manager.load_extension("autoreload")  # no-op when loaded
    try:
        reloader = shell.magics_manager.registry["AutoreloadMagics"]._reloader
        reloader.mark_module_reloadable  # noqa: B018 - the API this relies on
    except (KeyError, AttributeError):  # pragma: no cover - another IPython
        shell.run_line_magic("autoreload", "2")
        return
    shell.run_line_magic("autoreload", "1")
    prefix = package + "."

    def mark() -> None:
        for name in list(sys.modules):
            if (name == package or name.startswith(prefix)) and name not in reloader.modules \
                    and name not in reloader.skip_modules:
                reloader.mark_module_reloadable(name)

    mark()
    shell.events.register("post_execute", mark)
