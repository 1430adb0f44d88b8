"""Where the package finds its notebooks, templates, example config and sample data (one module).

Two layouts, decided once at import:

- **a checkout** (the source tree, run directly or installed editable with ``pip install -e .``):
  the project's own top-level ``notebooks/``, ``templates/`` and ``config/example.toml`` — the files
  the analysts edit — and the sample data in ``data/sample/payments.parquet``;
- **an installed wheel** (``pip install .``): the copies the build step (``setup.py``) ships inside
  the package, ``retention_report/_resources/{notebooks,templates,config}``, and the sample data
  in the user's cache (``$XDG_CACHE_HOME/retention-report/sample/``, default ``~/.cache/…``; the
  platform's own cache folder elsewhere, by platformdirs), never in site-packages.

A report project made by ``retention-report init`` keeps its own copies: its ``config.toml`` sets
``[report] notebooks_dir`` and ``templates_dir`` (relative to the config file's folder, see
:func:`retention_report.config.load_settings`), and :func:`notebooks_dir` / :func:`templates_dir`
resolve a run's folders: ``--notebooks`` on the command line, else the config, else the package's.

A notebook opened in JupyterLab runs in its own folder (``notebooks/``), while ``make report`` and
the command line run in the project's root: :func:`project_root` finds that root from the
notebook's folder, so a relative ``config_path`` or ``data`` means the same file in both
(:func:`retention_report.context.open_report`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "CHECKOUT_ROOT",
    "EXAMPLE_CONFIG",
    "NOTEBOOKS_DIR",
    "PROJECT_MARKERS",
    "PROJECT_TEMPLATE_DIR",
    "RESOURCES_DIR",
    "SAMPLE_PATH",
    "TEMPLATES_DIR",
    "notebooks_dir",
    "project_root",
    "templates_dir",
]

PACKAGE_DIR = Path(__file__).resolve().parent


def _checkout_root(root: Path) -> Path | None:
    """The project root when the package runs from a source checkout, else None."""
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() and (root / "templates").is_dir():
        return root
    return None


CHECKOUT_ROOT: Path | None = _checkout_root(PACKAGE_DIR.parent)
# the folder holding notebooks/, templates/ and config/example.toml: the checkout, or the copies
# shipped in the wheel (same layout)
RESOURCES_DIR: Path = CHECKOUT_ROOT or PACKAGE_DIR / "_resources"
NOTEBOOKS_DIR: Path = RESOURCES_DIR / "notebooks"
TEMPLATES_DIR: Path = RESOURCES_DIR / "templates"  # report/ (nbconvert) and email/ (Jinja)
EXAMPLE_CONFIG: Path = RESOURCES_DIR / "config" / "example.toml"
# the Makefile, README.md and gitignore of a report project (`retention-report init`; package data)
PROJECT_TEMPLATE_DIR: Path = PACKAGE_DIR / "_project"


def _sample_path() -> Path:
    """The embedded sample's Parquet file: ``$RETENTION_REPORT_SAMPLE`` if set; in a checkout
    ``data/sample/payments.parquet`` (absolute, so notebooks running in another working directory
    find the same file); installed, the user's cache (shared by all report projects, generated once):
    platformdirs' ``user_cache_path`` — ``$XDG_CACHE_HOME`` (when absolute, as the XDG spec says) or
    ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows."""
    override = os.environ.get("RETENTION_REPORT_SAMPLE")
    if override:
        return Path(override).expanduser().resolve()
    if CHECKOUT_ROOT is not None:
        return CHECKOUT_ROOT / "data" / "sample" / "payments.parquet"
    from platformdirs import user_cache_path

    return user_cache_path("retention-report", appauthor=False) / "sample" / "payments.parquet"


SAMPLE_PATH: Path = _sample_path()


def notebooks_dir(settings: Settings, override: str | os.PathLike[str] | None = None) -> Path:
    """The section notebooks of a run: ``override`` (``--notebooks``), else ``report.notebooks_dir``
    of the config, else the package's :data:`NOTEBOOKS_DIR`."""
    chosen = override or settings.report.notebooks_dir
    return Path(chosen).expanduser() if chosen else NOTEBOOKS_DIR


def templates_dir(settings: Settings) -> Path:
    """The template folder of a run (``report/`` for nbconvert, ``email/`` for the message):
    ``report.templates_dir`` of the config, else the package's :data:`TEMPLATES_DIR`."""
    chosen = settings.report.templates_dir
    return Path(chosen).expanduser() if chosen else TEMPLATES_DIR


# what marks a project's root: the checkout's pyproject.toml, a report project's config.toml
# (`retention-report init`) or a Makefile (`make report` runs there)
PROJECT_MARKERS: tuple[str, ...] = ("pyproject.toml", "config.toml", "Makefile")


def project_root(start: str | os.PathLike[str] | None = None) -> tuple[Path | None, list[Path]]:
    """The project root above ``start`` (default: the working directory, i.e. a notebook's folder in
    JupyterLab): the nearest folder, ``start`` itself included, holding one of
    :data:`PROJECT_MARKERS`. Returns ``(root, looked_in)``: the root, or None when there is none
    up to the file system's root, and the folders looked in (for error messages)."""
    here = Path(os.path.abspath(Path(start or os.getcwd()).expanduser()))
    looked: list[Path] = []
    for folder in (here, *here.parents):
        looked.append(folder)
        if any((folder / m).is_file() for m in PROJECT_MARKERS):
            return folder, looked
    return None, looked
