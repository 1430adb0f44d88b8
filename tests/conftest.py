"""Shared fixtures: tiny payment logs as DataFrames and a helper to turn them into Datasets."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parent.parent
# a fixed "now" so the future-date rule never depends on the day the tests run
NOW = datetime(2026, 1, 1)


def payments(rows, columns=("customer_id", "paid_at", "amount")) -> pd.DataFrame:
    """Rows of (customer_id, paid_at, amount[, ...]) → DataFrame with string ids and timestamps."""
    df = pd.DataFrame(list(rows), columns=list(columns))
    df["customer_id"] = df["customer_id"].astype(str)
    df["paid_at"] = pd.to_datetime(df["paid_at"], format="mixed")
    return df


def make_dataset(rows, columns=("customer_id", "paid_at", "amount"), **settings):
    """A Dataset from rows; keyword arguments are dotted settings (``metrics__activity_window_days``)."""
    from retention_report.config import load_settings
    from retention_report.data import dataset_from_frame

    overrides = {k.replace("__", "."): v for k, v in settings.items()}
    s = load_settings(None, **overrides)
    frame = rows if isinstance(rows, pd.DataFrame) else payments(rows, columns)
    return dataset_from_frame(frame, s, now=NOW)


def assert_same(a, b, path="doc"):
    """Two metrics documents are equal: same keys, same nulls, exact ints and strings, floats within
    1e-9 (relative or absolute) — backends sum floating point in different orders."""
    import math

    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, set(a) ^ set(b) if isinstance(b, dict) else b)
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, (path, a, b)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


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


@pytest.fixture(autouse=True)
def _no_smtp_password_leak(monkeypatch):
    # tests never see a developer's real SMTP password
    monkeypatch.delenv("RETENTION_REPORT_SMTP_PASSWORD", raising=False)
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield
