"""Packaging: environment.yml and pyproject.toml list the same runtime dependencies; notebooks
are committed clean; the Makefile documents itself."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

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


def test_environment_yml_matches_pyproject():
    pip, conda = _pip_deps(), _conda_deps()
    assert set(pip) == set(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    for name in pip:
        assert _bounds(pip[name]) == _bounds(conda[name]), f"{name}: {pip[name]!r} vs {conda[name]!r}"


def test_environment_yml_installs_the_package():
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"- pip:\n\s+- -e \.\s*$", text), "environment.yml must end with pip: [-e .]"


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_clean(path):
    nb = json.loads(path.read_text())
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


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    targets = re.findall(r"^\.PHONY: (\S+)", (REPO / "Makefile").read_text(), re.M)
    assert {"setup", "report", "reports", "metrics", "email", "lab", "test", "lint", "clean"} <= set(targets)
    for t in targets:
        if t != "help" and not t.startswith("_"):
            assert re.search(rf"^\s+{re.escape(t)}\s", re.sub(r"\x1b\[[0-9;]*m", "", out), re.M), f"make help misses {t}"


def test_make_default_goal_is_help():
    out = subprocess.run(["make", "-s"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "Usage: make" in out


def test_make_report_without_period_fails_clearly():
    r = subprocess.run(["make", "-s", "report", "VENV=" + str(REPO / ".venv")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0
    assert "PERIOD is required" in r.stderr
