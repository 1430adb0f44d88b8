"""Shared fixtures (the helpers the tests import live in ``tests/helpers.py``)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

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
