"""``retention-report init DIR``: a report project of an analyst team's own.

The project holds copies of the package's section notebooks and templates, which the team
customises and keeps in its own repository, and runs them with the installed package::

    DIR/
      notebooks/     the section notebooks (01_summary.ipynb …), outputs cleared
      templates/     report/ (nbconvert template, report.css) and email/ (the message)
      config.toml    every key of config/example.toml, commented out (the defaults), except
                     [report] notebooks_dir = "notebooks" and templates_dir = "templates"
      Makefile       report, reports, metrics, email, validate, sample, kernel, lab, git-setup, help —
                     calling the installed ``retention-report`` (no virtual environment of its own)
      .gitignore     reports/, *.failed/, .env, data/
      .gitattributes notebooks stripped of outputs on commit, diffed by cell (``make git-setup``)
      README.md      how to use it

DIR must be new, an empty folder or a fresh ``git clone`` (only ``.git`` in it); the project is written into a temporary sibling folder and
renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from .paths import EXAMPLE_CONFIG, NOTEBOOKS_DIR, PROJECT_TEMPLATE_DIR, TEMPLATES_DIR

__all__ = ["ScaffoldError", "init_project", "project_config"]

CONFIG_HEADER = """\
# retention-report configuration of this report project — every key is optional; unknown keys are
# errors. `make report PERIOD=2024-Q1` reads it (CONFIG=config.toml is the Makefile's default); the
# commented-out lines show the defaults: uncomment and change what you need.
# Passwords never go in this file: name an environment variable (or put it in the git-ignored .env).
"""

# what a fresh clone holds: the project goes in beside it
_REPOSITORY = {".git"}

# keys set in a project's config: its own notebooks and templates (relative to config.toml)
PROJECT_KEYS = {"notebooks_dir": "notebooks", "templates_dir": "templates"}


class ScaffoldError(ValueError):
    """The project folder cannot be created (it exists and is not empty, or is not writable)."""


def project_config(example: str) -> str:
    """config.toml of a new project from the text of config/example.toml: the example's header
    replaced, every key line commented out (table headers kept, so uncommenting a key is enough),
    and the :data:`PROJECT_KEYS` set."""
    body = example.split("\n\n", 1)[1] if example.startswith("#") else example  # drop the header
    lines = []
    for line in body.splitlines():
        key = re.match(r"^([A-Za-z_]+)\s*=", line)
        own = re.match(r'^(\w+\s*=\s*)"[^"]*"( *)(.*)$', line)
        if key and own and key.group(1) in PROJECT_KEYS:
            value = f'"{PROJECT_KEYS[key.group(1)]}"'
            pad = " " * max(1, len(own.group(2)) + 2 - len(value))  # the comment stays in its column
            line = own.group(1) + value + (pad + own.group(3) if own.group(3) else "")
        elif key:
            line = "# " + line
        lines.append(line)
    return CONFIG_HEADER + "\n" + "\n".join(lines) + "\n"


def _skip(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith((".", "__"))]  # .ipynb_checkpoints, __pycache__


def _write_project(root: Path) -> None:
    (root / "notebooks").mkdir()
    for nb in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        shutil.copyfile(nb, root / "notebooks" / nb.name)
    shutil.copytree(TEMPLATES_DIR, root / "templates", ignore=_skip, copy_function=shutil.copyfile)
    (root / "config.toml").write_text(project_config(EXAMPLE_CONFIG.read_text(encoding="utf-8")),
                                      encoding="utf-8")
    for name, dest in (("Makefile", "Makefile"), ("README.md", "README.md"), ("gitignore", ".gitignore"),
                       ("gitattributes", ".gitattributes")):
        shutil.copyfile(PROJECT_TEMPLATE_DIR / name, root / dest)


def _move_into(tmp: Path, target: Path) -> None:
    """Move the entries of ``tmp`` into the existing folder ``target`` (which holds only the
    repository's ``.git``), none over an existing one; on a failure the ones moved are taken back
    out, so nothing is left half-written; ``tmp`` is removed."""
    moved: list[Path] = []
    try:
        for entry in sorted(tmp.iterdir()):
            dest = target / entry.name
            if dest.exists() or dest.is_symlink():
                raise FileExistsError(errno.EEXIST, "appeared while the project was written", str(dest))
            os.rename(entry, dest)
            moved.append(dest)
    except BaseException:
        for dest in moved:
            os.rename(dest, tmp / dest.name)
        raise
    tmp.rmdir()


def init_project(directory: str | os.PathLike[str]) -> Path:
    """Create a report project in ``directory`` (new, an existing empty folder, or one holding only
    ``.git``: a fresh clone); returns it.

    Raises
    ------
    ScaffoldError
        ``directory`` is a file, a symbolic link or a folder with files in it, or cannot be written.
    """
    target = Path(os.path.abspath(Path(directory).expanduser()))
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ScaffoldError(f"{directory} exists and is not a folder; name a new folder")
    there = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    if [n for n in there if n not in _REPOSITORY]:
        raise ScaffoldError(f"{directory} exists and is not empty; name a new or empty folder (one holding "
                            "only .git, a fresh git clone, is fine)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.init-", dir=target.parent))
    except OSError as exc:
        raise ScaffoldError(f"cannot create {directory}: {exc.strerror or exc}") from None
    try:
        _write_project(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it owner-only
        if there:  # a fresh clone: the project's files move in beside .git
            _move_into(tmp, target)
        else:
            os.rename(tmp, target)  # replaces an empty folder; fails if files appeared in it meanwhile
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ScaffoldError(f"cannot create {directory}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
