"""Helpers the tests import (``from helpers import make_dataset``): tiny payment logs as
DataFrames, Datasets built from them, a tolerant comparison of metrics documents, and the
hand-counted payment log several test modules share. Fixtures live in ``conftest.py``."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd

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


# A hand-counted log (tests/test_metrics.py works its numbers out line by line):
# a: bought before (2023-11-05) and twice on 2024-01-10 (one purchase of 80: 50 + 30)
# b: first purchase 2024-02-01 (200), again 2024-03-15 (20), refund of 20 on 2024-03-20
# c: only in 2023 (churns), d: first purchase at 23:59:59 on the period's last day
# e: a refund without any purchase: never a customer
SALES = [
    ("a", "2023-11-05 10:00", 100.0),
    ("a", "2024-01-10 10:00", 50.0),
    ("a", "2024-01-10 15:00", 30.0),
    ("b", "2024-02-01 09:00", 200.0),
    ("b", "2024-03-15 09:00", 20.0),
    ("b", "2024-03-20 09:00", -20.0),
    ("c", "2023-01-01 09:00", 10.0),
    ("d", "2024-03-31 23:59:59", 5.0),
    ("e", "2024-02-02 10:00", -5.0),
]


def committed_text(notebook: Path) -> str:
    """What a commit of ``notebook`` stores: the file itself, unless it has outputs and git's
    ``nbstripout`` filter is active for it (``make setup``; the outputs then never reach a commit),
    in which case the version staged in the index (README, "Notebooks")."""
    import json
    import subprocess

    text = notebook.read_text(encoding="utf-8")
    cells = json.loads(text).get("cells", [])
    if not any(c.get("outputs") or c.get("execution_count") for c in cells if c.get("cell_type") == "code"):
        return text

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=notebook.parent, capture_output=True, text=True)

    attr = git("check-attr", "filter", "--", notebook.name).stdout.strip()
    if attr.endswith(": nbstripout") and git("config", "filter.nbstripout.clean").returncode == 0:
        staged = git("show", f":./{notebook.name}")
        if staged.returncode == 0:
            return staged.stdout
        return _stripped(notebook)
    return text


def _stripped(notebook: Path) -> str:
    """``notebook`` as the nbstripout filter would store it (a new file, not staged yet)."""
    from retention_report.gitsetup import clean

    return clean(notebook.read_text(encoding="utf-8"))


def section_notebook(path: Path, body: str) -> None:
    """A tiny section notebook: the typed parameters cell, a ``## Section`` heading, ``body``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('period: str = "2024-Q1"\nconfig_path: str = ""\ndata: str = ""\nmetrics_path: str = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_markdown_cell("## Section"), nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


# a small hand-countable log: customers a (acquired 2023-11), b (2024-02), c (2023-01), d (2024-03-31)
SMALL_CSV = """customer_id,paid_at,amount
a,2023-11-05 10:00:00,100
a,2024-01-10 10:00:00,50
a,2024-01-10 15:00:00,30
b,2024-02-01 09:00:00,200
b,2024-03-15 09:00:00,20
b,2024-03-20 09:00:00,-20
c,2023-01-01 09:00:00,10
d,2024-03-31 23:59:59,5
"""


def run_make(work: Path, *args: str, makefile: Path | None = None) -> subprocess.CompletedProcess:
    """``make -s`` in ``work`` with the repository's Makefile (or ``makefile``) and the fake venv of
    the ``fake_make_env`` fixture; make variables of the calling shell are not passed on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MAKE") and k not in ("PERIOD", "PERIODS", "CONFIG", "DATA", "AS_OF", "TO", "DRY_RUN")}
    return subprocess.run(["make", "-s", "-f", str(makefile or REPO / "Makefile"), "VENV=venv", *args], cwd=work,
                          capture_output=True, text=True, timeout=60, env=env)
