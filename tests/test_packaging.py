"""Packaging: environment.yml and pyproject.toml list the same runtime dependencies; notebooks
are committed clean; the Makefile documents itself; the wheel, installed into a fresh environment,
runs from any folder (slow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers import committed_text

REPO = Path(__file__).resolve().parent.parent

# conda-forge names of PyPI packages that differ
CONDA_NAMES = {"ibis-framework": "ibis-framework-core"}


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~ ;]", req.strip(), maxsplit=1)[0].lower()


def _pip_deps() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {CONDA_NAMES.get(_name(r), _name(r)): r for r in data["project"]["dependencies"]}


def _conda_deps() -> dict[str, str]:
    deps = {}
    text = (REPO / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^\s{2}- ([A-Za-z0-9_.\-\[\]]+)(.*?)(\s+#.*)?$", line)
        if m and m.group(1) not in ("python", "pip"):
            deps[m.group(1).lower()] = (m.group(1) + m.group(2)).strip()
    return deps


def _bounds(req: str) -> str:
    return re.sub(r"\s+", "", re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", req))


def _locked(name: str) -> dict[str, str]:
    """``requirements/<name>.lock``: {package: version} (names normalised as PyPI does)."""
    text = (REPO / "requirements" / f"{name}.lock").read_text()
    return {_normalise(n): v for n, v in re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, re.M)}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _hashes(name: str) -> dict[str, set[str]]:
    text = (REPO / "requirements" / f"{name}.lock").read_text()
    blocks = re.split(r"^(?=[A-Za-z0-9])", text, flags=re.M)
    return {_normalise(b.split("==")[0]): set(re.findall(r"--hash=(sha256:[0-9a-f]{64})", b))
            for b in blocks if "==" in b.split("\n")[0]}


def test_environment_yml_matches_pyproject_and_the_lock():
    """environment.yml names pyproject's runtime dependencies, each pinned to the version
    requirements/app.lock holds (issue 25: a conda environment is the same product as `make setup`)."""
    from packaging.specifiers import SpecifierSet

    pip, conda, lock = _pip_deps(), _conda_deps(), _locked("app")
    assert set(pip) == set(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    pypi_names = {v: k for k, v in CONDA_NAMES.items()}
    for name in pip:
        version = lock[_normalise(pypi_names.get(name, name))]
        assert _bounds(conda[name]) == f"=={version}", f"environment.yml {conda[name]!r}: the lock has {version}"
        assert version in SpecifierSet(_bounds(pip[name]).split(";")[0]), f"{name} {version} is outside pyproject's {pip[name]!r}"


def test_the_locks_pin_every_dependency_with_hashes_and_agree():
    """requirements/app.lock (make setup) is the runtime part of dev.lock (make test, make lab): the same
    versions and hashes; every direct dependency of pyproject, extras included, is pinned within its
    range; every pin carries hashes (pip installs them with --require-hashes)."""
    from packaging.requirements import Requirement

    app, dev = _locked("app"), _locked("dev")
    app_hashes, dev_hashes = _hashes("app"), _hashes("dev")
    assert app and set(app) <= set(dev)
    for name, version in app.items():
        assert dev[name] == version, f"{name}: app.lock {version}, dev.lock {dev[name]}"
        assert app_hashes[name] and app_hashes[name] == dev_hashes[name], f"{name}: hashes differ or missing"
    assert all(dev_hashes[name] for name in dev), "a dev.lock pin without hashes"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for group, lock in [(project["dependencies"], app), *[(v, dev) for v in project["optional-dependencies"].values()]]:
        for req in map(Requirement, group):
            name = _normalise(req.name)
            assert name in lock, f"{req} is not locked"
            assert lock[name] in req.specifier, f"{name} {lock[name]} is outside {req}"
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes" in makefile and "-r $(APP_LOCK)" in makefile and "-r $(DEV_LOCK)" in makefile


def test_the_environment_make_built_holds_the_locked_versions():
    """In the .venv `make test` built, every installed package listed in dev.lock has the locked
    version, and nothing that the lock lacks is installed but pip's own tools and the package
    itself (issue 25: installed versions equal the lock)."""
    from importlib import metadata

    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not the project's .venv (make setup-test builds it from the lock)")
    lock = _locked("dev")
    installed = {_normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {n: (installed.get(n), v) for n, v in lock.items() if installed.get(n) != v}
    assert not wrong, f"installed vs locked: {wrong}"
    extra = set(installed) - set(lock) - {"pip", "retention-report"}
    assert not extra, f"installed but not locked: {sorted(extra)}"


def test_environment_yml_installs_the_package():
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"- pip:\n\s+- -e \.\s*$", text), "environment.yml must end with pip: [-e .]"


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_clean(path):
    # with the nbstripout git filter active (make setup), the open notebook may keep its outputs:
    # what a commit stores is checked
    nb = json.loads(committed_text(path))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"
    first = nb["cells"][0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{path.name}: first cell must be tagged parameters"
    src = "".join(first["source"])
    for name in ("period: str", "config_path: str", "data: str", "metrics_path: str"):
        assert name in src, f"{path.name}: parameters cell lacks a typed {name!r}"
    assert "password" not in src.lower()


@pytest.mark.slow
def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    targets = re.findall(r"^\.PHONY: (\S+)", (REPO / "Makefile").read_text(), re.M)
    assert {"setup", "report", "reports", "metrics", "email", "lab", "test", "lint", "clean"} <= set(targets)
    for t in targets:
        if t != "help" and not t.startswith("_"):
            assert re.search(rf"^\s+{re.escape(t)}\s", re.sub(r"\x1b\[[0-9;]*m", "", out), re.M), f"make help misses {t}"


@pytest.mark.slow
def test_make_help_shows_no_make_syntax():
    """Issue 22: `make help` printed "Render reports/$(PERIOD)/" literally."""
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "$(" not in out and "${" not in out, [line for line in out.splitlines() if "$" in line]
    assert "reports/<PERIOD>/" in out


@pytest.mark.slow
def test_make_default_goal_is_help():
    out = subprocess.run(["make", "-s"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "Usage: make" in out


@pytest.mark.slow
def test_make_report_without_period_fails_clearly():
    r = subprocess.run(["make", "-s", "report", "VENV=" + str(REPO / ".venv")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0
    assert "PERIOD is required" in r.stderr


def test_the_fast_lane_refuses_to_start_a_process(request):
    """Issue 23 point 6: in a test not marked slow, starting a process fails with the way out in the
    message (tests/conftest.py), whichever way it is started; nothing is started."""
    from conftest import StartsAProcess, _no_process_started

    with _no_process_started(request.node) as started:
        with pytest.raises(StartsAProcess, match=r"this test starts a process \(true\): mark it @pytest.mark.slow"):
            subprocess.run(["true"], check=True)
        with pytest.raises(StartsAProcess, match=r"os.system\(true\)"):
            os.system("true")
    assert started == ["true", "os.system(true)"]
    assert "-m \"not slow\"" in (REPO / "Makefile").read_text()


# ------------------------------------------------------------------------------------- the wheel

# what a source copy for building leaves out: environments, data, outputs, caches (top level
# only: retention_report/data/ is a package)
_TOP_LEVEL_ONLY = {".venv", ".git", "data", "reports", "build", ".tmp", ".pytest_cache", ".ruff_cache"}
_ANYWHERE = shutil.ignore_patterns("*.egg-info", "__pycache__", ".ipynb_checkpoints", "*.failed")


def _not_source(folder: str, names: list[str]) -> set[str]:
    skip = set(_ANYWHERE(folder, names))
    if Path(folder) == REPO:
        skip |= _TOP_LEVEL_ONLY & set(names)
    elif Path(folder) == REPO / "benchmarks":
        skip |= {"data"} & set(names)
    return skip


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_from_any_folder(tmp_path):
    """Issue 16, item 5: `pip install <repo>` (not editable) into a fresh virtual environment, then
    from an empty folder `sample-data` + `run` write a complete report, and `init` + `make report`
    renders a project's own notebooks and templates."""
    src = tmp_path / "src"  # built from a copy: the shared working tree gets no build/ folder
    shutil.copytree(REPO, src, ignore=_not_source)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(src), "-w", str(tmp_path / "dist")])
    wheel = next((tmp_path / "dist").glob("retention_report-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    res = "retention_report/_resources/"
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        assert res + "notebooks/" + nb.name in names
    for f in (REPO / "templates").rglob("*"):
        if f.is_file():
            assert res + f.relative_to(REPO).as_posix() in names
    assert {res + "config/example.toml", "retention_report/_project/Makefile", "retention_report/py.typed"} <= names
    # the message catalogs, compiled by the build step (the reader's language: README)
    catalogs = sorted((REPO / "retention_report" / "locale").glob("*/LC_MESSAGES/retention_report.po"))
    assert len(catalogs) >= 2 and all(po.relative_to(REPO).with_suffix(".mo").as_posix() in names for po in catalogs)
    assert not [n for n in names if "pgtemp" in n or n.startswith(("tests/", "notebooks/", "templates/"))]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])  # a real fresh environment, no system site-packages
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "RETENTION_REPORT_SAMPLE", "JUPYTER_PATH") and not k.startswith("MAKE")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", XDG_CACHE_HOME=str(tmp_path / "cache"))
    where = _run(["python", "-c", "from retention_report import paths; print(paths.CHECKOUT_ROOT); "
                  "print(paths.NOTEBOOKS_DIR); print(paths.SAMPLE_PATH)"], env=env, cwd=tmp_path).stdout.split("\n")
    assert where[0] == "None" and where[1].startswith(str(venv)) and where[2].startswith(str(tmp_path / "cache"))

    empty = tmp_path / "empty"
    empty.mkdir()
    _run(["retention-report", "sample-data", "--path", "p.parquet", "--customers", "2000"], env=env, cwd=empty)
    _run(["retention-report", "run", "--period", "2024-Q1", "--data", "p.parquet"], env=env, cwd=empty)
    out = empty / "reports" / "2024-Q1"
    for name in ("report.html", "report.pdf", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    # every registered section ran (notebooks/explore.ipynb is a scratch notebook, not a section)
    from retention_report.sections import SECTIONS

    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == sorted(s.notebook for s in SECTIONS)
    # the installed package computes what the checkout computes
    checkout = _run([sys.executable, "-m", "retention_report.cli", "metrics", "--period", "2024-Q1",
                     "--data", "p.parquet", "--stdout"], cwd=empty).stdout
    installed, ours = json.loads((out / "metrics.json").read_text()), json.loads(checkout)
    installed.pop("generated_at", None), ours.pop("generated_at", None)
    for d in (installed, ours):  # either may have been a warm load of the same file
        d["data_quality"].pop("derived_tables_cached_at", None)
    assert installed == ours

    # a project of its own: its notebooks and templates are the ones rendered; its kernel registered
    _run(["retention-report", "init", "my-reports"], env=env, cwd=empty)
    project = empty / "my-reports"
    appendix = project / "notebooks" / "08_appendix.ipynb"
    appendix.write_text(appendix.read_text().replace('rr.heading(\\"appendix\\")',
                                                     'rr.heading(\\"appendix\\"); print(\\"project-notebook-marker\\")'))
    assert "project-notebook-marker" in appendix.read_text()
    with (project / "templates" / "report" / "report.css").open("a") as fh:
        fh.write("\n/* project-template-marker */\n")
    _run(["make", "-C", "my-reports", "kernel"], env=env, cwd=empty)
    assert (venv / "share" / "jupyter" / "kernels" / "retention-report" / "kernel.json").is_file()
    _run(["make", "-C", "my-reports", "report", "PERIOD=2024-Q1", f"DATA={empty / 'p.parquet'}"], env=env, cwd=empty)
    html = (project / "reports" / "2024-Q1" / "report.html").read_text()
    assert "project-notebook-marker" in html and "project-template-marker" in html
    assert (project / "reports" / "2024-Q1" / "report.pdf").stat().st_size > 0
