"""Output folders: which ones a run may replace, what a report records about itself, and the
clean-up of temporary folders that interrupted runs left behind.

Nothing the user owns is deleted or overwritten:

* ``run`` replaces ``--out DIR`` (default ``reports/<PERIOD>/``) only when DIR is missing or is a
  report of this tool: it holds the marker file :data:`MARKER` (written into every report folder),
  or — reports made before the marker existed — a ``metrics.json`` written by this tool and nothing
  but report files. Anything else (a file, a folder with other files, the working directory, the
  home folder, a symbolic link) is refused before any work, naming the path.
* ``metrics`` writes one file, ``DIR/metrics.json``: into a missing folder or a report folder, and
  into any other existing folder only when that does not overwrite a ``metrics.json`` this tool did
  not write (no marker is added to such a folder, so ``run`` still refuses to replace it).
* Files the user added to a report folder (board notes, an extra notebook, a subfolder) are kept
  when it is re-rendered: the marker lists the files the tool wrote (``files``), and everything
  else in the folder (:func:`user_entries`) is carried into the new report (hard-linked, or copied)
  before the swap. A user's file where the run would write one of its own is refused before any
  work (:class:`OutputError`, naming it).
* ``<DIR>.failed`` (the notebooks of a failed run) is replaced only when it is a report folder too,
  and only the tool's files in it are removed (:func:`remove_own`).
* Temporary siblings are ``.<name>.tmp-<pid>-<random>`` and ``.<name>.old-<pid>-<random>``, created
  by ``mkdtemp`` (never an existing name); :func:`sweep_stale` removes those of processes that are
  no longer running, and only when they hold a marker or are report folders.

The marker is a small JSON file. Besides identifying the folder it records what the report's
content was made from (:func:`content_record`: source and the settings that change the numbers or
the rendered report), so ``email`` can refuse to send a report made from another source or config.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fsio import pid_alive, protected_folder, write_atomic
from .secrets import redact

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "MARKER",
    "OutputError",
    "check_metrics_out",
    "carry_user_entries",
    "check_report_out",
    "content_differences",
    "report_mismatch",
    "content_record",
    "is_report_folder",
    "read_marker",
    "remove_own",
    "sweep_stale",
    "update_marker",
    "user_entries",
    "written_files",
    "new_run_folder",
    "keep_failed",
    "remove_failed",
    "swap_into_place",
    "normal_permissions",
]

MARKER = ".retention-report"
# what a report folder holds (anything else makes a folder without marker "not ours")
REPORT_ENTRIES = {"metrics.json", "report.html", "report.pdf", "notebooks", "email.eml", "email-log.json", MARKER}
# hidden temporary files of atomic writes inside a report folder
_HIDDEN_TEMP = re.compile(r"^\.(metrics\.|sections|email-log\.json\.|email\.eml\.|retention-report\.)")
# the files at the top of a report folder that are always the tool's (its fixed output names)
_OWN_TOP = REPORT_ENTRIES - {"notebooks"}
# temporary siblings of a report folder: .<name>.tmp-<pid>-<random>, .<name>.old-<pid>-<random>
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<what>tmp|old)-(?P<pid>\d+)-[A-Za-z0-9_]+$")
_SOCKETS = re.compile(r"^rr-kernel-(?P<pid>\d+)-[A-Za-z0-9_]+$")


class OutputError(ValueError):
    """An output path that must not be written to (exit code 2, before any work)."""


# ------------------------------------------------------------------------------------ recognising

def _is_own_metrics(path: Path) -> bool:
    """``path`` is a metrics.json this tool wrote (a JSON object with period, kpis and data_quality)."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 50_000_000:
            return False
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"period", "kpis", "data_quality"} <= set(doc)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of ``folder`` (a dict), or None when there is none or it is not ours."""
    path = Path(folder) / MARKER
    try:
        if not path.is_file() or path.is_symlink():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "retention-report" else None


def is_report_folder(folder: Path) -> bool:
    """A folder this tool wrote: it holds the marker, or (reports made before the marker) a
    metrics.json of this tool and nothing but report files."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return False
    if read_marker(folder) is not None:
        return True
    if not _is_own_metrics(folder / "metrics.json"):
        return False
    return all(e.name in REPORT_ENTRIES or _HIDDEN_TEMP.match(e.name) for e in folder.iterdir())


def _builtin_notebooks() -> set[str]:
    from .sections import SECTIONS

    return {Path(s.notebook).name for s in SECTIONS}


