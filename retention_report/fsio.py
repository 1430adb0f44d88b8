"""Atomic file writes: a reader sees the previous file or the new one, never half of one, and an
interrupted write leaves nothing behind.

The one way this package replaces a file (metrics.json, the report marker, the section cache, the
email log and ``email.eml``, the sample Parquet file): write a temporary file in the same folder
(``.<name>.<random>``: hidden, and recognised as such by :mod:`retention_report.outputs`), then
``os.replace`` it onto the target — a rename within one file system, atomic on POSIX and Windows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "pid_alive", "protected_folder", "write_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path | str, *, mode: int | None = None, fsync: bool = False) -> Iterator[Path]:
    """A temporary file next to ``path`` for the block to write (by name, for writers that want a
    path, e.g. ``pyarrow.parquet.write_table``); renamed onto ``path`` when the block succeeds,
    removed when it fails or is interrupted. Creates ``path``'s folder if missing.

    Parameters
    ----------
    mode
        Permissions of the written file; ``None``: those of any newly created file (0o666 minus the
        umask).
    fsync
        Flush the file to disk before the rename (survives a power loss, costs a disk sync).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name.lstrip('.')}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, data: str | bytes, *, encoding: str = "utf-8", mode: int | None = None,
                 fsync: bool = False) -> Path:
    """Write ``data`` (text is encoded with ``encoding``, no newline translation) to ``path``
    atomically (:func:`atomic_path`); returns ``path``."""
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path, mode=mode, fsync=fsync) as tmp:
        tmp.write_bytes(payload)
    return path


def protected_folder(path: Path) -> str:
    """Why the tool may never take ``path`` for a folder of its own — a report folder or a cache
    folder — ('' when it may): the root, the home folder, the working directory or a folder
    containing one of them."""
    here = Path.cwd().resolve()
    target = Path(os.path.abspath(path))
    try:
        resolved = target.resolve()
    except OSError:  # pragma: no cover - a symlink loop
        resolved = target
    try:
        home: Path | None = Path.home().resolve()
    except (RuntimeError, KeyError):  # no HOME and no password entry
        home = None
    if resolved.parent == resolved:
        return "it is the root of the file system"
    if home is not None and resolved == home:
        return "it is the home folder"
    if resolved == here:
        return "it is the working directory"
    if resolved in here.parents:
        return "it contains the working directory"
    if home is not None and resolved in home.parents:
        return "it contains the home folder"
    return ""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:  # pragma: no cover
        return True
    return True
