"""Git habits for notebooks: outputs stripped on commit, diffs that show cells, not JSON.

Two choices, made once here:

- **Stripping: nbstripout as a git filter**, not a pre-commit hook. The filter cleans what git
  stores — on ``git add`` — and leaves the working copy alone: the analyst keeps the charts in the
  notebook open in JupyterLab while every commit carries the notebook without outputs, execution
  counts or run metadata. Nothing is rewritten behind the analyst's back and no commit is
  refused (a pre-commit hook rewrites the file, fails the commit and asks to add it again), and
  it needs no hook environments downloaded at setup. Cell ids are kept (``--keep-id``): the
  committed notebooks are exactly what the filter produces, so turning it on changes none of
  them, and inserting a cell does not renumber the rest. What JupyterLab writes on every save is
  dropped too (:func:`clean`): the running kernel's display name ("retention-report (Python
  3.11)" → "retention-report (Python 3)") and ``language_info`` beyond its ``name`` (version,
  mimetype, CodeMirror mode …), so opening and saving a notebook changes nothing git stores.
- **Diffs: nbdime's git diff driver**, not jupytext pairing. ``git diff`` shows changed cells'
  sources and metadata (tags) cell by cell, without outputs and ids; ``nbdiff-web`` and JupyterLab's
  nbdime extension show the same side by side, rendered. Pairing would put a second copy of every
  notebook (a ``.py`` file) next to it — two files to keep in step in ``notebooks/``, in the wheel
  and in every report project.

The filter and diff driver are commands, which git keeps in the repository's local config (never in
the repository itself); ``.gitattributes`` (committed) names them for ``*.ipynb``. A clone without
the local config still works: git then stores notebooks as they are (a test checks the committed
notebooks are clean) and diffs them as text. :func:`configure` writes both;
``retention-report git-setup`` (run by ``make setup``) calls it.
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["ATTRIBUTES", "GitSetupError", "clean", "configure", "git_config"]

ATTRIBUTES = "*.ipynb filter=nbstripout diff=jupyternotebook"
# nbstripout's own defaults (its command line adds them; its API does not)
STRIP_KEYS = ("metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
              "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
              "cell.metadata.scrolled")
DIFF_ARGS = ("--ignore-outputs", "--ignore-id", "--ignore-details")


class GitSetupError(RuntimeError):
    """nbstripout is not installed, or git could not be configured."""


def git_config(python: str | None = None) -> dict[str, str]:
    """The local git config keys :func:`configure` sets, running the tools with ``python``
    (default this interpreter): the ``nbstripout`` filter and the ``jupyternotebook`` diff driver."""
    py = shlex.quote(python or sys.executable)
    return {
        "filter.nbstripout.clean": f"{py} -m {__name__}",
        "filter.nbstripout.smudge": "cat",
        "diff.jupyternotebook.command": f"{py} -m nbdime.vcs.git.diffdriver diff {' '.join(DIFF_ARGS)}",
    }


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def configure(folder: str | Path = ".", python: str | None = None) -> list[str]:
    """Configure the git repository holding ``folder`` for notebooks: the local config keys of
    :func:`git_config`, and :data:`ATTRIBUTES` in ``folder/.gitattributes`` (added when missing).
    Returns what was done, one line each; nothing when ``folder`` is not in a git repository.

    Raises
    ------
    GitSetupError
        nbstripout is not installed (``pip install 'retention-report[git]'``), or git failed.
    """
    folder = Path(folder).resolve()
    top = _git("rev-parse", "--show-toplevel", cwd=folder)
    if top.returncode != 0:
        return []
    if importlib.util.find_spec("nbstripout") is None:
        raise GitSetupError("nbstripout is not installed: pip install 'retention-report[git]' "
                            "(make setup does)")
    done = []
    keys = git_config(python)
    if importlib.util.find_spec("nbdime") is None:
        keys.pop("diff.jupyternotebook.command")
        done.append("nbdime is not installed: notebook diffs stay JSON (pip install 'retention-report[git]')")
    for key, value in keys.items():
        r = _git("config", "--local", key, value, cwd=folder)
        if r.returncode != 0:
            raise GitSetupError(f"git config {key} failed: {r.stderr.strip()}")
    done.append(f"git filter 'nbstripout' and diff driver 'jupyternotebook' set in {top.stdout.strip()}/.git/config")
    attributes = folder / ".gitattributes"
    text = attributes.read_text(encoding="utf-8") if attributes.is_file() else ""
    if ATTRIBUTES not in text.splitlines():
        attributes.write_text(text + ("" if not text or text.endswith("\n") else "\n") + ATTRIBUTES + "\n",
                              encoding="utf-8")
        done.append(f"{attributes}: {ATTRIBUTES}")
    return done


def clean(text: str) -> str:
    """What git stores of a notebook (the ``nbstripout`` filter's clean command): nbstripout with
    ``--keep-id`` (no outputs, execution counts or run metadata), plus the kernel's display name
    made "<kernel> (Python 3)" — the major version only, as the shipped notebooks have it — and
    ``language_info`` cut to its ``name``: what saving in JupyterLab rewrites on every machine."""
    import warnings

    import nbformat
    from nbstripout import strip_output

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nb = strip_output(nb, keep_output=False, keep_count=False, keep_id=True, extra_keys=list(STRIP_KEYS))
    meta = nb.get("metadata", {})
    spec = meta.get("kernelspec")
    if isinstance(spec, dict) and spec.get("name") and spec.get("language", "python") == "python":
        spec["display_name"] = f"{spec['name']} (Python 3)"
    info = meta.get("language_info")
    if isinstance(info, dict) and "name" in info:
        meta["language_info"] = {"name": info["name"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return str(nbformat.writes(nb)) + "\n"


def main() -> None:
    """The git filter: a notebook on stdin, what git stores of it on stdout (:func:`clean`)."""
    import io

    source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8").read()
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    out.write(clean(source))
    out.flush()


if __name__ == "__main__":
    main()