def _own_paths(folder: Path, marker: dict[str, Any] | None) -> set[str]:
    """The relative paths (POSIX) in report ``folder`` that the tool wrote: its fixed output names,
    the files its marker lists (``files``), and — reports made before the marker listed them — the
    executed notebooks of the built-in sections."""
    own = set(_OWN_TOP)
    listed = (marker or {}).get("files")
    if isinstance(listed, list):
        own.update(f for f in listed if isinstance(f, str))
    else:
        own.update(f"notebooks/{n}" for n in _builtin_notebooks())
    return own


def user_entries(folder: Path) -> list[str]:
    """What the user added to report ``folder`` (relative POSIX paths, sorted, parents before their
    contents): every file, link and folder the tool did not write — not a fixed report file, not in
    the marker's list, not a temporary file of an interrupted atomic write. ``notebooks/`` itself
    is the tool's; a folder the user made is listed once, with everything in it."""
    folder = Path(folder)
    own = _own_paths(folder, read_marker(folder))
    found: list[str] = []

    def walk(d: Path, prefix: str) -> None:
        for entry in sorted(d.iterdir(), key=lambda e: e.name):
            rel = prefix + entry.name
            if rel in own or _HIDDEN_TEMP.match(entry.name) and prefix == "":
                continue
            if rel == "notebooks" and entry.is_dir() and not entry.is_symlink():
                walk(entry, "notebooks/")
                continue
            found.append(rel)

    if folder.is_dir() and not folder.is_symlink():
        walk(folder, "")
    return found


def written_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative POSIX paths, sorted): what a run wrote into its
    temporary folder, recorded in the marker as ``files`` (the marker itself is not listed)."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.name != MARKER)


def carry_user_entries(old: Path, new: Path, entries: list[str]) -> None:
    """Put ``entries`` (:func:`user_entries` of ``old``) into ``new`` at the same relative paths:
    files hard-linked (copied when a link is not possible), symbolic links re-created as links,
    folders copied with everything in them (links kept as links). ``old`` is left as it was, so
    the previous report keeps them until the new one is in place. Raises :class:`OutputError`
    naming an entry whose path in ``new`` is taken (the run wrote a file of that name)."""
    for rel in entries:
        src, dst = Path(old) / rel, Path(new) / rel
        if dst.exists() or dst.is_symlink():
            raise OutputError(f"cannot keep {src}: the new report writes a file of that name; "
                              "move it out of the report folder and run again")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            elif src.is_dir():
                shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(str(src), str(dst))
        except (OSError, shutil.Error) as exc:  # unreadable, disk full: the old report stays as it is
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            raise OutputError(f"the report was not replaced: {src}, a file you added to the report folder, could "
                              f"not be kept in the new report ({reason}); the previous report is untouched") from None


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
    return dst


def remove_own(folder: Path) -> list[str]:
    """Remove what the tool wrote in report ``folder`` — and the folder, when nothing else is left.
    Returns :func:`user_entries`: what was kept (empty when the folder is gone)."""
    folder = Path(folder)
    if not is_report_folder(folder):
        return user_entries(folder) if folder.is_dir() else []
    keep = user_entries(folder)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
        return []
    kept = set(keep)
    marker = folder / MARKER
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = path.relative_to(folder).as_posix()
        if path == marker or any(rel == k or rel.startswith(k + "/") for k in kept):
            continue
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty: a user's file inside keeps it
        else:
            path.unlink(missing_ok=True)
    return keep


# ---------------------------------------------------------------------------------------- checks

