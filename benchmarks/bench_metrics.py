"""Benchmark: the project's full metric set vs a hand-written DuckDB query vs idiomatic pandas.

Generates N payments (about 5 per customer over 4 years, Parquet; kept in benchmarks/data/ for
reuse), then times on the same file, in the same run:

  project   `retention-report metrics --period 2024-Q1` (a subprocess: everything in metrics.json —
            KPIs for three periods, bridge, segments, cohorts, time to second purchase, LTV)
  duckdb    one hand-written DuckDB SQL script computing only the cohort retention matrix and the
            new/returning split
  pandas    the same two results in idiomatic pandas (the payments loaded into a DataFrame)

Each runs in its own process, --repeat times (default 3), taking turns; the median wall time and the
highest peak RSS (GNU time) are reported, and with --json every run's time.
Usage:  python benchmarks/bench_metrics.py --rows 1000000 [--rows 10000000] [--skip-pandas] [--repeat 3]
        python benchmarks/bench_metrics.py --engines [--rows 1000000]   # DuckDB vs PostgreSQL vs Spark

--engines runs the same `retention-report metrics --period 2024-Q1` on DuckDB, on PostgreSQL (a
temporary local cluster, loaded by COPY) and on Spark local mode, and reports the wall time, the CLI
process's peak RSS and — sampled with psutil — the peak memory (PSS) of the CLI's whole process tree
(Spark's JVM is a child of the CLI) and of the PostgreSQL server's processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
PERIOD_START, PERIOD_END = "2024-01-01", "2024-03-31"

DUCKDB_SQL = """
import duckdb, sys
con = duckdb.connect()
src = sys.argv[1]
con.execute(f\"\"\"
CREATE TEMP TABLE pur AS
SELECT customer_id, CAST(paid_at AS DATE) AS day, SUM(amount) AS gross
FROM read_parquet('{src}') WHERE amount > 0 GROUP BY ALL\"\"\")
con.execute("CREATE TEMP TABLE acq AS SELECT customer_id, MIN(day) AS acquired FROM pur GROUP BY ALL")
split = con.execute(\"\"\"
SELECT SUM(gross) FILTER (WHERE day = acquired) AS revenue_new,
       SUM(gross) FILTER (WHERE day > acquired) AS revenue_returning,
       COUNT(DISTINCT customer_id) FILTER (WHERE acquired >= DATE '{start}') AS customers_new,
       COUNT(DISTINCT customer_id) FILTER (WHERE acquired < DATE '{start}') AS customers_returning
FROM pur JOIN acq USING (customer_id)
WHERE day BETWEEN DATE '{start}' AND DATE '{end}'\"\"\".format(start=sys.argv[2], end=sys.argv[3])).fetchall()
matrix = con.execute(\"\"\"
WITH c AS (SELECT customer_id, date_trunc('month', acquired) AS cohort FROM acq
           WHERE acquired BETWEEN DATE '{end}' - INTERVAL 11 MONTH - INTERVAL 30 DAY AND DATE '{end}'),
     sizes AS (SELECT cohort, COUNT(*) AS size FROM c GROUP BY ALL)
SELECT cohort, datediff('month', cohort, date_trunc('month', day)) AS age,
       COUNT(DISTINCT customer_id) / ANY_VALUE(size) AS retention
FROM pur JOIN c USING (customer_id) JOIN sizes USING (cohort)
WHERE day <= DATE '{end}' GROUP BY ALL ORDER BY ALL\"\"\".format(end=sys.argv[3])).fetchall()
print(len(matrix), split[0][0] is not None)
"""

PANDAS_CODE = """
import pandas as pd, sys
start, end = pd.Timestamp(sys.argv[2]), pd.Timestamp(sys.argv[3])
df = pd.read_parquet(sys.argv[1], columns=["customer_id", "paid_at", "amount"])
df = df[df["amount"] > 0]
df["day"] = df["paid_at"].dt.normalize()
pur = df.groupby(["customer_id", "day"], as_index=False)["amount"].sum()
pur["acquired"] = pur.groupby("customer_id")["day"].transform("min")
inp = pur[(pur["day"] >= start) & (pur["day"] <= end)]
new = inp["day"] == inp["acquired"]
split = (inp.loc[new, "amount"].sum(), inp.loc[~new, "amount"].sum(),
         inp.loc[inp["acquired"] >= start, "customer_id"].nunique(),
         inp.loc[inp["acquired"] < start, "customer_id"].nunique())
first_cohort = (end - pd.DateOffset(months=11)).to_period("M").to_timestamp()
c = pur[(pur["acquired"] >= first_cohort) & (pur["acquired"] <= end) & (pur["day"] <= end)].copy()
c["cohort"] = c["acquired"].dt.to_period("M")
c["age"] = (c["day"].dt.to_period("M") - c["cohort"]).apply(lambda x: x.n)
sizes = c.groupby("cohort")["customer_id"].nunique()
active = c.groupby(["cohort", "age"])["customer_id"].nunique().unstack()
matrix = active.div(sizes, axis=0)
print(matrix.shape, split[0] > 0)
"""


def peak_rss_child(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` under GNU time (/usr/bin/time -v) for its wall time and exact peak RSS."""
    gnu_time = Path("/usr/bin/time")
    t0 = time.perf_counter()
    r = subprocess.run([str(gnu_time), "-v", *cmd], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    peak_kb = next(int(line.split(":")[1]) for line in r.stderr.splitlines() if "Maximum resident set size" in line)
    return seconds, peak_kb / 1024, r.stdout


def ensure_data(rows: int) -> Path:
    sys.path.insert(0, str(REPO))
    from retention_report.sample import write_benchmark_data

    path = DATA / f"payments_{rows}"
    marker = path / "_SUCCESS"
    if not marker.exists():
        t0 = time.perf_counter()
        write_benchmark_data(path, n_payments=rows, seed=0)
        marker.write_text("ok")
        print(f"generated {rows:,} payments in {time.perf_counter() - t0:.1f}s -> {path}", file=sys.stderr)
    return path


def bench(rows: int, skip_pandas: bool, memory_limit: str, repeat: int = 3) -> dict[str, object]:
    path = ensure_data(rows)
    glob = str(path / "*.parquet") if path.is_dir() else str(path)
    py = sys.executable
    cli = str(Path(py).with_name("retention-report"))
    out = Path("/tmp") / f"rr-bench-{rows}"
    cfg = out / "bench.toml"
    out.mkdir(parents=True, exist_ok=True)
    cfg.write_text(textwrap.dedent(f"""
        [source]
        path = "{glob}"
        [columns]
        order_id = "order_id"
        cost = "cost"
        segments = ["channel", "country", "platform"]
        [validation]
        on_invalid = "error"
        [engine]
        memory_limit = "{memory_limit}"
        temp_directory = "{out / 'spill'}"
    """))
    cache = out / "cache"
    cmds = {
        # cold: the cache folder emptied before each run (the run also writes the cache)
        "project": [cli, "metrics", "--period", "2024-Q1", "--config", str(cfg), "--out", str(out)],
        # warm: another period on the same, unchanged file right after (issue 13)
        "warm": [cli, "metrics", "--period", "2024-Q2", "--config", str(cfg), "--out", str(out / "q2")],
        "duckdb": [py, "-c", DUCKDB_SQL, glob, PERIOD_START, PERIOD_END],
    }
    if not skip_pandas:
        # pandas reads a folder of Parquet files (not a glob)
        cmds["pandas"] = [py, "-c", PANDAS_CODE, str(path), PERIOD_START, PERIOD_END]
    # the contenders take turns, so a slow spell of a shared machine hits all of them alike; the
    # median wall time and the highest peak RSS of the runs are reported
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    env_cache = os.environ.get("RETENTION_REPORT_CACHE_DIR")
    os.environ["RETENTION_REPORT_CACHE_DIR"] = str(cache)
    try:
        for _ in range(repeat):
            shutil.rmtree(cache, ignore_errors=True)
            for name, cmd in cmds.items():
                t, m, _out = peak_rss_child(cmd)
                runs[name].append((t, m))
    finally:
        if env_cache is None:
            os.environ.pop("RETENTION_REPORT_CACHE_DIR", None)
        else:
            os.environ["RETENTION_REPORT_CACHE_DIR"] = env_cache
    result: dict[str, object] = {"rows": rows, "repeat": repeat}
    for name, rs in runs.items():
        result[name] = (statistics.median(t for t, _ in rs), max(m for _, m in rs))
        result[f"{name}_runs"] = [round(t, 2) for t, _ in rs]
    result["fingerprint"] = fingerprint_seconds(path, repeat)
    return result


def fingerprint_seconds(path: Path, repeat: int) -> float:
    """The content fingerprint a cold load takes (the SHA-256 of every source file, data/cache.py;
    a warm load reuses the recorded digests): the median of ``repeat`` timings, in this process."""
    sys.path.insert(0, str(REPO))
    from retention_report.data.cache import content_digests

    files = sorted(p for p in path.glob("*.parquet")) if path.is_dir() else [path]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        content_digests(files, None)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


FLOOR_CODE = """
import sys, time, nbformat, papermill as pm
from nbconvert import HTMLExporter
from weasyprint import HTML
out = sys.argv[1]
nb = nbformat.v4.new_notebook(cells=[
    nbformat.v4.new_code_cell("period = 'x'", metadata={"tags": ["parameters"]}),
    nbformat.v4.new_code_cell("import pandas as pd, seaborn as sns, matplotlib.pyplot as plt\\n"
                              "df = pd.DataFrame({'x': list('abcdefgh'), 'y': range(8)})\\n"
                              "sns.barplot(data=df, x='x', y='y'); plt.title(period); plt.show()"),
])
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, out + "/floor.ipynb")
pm.execute_notebook(out + "/floor.ipynb", out + "/floor.ipynb", parameters={"period": "2024-Q1"},
                    kernel_name="python3", progress_bar=False)
exporter = HTMLExporter(exclude_input=True)
html, _ = exporter.from_notebook_node(nbformat.read(out + "/floor.ipynb", as_version=4))
open(out + "/floor.html", "w").write(html)
HTML(string=html).write_pdf(out + "/floor.pdf")
"""


def bench_report(repeat: int = 3) -> dict[str, object]:
    """The floor of any notebook report (one papermill notebook importing pandas and seaborn with
    one chart, nbconvert HTML, WeasyPrint PDF) against `retention-report run` on the embedded
    sample, warm (the second run of the same period), taking turns."""
    py = sys.executable
    cli = str(Path(py).with_name("retention-report"))
    out = Path("/tmp") / "rr-bench-report"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    report = [cli, "run", "--period", "2024-Q1", "--out", str(out / "report")]
    subprocess.run(report, capture_output=True, check=True)  # the sample, the kernel and the cache: warm
    cmds = {"floor": [py, "-c", FLOOR_CODE, str(out)], "report": report}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            t, m, _out = peak_rss_child(cmd)
            runs[name].append((t, m))
    result: dict[str, object] = {"repeat": repeat}
    for name, rs in runs.items():
        result[name] = (statistics.median(t for t, _ in rs), max(m for _, m in rs))
        result[f"{name}_runs"] = [round(t, 2) for t, _ in rs]
    return result


class TreeSampler:
    """Peak memory of process trees, sampled every ``interval`` seconds with psutil: the sum over the
    root and all its descendants (Spark's JVM is a child of the CLI process) of each process's PSS
    (proportional set size: shared pages such as PostgreSQL's shared buffers are split between the
    processes sharing them, so the sum is not inflated), RSS where PSS cannot be read."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval

    @staticmethod
    def tree_mb(pid: int | None) -> float:
        import psutil

        if pid is None:
            return 0.0
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            try:
                try:
                    total += proc.memory_full_info().pss
                except (psutil.AccessDenied, AttributeError):
                    total += proc.memory_info().rss
            except psutil.Error:  # exited meanwhile
                pass
        return total / 2**20

    def run(self, cmd: list[str], other_pid: int | None = None) -> dict[str, float]:
        """Run ``cmd`` under GNU time; returns wall seconds, the CLI process's own peak RSS (GNU
        time), the peak of the CLI's process tree and of ``other_pid``'s tree (a database server)
        and the peak of their sum, all in MB."""
        import psutil

        t0 = time.perf_counter()
        proc = psutil.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
        peaks = {"tree": 0.0, "server": 0.0, "total": 0.0}
        import threading

        out: dict[str, str] = {}
        reader = threading.Thread(target=lambda: out.update(zip(("stdout", "stderr"), proc.communicate(), strict=True)))
        reader.start()
        while reader.is_alive():
            tree, server = self.tree_mb(proc.pid), self.tree_mb(other_pid)
            peaks["tree"] = max(peaks["tree"], tree)
            peaks["server"] = max(peaks["server"], server)
            peaks["total"] = max(peaks["total"], tree + server)
            reader.join(self.interval)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"command failed: {' '.join(cmd)}\n{out.get('stderr', '')[-3000:]}")
        cli_kb = next(int(line.split(":")[1]) for line in out["stderr"].splitlines()
                      if "Maximum resident set size" in line)
        return {"seconds": seconds, "cli_rss": cli_kb / 1024, **peaks}


def bench_engines(rows: int) -> dict[str, dict[str, float]]:
    """The same `retention-report metrics` run on DuckDB (Parquet), PostgreSQL (a temporary local
    cluster loaded by COPY; load time reported, not counted) and Spark local mode (PySpark, Parquet;
    master ``RETENTION_REPORT_SPARK_MASTER``, default local[*])."""
    sys.path.insert(0, str(REPO / "tests"))  # the throwaway cluster is a test helper, not shipped
    from pgtemp import load_parquet, temporary_postgres

    try:
        import psutil  # noqa: F401
    except ImportError:
        raise SystemExit("--engines measures process trees with psutil: pip install psutil") from None
    path = ensure_data(rows)
    cli = str(Path(sys.executable).with_name("retention-report"))
    out = Path("/tmp") / f"rr-bench-engines-{rows}"
    out.mkdir(parents=True, exist_ok=True)
    common = '''
        [columns]
        order_id = "order_id"
        cost = "cost"
        segments = ["channel", "country", "platform"]
    '''
    results: dict[str, dict[str, float]] = {}
    sampler = TreeSampler()

    def run(name: str, source: str, server_pid: int | None = None) -> None:
        cfg = out / f"{name}.toml"
        cfg.write_text(textwrap.dedent(source) + textwrap.dedent(common))
        r = sampler.run([cli, "metrics", "--period", "2024-Q1", "--config", str(cfg), "--out", str(out / name)],
                        server_pid)
        results[name] = r
        print(f"{name}: {r['seconds']:.1f} s, CLI {r['cli_rss']:,.0f} MB, tree {r['tree']:,.0f} MB, "
              f"server {r['server']:,.0f} MB", file=sys.stderr)

    run("duckdb", f'''
        [source]
        path = "{path}"
    ''')
    with temporary_postgres(password="bench-password", settings=("fsync=off", "shared_buffers=1GB", "work_mem=256MB")) as pg:
        t0 = time.perf_counter()
        n = load_parquet(pg, path)
        load_s = time.perf_counter() - t0
        print(f"loaded {n:,} rows into PostgreSQL in {load_s:.1f}s", file=sys.stderr)
        os.environ["RR_BENCH_PG_PASSWORD"] = pg.password
        run("postgres", f'''
            [source]
            url = "{pg.url}"
            table = "payments"
            password_env = "RR_BENCH_PG_PASSWORD"
        ''', pg.server_pid())
        results["postgres"]["load_seconds"] = load_s
    run("spark", f'''
        [source]
        kind = "spark"
        path = "{path}"
    ''')
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="payments to generate (repeatable)")
    ap.add_argument("--skip-pandas", action="store_true", help="skip the pandas baseline (huge N)")
    ap.add_argument("--memory-limit", default="", help="DuckDB memory limit for the project run, e.g. 4GB")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each contender, taking turns; the median wall time is reported (default 3)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    ap.add_argument("--report", action="store_true",
                    help="also time the floor of a notebook report against `retention-report run` (sample, warm)")
    ap.add_argument("--engines", action="store_true",
                    help="instead: the same metrics on DuckDB vs PostgreSQL vs Spark local at --rows (default 1M)")
    args = ap.parse_args()
    if args.engines:
        rows = (args.rows or [1_000_000])[0]
        res = bench_engines(rows)
        if args.json:
            print(json.dumps({"rows": rows, **res}, indent=2))
            return
        print(f"machine: {os.cpu_count()} cores; {rows:,} payments, period 2024-Q1, `retention-report metrics`")
        print("| engine | wall time | peak RSS, CLI process | peak PSS, CLI process tree (Spark: + JVM) "
              "| peak PSS, database server | peak PSS, all |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in res.items():
            server = f"{r['server']:,.0f} MB" if name == "postgres" else "–"
            print(f"| {name} | {r['seconds']:.1f} s | {r['cli_rss']:,.0f} MB | {r['tree']:,.0f} MB | {server} "
                  f"| {r['total']:,.0f} MB |")
        if "load_seconds" in res.get("postgres", {}):
            print(f"\n(PostgreSQL: a local throwaway cluster, loaded by COPY in {res['postgres']['load_seconds']:.1f} s, "
                  "not counted. PSS sampled every 0.2 s with psutil.)")
        return
    results = [bench(n, args.skip_pandas, args.memory_limit, max(1, args.repeat)) for n in (args.rows or [1_000_000])]
    rep = bench_report(max(1, args.repeat)) if args.report else None
    if args.json:
        print(json.dumps({"metrics": results, "report": rep}, indent=2))
        return
    print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; period 2024-Q1; median wall time of "
          f"{max(1, args.repeat)} run(s), taking turns / highest peak RSS")
    print("| payments | metrics, cold | metrics, warm (2024-Q2 next) | hand-written DuckDB SQL | pandas | cold / SQL | warm / SQL |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        p, w, d = r["project"], r["warm"], r["duckdb"]
        pd_ = r.get("pandas")
        pandas_cell = f"{pd_[0]:.1f} s / {pd_[1]:,.0f} MB" if pd_ else "skipped"
        print(f"| {r['rows']:,} | {p[0]:.1f} s / {p[1]:,.0f} MB | {w[0]:.1f} s / {w[1]:,.0f} MB | {d[0]:.1f} s / "
              f"{d[1]:,.0f} MB | {pandas_cell} | {p[0] / d[0]:.2f}x | {w[0] / d[0]:.2f}x |")
    print("\ncontent fingerprint of a cold load (SHA-256 of the source files, data/cache.py; issue 24 target <= 5%): "
          + "; ".join(f"{r['rows']:,}: {r['fingerprint']:.2f} s = {100 * r['fingerprint'] / r['project'][0]:.1f}% "
                      f"of the cold run" for r in results))
    if rep:
        f, r_ = rep["floor"], rep["report"]
        print("\n| report (sample, 2024-Q1) | floor: one notebook + HTML + PDF | retention-report run, warm | report / floor |")
        print("|---|---:|---:|---:|")
        print(f"| {max(1, args.repeat)} run(s) | {f[0]:.1f} s / {f[1]:,.0f} MB | {r_[0]:.1f} s / {r_[1]:,.0f} MB "
              f"| {r_[0] / f[0]:.2f}x |")


if __name__ == "__main__":
    main()
