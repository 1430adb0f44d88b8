"""Real logs and empty ones through the command line, with the default settings (SPEC §2, §3).

The CDNOW master log (Fader & Hardie; shipped in the MIT-licensed ``lifetimes`` 0.11.3 wheel, see
tests/data/LICENSE-lifetimes.txt) is a date-only purchase log: 69,659 rows, 255 of them identical to
another row (two identical CDs bought on one day). Every row is a payment.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retention_report.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory) -> tuple[Path, list[tuple[str, str, float]]]:
    """CDNOW master as the CSV a user would export: customer_id, paid_at (ISO date), amount."""
    rows = []
    with gzip.open(DATA / "CDNOW_master.txt.gz", "rt") as fh:
        next(fh)  # header
        for line in fh:
            cid, day, _cds, value = line.split()
            rows.append((cid, f"{day[:4]}-{day[4:6]}-{day[6:]}", float(value)))
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    path.write_text("customer_id,paid_at,amount\n" + "".join(f"{c},{d},{v:.2f}\n" for c, d, v in rows))
    return path, rows


@pytest.mark.slow
def test_cdnow_runs_with_the_defaults_and_counts_every_row(cdnow, tmp_path):
    path, rows = cdnow
    assert len(rows) == 69_659
    assert sum(n - 1 for n in Counter(rows).values() if n > 1) == 255  # identical to another row
    r = _cli("metrics", "--period", "1997-Q2", "--data", str(path), "--stdout", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    dq = doc["data_quality"]
    assert (dq["rows_read"], dq["rows_used"], dq["rows_dropped"]) == (69_659, 69_659, {})
    assert (dq["first_payment"][:10], dq["last_payment"][:10]) == ("1997-01-01", "1998-06-30")
    # the period's numbers recomputed from the rows in plain Python
    q2 = [(c, d, v) for c, d, v in rows if "1997-04-01" <= d <= "1997-06-30"]
    days = {(c, d) for c, d, v in q2 if v > 0}
    first = {}
    for c, d, v in sorted(rows, key=lambda r: r[1]):
        if v > 0:
            first.setdefault(c, d)
    k = doc["kpis"]
    assert k["gross_revenue"] == pytest.approx(sum(v for *_, v in q2 if v > 0), abs=0.005)
    assert k["purchases"] == len(days)
    assert k["customers"] == len({c for c, _ in days})
    assert k["customers_new"] == sum(1 for c, d in first.items() if "1997-04-01" <= d <= "1997-06-30")
    assert doc["complete"] is True


@pytest.mark.slow
def test_period_without_data_exits_1_before_anything_runs(cdnow, tmp_path):
    path, _ = cdnow
    for period, where in (("2030-Q1", "after the last"), ("1996", "before the first")):
        r = _cli("run", "--period", period, "--data", str(path), "--out", str(tmp_path / period), cwd=tmp_path)
        assert r.returncode == 1, r.stderr
        assert f"no payments in {period}" in r.stderr and where in r.stderr
        assert "from 1997-01-01 to 1998-06-30" in r.stderr
        assert "[1/" not in r.stderr and "Traceback" not in r.stderr  # no notebook ran
        assert not (tmp_path / period).exists()
        r = _cli("metrics", "--period", period, "--data", str(path), "--out", str(tmp_path / "m"), cwd=tmp_path)
        assert r.returncode == 1 and f"no payments in {period}" in r.stderr
        assert not (tmp_path / "m" / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("body", ["", "customer_id,paid_at,amount\n"], ids=["empty", "header-only"])
def test_a_file_without_payments_exits_1(tmp_path, body):
    p = tmp_path / "p.csv"
    p.write_text(body)
    for cmd in (["metrics", "--period", "2024-Q1", "--stdout"], ["validate"]):
        r = _cli(*cmd, "--data", str(p), cwd=tmp_path)
        assert r.returncode == 1
        assert f"error: no payments in {p}" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_cdnow_says_what_its_span_cannot_show(cdnow, tmp_path):
    """Issue 26: the CDNOW log begins on 1997-01-01. In 1997-Q4 nobody can have lapsed within the
    365-day window (end − W = 1996-12-31, before the first payment): churn and CRR are null with
    the reason, not "churn 0%". In 1998-Q2 the year-ago column (Q2 1997) is; the cohorts shown are
    the 1997 ones that acquired anyone, the 2-customer November 1997 cohort marked small and named
    nowhere."""
    path, rows = cdnow
    lapse = {"customers_churned", "customers_reactivated", "customers_new_lapsed", "churn_rate", "crr",
             "avg_lifetime_years", "ltv"}
    r = _cli("metrics", "--period", "1997-Q4", "--data", str(path), "--stdout", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    for block in ("kpis", "previous", "year_ago"):
        assert lapse <= set(doc["unobservable"][block]), block
        assert all(doc[block][k] is None for k in lapse), block
    assert "the data begin 1997-01-01, less than the 365-day activity window" in doc["unobservable"]["kpis"]["crr"]
    assert doc["kpis"]["customers_start"] == 23_500  # what can be shown still is
    assert not any("churn" in f or "retention rate" in f for f in doc["findings"])

    r = _cli("metrics", "--period", "1998-Q2", "--data", str(path), "--stdout", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["unobservable"]["kpis"] == {} and doc["unobservable"]["previous"] == {}
    assert lapse <= set(doc["unobservable"]["year_ago"])
    assert doc["kpis"]["churn_rate"] is not None and doc["year_ago"]["churn_rate"] is None
    # every customer's first purchase, counted from the rows: the cohorts that acquired anyone
    first: dict[str, str] = {}
    for c, d, v in sorted(rows, key=lambda r: r[1]):
        if v > 0:
            first.setdefault(c, d)
    months = Counter(d[:7] for d in first.values())
    co = doc["cohorts"]
    assert [c[:7] for c in co["cohort"]] == sorted(months)[-12:]
    assert co["size"] == [months[m] for m in sorted(months)[-12:]]
    assert co["small"] == [months[m] < 30 for m in sorted(months)[-12:]]
    nov = co["cohort"].index("1997-11-01")
    assert co["size"][nov] == 2 and co["small"][nov]
    assert not any("Nov 1997" in f for f in doc["findings"])


@pytest.mark.slow
def test_cdnow_master_read_as_it_is_published_with_the_whitespace_delimiter(cdnow, tmp_path):
    """CDNOW_master.txt as shipped (`` 00001 19970101  1   11.77``, CRLF, a header of runs of
    spaces), gzipped: the comma default says what to set; ``delimiter = "whitespace"`` gives the
    metrics.json of the same log converted to a CSV (ids with their leading zeros)."""
    path, rows = cdnow
    cfg = tmp_path / "cdnow.toml"
    cfg.write_text(f'[source]\npath = "{(DATA / "CDNOW_master.txt.gz").as_posix()}"\n'
                   '[columns]\npaid_at = "date"\namount = "dollar_value"\n'
                   '[source.csv]\ndate_format = "%Y%m%d"\n')
    r = _cli("metrics", "--period", "1997-Q2", "--config", str(cfg), "--stdout", cwd=tmp_path)
    assert r.returncode == 1
    assert 'looks whitespace-separated: set source.csv.delimiter = "whitespace"' in r.stderr
    cfg.write_text(cfg.read_text() + 'delimiter = "whitespace"\n')
    r = _cli("metrics", "--period", "1997-Q2", "--config", str(cfg), "--stdout", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ws = json.loads(r.stdout)
    r = _cli("metrics", "--period", "1997-Q2", "--data", str(path), "--stdout", cwd=tmp_path)
    converted = json.loads(r.stdout)
    assert ws["data_quality"]["rows_read"] == len(rows) == 69_659
    for key in ("kpis", "previous", "year_ago", "cohorts", "segments"):
        assert ws[key] == converted[key], key