def check_report_out(path: Path | str, writes: Iterable[str] = ()) -> None:
    """Raise :class:`OutputError` unless ``run`` may write the report to ``path`` (see the module
    docstring); also checks ``<path>.failed``. ``writes``: the relative paths of the executed
    notebooks the run writes besides the fixed report files; a file the user added to the report
    folder under one of those names (or the fixed ones) is refused, naming it."""
    p = Path(path)
    shown = str(path)
    reason = protected_folder(p)
    if reason:
        raise OutputError(f"refusing to write the report to {shown}: {reason}, not a report folder; "
                          "choose a new folder with --out (default reports/<PERIOD>/)")
    if p.is_symlink():
        raise OutputError(f"refusing to replace {shown}: it is a symbolic link; give the folder itself with --out")
    if p.exists() and not p.is_dir():
        raise OutputError(f"refusing to replace {shown}: it is a file, not a report folder; choose another --out")
    if p.is_dir() and not is_report_folder(p) and _is_own_metrics(p / "metrics.json"):
        extra = sorted(e.name for e in p.iterdir() if e.name not in REPORT_ENTRIES and not _HIDDEN_TEMP.match(e.name))
        if extra:
            names = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise OutputError(f"refusing to replace {shown}: besides a metrics.json of retention-report it holds "
                              f"{names}, not written by retention-report (and no {MARKER} marker); move "
                              f"{'it' if len(extra) == 1 else 'them'} away or choose another --out")
    if p.is_dir() and not is_report_folder(p):
        raise OutputError(f"refusing to replace {shown}: the folder exists and is not a report of retention-report "
                          f"(no {MARKER} marker), so its files would be deleted; choose another --out or move it away")
    for folder in (p, p.with_name(p.name + ".failed")):
        clash = _clashes(folder, writes) if is_report_folder(folder) else []
        if clash:
            raise OutputError(f"refusing to re-render {folder}: {', '.join(clash)} there "
                              f"{'was' if len(clash) == 1 else 'were'} not written by retention-report and the new "
                              "report writes a file of that name; move "
                              f"{'it' if len(clash) == 1 else 'them'} away (other files you added are kept)")
    parent = Path(os.path.abspath(p)).parent
    for anc in [parent, *parent.parents]:
        if anc.exists():
            if not anc.is_dir():
                raise OutputError(f"cannot write the report to {shown}: {anc} is a file, not a folder")
            break
    failed = p.with_name(p.name + ".failed")
    if failed.exists() and not is_report_folder(failed):
        raise OutputError(f"refusing to write the report to {shown}: {failed} (where a failed run keeps its "
                          "notebooks) exists and is not a report folder of retention-report; move it away")


def _clashes(folder: Path, writes: Iterable[str]) -> list[str]:
    """The user's entries in report ``folder`` where a run writes its own files."""
    taken = set(writes) | _OWN_TOP | {"notebooks"}
    return [e for e in user_entries(folder) if e in taken or any(w.startswith(e + "/") for w in taken)]


def check_metrics_out(path: Path | str) -> bool:
    """Raise :class:`OutputError` unless ``metrics`` may write ``<path>/metrics.json``. Returns
    whether the folder is (or will be) a report folder: missing or already one; the marker is
    written only then."""
    p = Path(path)
    shown = str(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"cannot write metrics.json into {shown}: it is a file, not a folder; --out names a folder")
    parent = Path(os.path.abspath(p)).parent
    for anc in [parent, *parent.parents]:
        if anc.exists():
            if not anc.is_dir():
                raise OutputError(f"cannot write metrics.json into {shown}: {anc} is a file, not a folder")
            break
    if not p.exists():
        return True
    if is_report_folder(p):
        return True
    target = p / "metrics.json"
    if (target.exists() or target.is_symlink()) and not _is_own_metrics(target):
        raise OutputError(f"refusing to overwrite {target}: it was not written by retention-report; "
                          "choose another --out")
    return False


# --------------------------------------------------------------------------------------- markers

def _marker_base(period: str) -> dict[str, Any]:
    from . import __version__

    return {"tool": "retention-report", "version": __version__, "period": period,
            "host": socket.gethostname(), "pid": os.getpid(),
            "written_at": datetime.now().astimezone().isoformat(timespec="seconds")}


