"""Shared fixtures (the helpers the tests import live in ``tests/helpers.py``), and the rule of the
fast lane (``make test-fast``, ``pytest -m "not slow"``): a test that is not marked slow starts no
process — no subprocess, CLI run in a subprocess, make, Jupyter kernel, papermill, browser, database
server or JVM; the hooks ``pytest_runtest_setup`` and ``pytest_runtest_call`` below enforce it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import pytest
from helpers import REPO, SMALL_CSV

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """A smaller deterministic sample (same generator as the embedded data)."""
    from retention_report.sample import generate_payments

    return generate_payments(n_customers=8_000, seed=7).to_pandas()


@pytest.fixture(scope="session")
def sample_parquet(tmp_path_factory, sample_frame) -> Path:
    path = tmp_path_factory.mktemp("sample") / "payments.parquet"
    sample_frame.to_parquet(path, index=False)
    return path


class StartsAProcess(RuntimeError):
    """Raised (not an OSError: code that copes with a missing program must not swallow it) when a
    test that is not marked slow starts a process."""


# RR_PROCESS_GUARD=record:<file>: such tests may start processes; each start is appended to <file> as
# a JSON line (test id, command) — a survey of a lane before marking it.
_RECORD = os.environ.get("RR_PROCESS_GUARD", "").removeprefix("record:")
# os functions that start a process without subprocess.Popen
_OS_STARTS = ("system", "posix_spawn", "posix_spawnp", "fork", "forkpty")


@contextlib.contextmanager
def _no_process_started(item: pytest.Item) -> Iterator[list[str]]:
    """While a test that is not marked slow is set up and runs (its fixtures too, module- and
    session-scoped ones it is the first to need included), starting a process raises StartsAProcess:
    ``subprocess.Popen`` — so ``run``, ``check_output``, asyncio's subprocesses, papermill's and
    nbclient's kernels, Playwright's browser, PySpark's JVM — and ``os.system``, ``os.posix_spawn``,
    ``os.fork``. Yields the commands started."""
    started: list[str] = []

    def guarded(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def start(*args: Any, **kwargs: Any) -> Any:
            command = _command(name, args)
            started.append(command)
            if _RECORD:
                with open(_RECORD, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"test": item.nodeid, "command": command}) + "\n")
                return real(*args, **kwargs)
            raise StartsAProcess(f"this test starts a process ({command}): mark it @pytest.mark.slow "
                                 "(make test-fast runs the tests that start none)")
        return start

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "_execute_child", guarded("subprocess", subprocess.Popen._execute_child))
        for name in _OS_STARTS:
            if hasattr(os, name):
                mp.setattr(os, name, guarded(f"os.{name}", getattr(os, name)))
        yield started


def _command(name: str, args: tuple[Any, ...]) -> str:
    """The command a guarded call starts, for the message."""
    if name == "subprocess":  # Popen._execute_child(self, args, executable, …)
        argv = args[1]
        return str(argv if isinstance(argv, str | bytes) else " ".join(map(str, argv)))[:200]
    if name == "os.system":
        return f"os.system({str(args[0])[:200]})"
    if name.startswith("os.posix_spawn"):
        return f"{name}({' '.join(map(str, args[1]))[:200]})"
    return f"{name}()"


def _guarded_phase(item: pytest.Item) -> Generator[None, Any, Any]:
    """One phase (set-up or call) of a test: under the guard unless the test is marked slow; a
    process started and the StartsAProcess swallowed by the code under test fails it all the same."""
    if item.get_closest_marker("slow") is not None:
        return (yield)
    with _no_process_started(item) as started:
        result = yield
    if started and not _RECORD:
        pytest.fail(f"this test starts a process ({started[0]}): mark it @pytest.mark.slow", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded_phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    # (not teardown: a slow test's module-scoped fixture may stop its server after a fast test)
    return (yield from _guarded_phase(item))


def pytest_collection_modifyitems(items):
    """Tests that compare with a syrupy snapshot are marked ``snapshot``: ``make snapshots`` refreshes
    them all with ``-m snapshot --snapshot-update``."""
    for item in items:
        if "snapshot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.snapshot)


@pytest.fixture(scope="session", autouse=True)
def _cache_outside_the_checkout(tmp_path_factory):
    """Warm-run caches of the tests' data files go to a temporary folder (subprocesses inherit it)."""
    os.environ["RETENTION_REPORT_CACHE_DIR"] = str(tmp_path_factory.mktemp("rr-cache"))
    yield


@pytest.fixture(autouse=True)
def _english_after_each_test():
    """A notebook's open_report sets the report language for the rest of its context (a kernel is
    one report's; retention_report/i18n.py): a test that does so does not leave it to the next."""
    yield
    from retention_report.i18n import set_language

    set_language("en")


@pytest.fixture(autouse=True)
def _no_smtp_password_leak(monkeypatch):
    # tests never see a developer's real SMTP password
    monkeypatch.delenv("RETENTION_REPORT_SMTP_PASSWORD", raising=False)
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield


@pytest.fixture()
def csv_file(tmp_path) -> Path:
    """helpers.SMALL_CSV as a file."""
    p = tmp_path / "payments.csv"
    p.write_text(SMALL_CSV)
    return p


@pytest.fixture
def fake_make_env(tmp_path):
    """A working folder with a fake, up-to-date venv whose `retention-report` only records its
    arguments (one JSON list per call): the Makefile's recipes run for real, nothing heavy does.
    Run make there with helpers.run_make."""
    if not shutil.which("make"):  # pragma: no cover
        pytest.skip("make is not installed")
    work = tmp_path / "work"
    (work / "venv" / "bin").mkdir(parents=True)
    (work / "requirements").mkdir()
    for name in ("pyproject.toml", "requirements/app.lock", "requirements/dev.lock"):  # older than the stamps
        (work / name).write_text("")
        os.utime(work / name, (1_000_000_000, 1_000_000_000))
    (work / "venv" / ".installed-stamp").write_text("")
    calls = work / "calls.jsonl"
    cli = work / "venv" / "bin" / "retention-report"
    cli.write_text(f"#!{sys.executable}\nimport json, sys\n"
                   f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    cli.chmod(0o755)
    (work / "venv" / "bin" / "python").symlink_to(sys.executable)
    return work, calls