def update_marker(folder: Path, period: str, **records: Any) -> Path:
    """Write (or update) the marker of ``folder``: the base fields plus ``records`` (``metrics=``,
    ``report=``: :func:`content_record` of what that part was made from; ``files=``: what the run
    wrote, :func:`written_files`); other records are kept."""
    folder = Path(folder)
    data = read_marker(folder) or {}
    data.update(_marker_base(period))
    data.update(records)
    return write_atomic(folder / MARKER, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------- content identity

def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


def content_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change a report's numbers or rendered content, as dotted keys: time zone,
    source (file paths made absolute, URL without password), columns, metrics, validation, and the
    report's title, currency and sections. Not: email, engine limits, output folder, kernel, URL."""
    data = settings.public_dict()
    src = dict(data["source"])
    if src.get("path") and "://" not in src["path"]:
        src["path"] = os.path.abspath(os.path.expanduser(src["path"]))
    src.pop("password_env", None)
    relevant = {
        "timezone": data["timezone"],
        "source": src,
        "columns": data["columns"],
        "metrics": data["metrics"],
        "validation": data["validation"],
        "report": {k: data["report"][k] for k in ("title", "currency", "sections")},
    }
    out: dict[str, Any] = {}
    _flat("", relevant, out)
    return out


def content_record(settings: Settings) -> dict[str, Any]:
    """What a report was made from: source name, the :func:`content_settings` and their hash."""
    flat = content_settings(settings)
    src = settings.source
    fingerprint = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()
    return {"source": redact(src.name or flat.get("source.path") or flat.get("source.url") or "") or "embedded sample data",
            "fingerprint": fingerprint, "settings": flat}


def data_fingerprint(settings: Settings) -> str | None:
    """A hash of the content of the source's files (every file of a folder or glob: name, size and
    bytes), so a report can tell whether the data at the same path changed since it was made —
    also after an edit that kept the size and the modification time. None for a source that is not
    files (a database server, Spark's catalog) or that cannot be read now."""
    import glob as _glob

    from .data.sources import source_kind

    try:
        kind = source_kind(settings)
    except Exception:  # an unknown extension: the run itself reports it
        return None
    path = settings.source.path
    if kind == "sample" and not path:
        from .sample import DEFAULT_SAMPLE_PATH

        path = str(DEFAULT_SAMPLE_PATH)
    if not path or "://" in path:
        return None
    p = Path(path).expanduser()
    if any(ch in path for ch in "*?["):
        files = sorted(Path(f) for f in _glob.glob(os.path.expanduser(path), recursive=True))
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*") if not any(part.startswith(".") for part in f.relative_to(p).parts))
    else:
        files = [p]
    h = hashlib.sha256()  # the fastest stdlib hash here (CPU instructions): ~0.3-1 GB/s
    try:
        for f in files:
            if not f.is_file():
                continue
            h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
            with f.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
    except OSError:
        return None
    return h.hexdigest() if files else None


def data_changed(folder: Path, settings: Settings) -> str:
    """Why the data of ``settings`` are not those the report in ``folder`` was rendered from ('' when
    they are, or when that cannot be told: no record, or a source that is not files)."""
    rendered = (read_marker(folder) or {}).get("report")
    recorded = rendered.get("data") if isinstance(rendered, dict) else None
    if not recorded:
        return ""
    now = data_fingerprint(settings)
    if now is None or now == recorded:
        return ""
    return (f"the data of {settings.source_shown('the embedded sample data')} changed since the report in "
            f"{folder} was rendered (same source, other content)")


def content_differences(recorded: dict[str, Any], settings: Settings, limit: int = 4) -> list[str]:
    """``["source.path: 'a.csv' in the report, 'b.csv' now", …]`` (empty when they match)."""
    now = content_record(settings)
    if recorded.get("fingerprint") == now["fingerprint"]:
        return []
    old = recorded.get("settings") or {}
    new = now["settings"]
    diffs = [f"{k}: {old.get(k, '(not set)')!r} in the report, {new.get(k, '(not set)')!r} now"
             for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if not diffs:
        diffs = ["the settings differ"]
    if len(diffs) > limit:
        diffs = [*diffs[:limit], f"and {len(diffs) - limit} more"]
    return diffs


def report_mismatch(folder: Path, settings: Settings, period: str) -> str:
    """Why the rendered report in ``folder`` is not the report of ``period`` with these settings
    ('' when it is): another period, another source or content settings, or no record at all."""
    marker = read_marker(folder)
    rendered = (marker or {}).get("report")
    if marker is None or not isinstance(rendered, dict):
        return (f"{folder} does not record which source and settings it was rendered from (rendered "
                f"by an older version, or not by `retention-report run`); re-render it "
                f"(make report PERIOD={period}) or pass --force to send it as it is")
    if marker.get("period") != period:
        return (f"{folder} holds the report of {marker.get('period')}, not of {period}; "
                f"pass the right --out or --force")
    hint = ("re-render it with this config and data (make report PERIOD=… CONFIG=… DATA=…) "
            "or pass --force to send it anyway")
    diffs = content_differences(rendered, settings)
    if diffs:
        return (f"the report in {folder} was rendered from another source or settings than the current "
                f"config and data: {'; '.join(diffs)}. {hint[0].upper() + hint[1:]}")
    computed = marker.get("metrics")
    if isinstance(computed, dict) and content_differences(computed, settings):
        diffs = content_differences(computed, settings)
        return (f"metrics.json in {folder} was recomputed from other settings after the report was "
                f"rendered: {'; '.join(diffs)}. {hint[0].upper() + hint[1:]}")
    return ""


# ---------------------------------------------------------------------------------------- sweeping

def sweep_stale(parent: Path, say: Callable[[str], None] | None = None) -> list[Path]:
    """Remove the temporary siblings (``.<name>.tmp-<pid>-*``, ``.<name>.old-<pid>-*``) in
    ``parent`` whose process is gone, and the kernel socket folders (``rr-kernel-<pid>-*``) of dead
    runs in the system temporary folder. Only folders holding a marker of this machine (temporary
    folders) or that are report folders (old reports) are removed; a live run's folders are kept.
    An old report whose folder is missing (the run died between the two renames of the swap) is
    moved back instead; one holding a file the user added that the report does not hold (a run of
    an older version) loses only the tool's files (:func:`remove_own`)."""
    removed: list[Path] = []
    host = socket.gethostname()
    try:
        entries = list(Path(parent).iterdir()) if Path(parent).is_dir() else []
    except OSError:  # pragma: no cover
        entries = []
    for entry in entries:
        m = _SIBLING.match(entry.name)
        if not m or entry.is_symlink() or not entry.is_dir() or pid_alive(int(m["pid"])):
            continue
        marker = read_marker(entry)
        if m["what"] == "tmp":
            if marker is None or marker.get("host") not in (None, host):
                continue
        elif not is_report_folder(entry):
            continue
        else:
            report = entry.with_name(m["name"])
            if not report.exists() and not report.is_symlink():
                # killed between the two renames of a swap: this is the report; put it back
                os.replace(entry, report)
                if say:
                    say(f"restored {report} (an interrupted run had moved it to {entry.name})")
                continue
            if any(not (report / e).exists() and not (report / e).is_symlink() for e in user_entries(entry)):
                remove_own(entry)  # a file the user added that is not in the report (yet): kept
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    tmp_root = Path(tempfile.gettempdir())
    try:
        sockets = [e for e in tmp_root.iterdir() if _SOCKETS.match(e.name)]
    except OSError:  # pragma: no cover
        sockets = []
    for entry in sockets:
        m = _SOCKETS.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid() \
                and not pid_alive(int(m["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed and say:
        say(f"removed {len(removed)} temporary folder(s) left by interrupted runs: "
            + ", ".join(str(p) for p in removed))
    return removed


# ----------------------------------------------------------------------- a run's folder into place

def new_run_folder(final: Path) -> Path:
    """The private temporary folder a run writes its report into, next to ``final``:
    ``.<name>.tmp-<pid>-<random>`` (the owning process is recoverable from the name,
    :func:`sweep_stale`), marked as a folder of this tool from the start by the caller."""
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))


def swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with two renames; the old report survives until the new one is
    in place. The old report's ``email-log.json`` (who was sent what) is carried over; the email
    command keeps it under ``earlier`` when the new report is sent. So is everything the user
    added to the old report (:func:`user_entries`: notes, notebooks,
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


def keep_failed(tmp: Path, final: Path, period: str) -> Path:
    """Keep the run folder ``tmp`` of a failed run (its partially executed notebooks) as
    ``<final>.failed``: replacing a report folder of that name (files the user added there are
    kept), or — a folder of that name that is not ours appeared during the run — beside it under a
    fresh name. Returns where it went."""
    failed = final.with_name(final.name + ".failed")
    update_marker(tmp, period, files=written_files(tmp))
    normal_permissions(tmp)
    if failed.exists() and is_report_folder(failed):  # files the user added there are kept
        swap_into_place(tmp, failed)
    else:
        if failed.exists() or failed.is_symlink():  # appeared during the run and is not ours: keep both
            failed = Path(tempfile.mkdtemp(prefix=f"{final.name}.failed-", dir=final.parent))
        os.replace(tmp, failed)
    return failed


def remove_failed(final: Path) -> None:
    """After a successful run: the tool's files of ``<final>.failed`` (an earlier failed run)
    removed; a file the user put there stays."""
    stale = final.with_name(final.name + ".failed")
    if stale.exists() and is_report_folder(stale):
        remove_own(stale)


def normal_permissions(root: Path) -> None:
    """mkdtemp/mkstemp create owner-only (0700/0600) entries; give the report the permissions any
    file written by the user would get (the umask), so colleagues and web servers can read it."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
