"""Where the package finds its files (retention_report.paths), and `retention-report init`: a report
project's layout, its config, its Makefile, and that its own notebooks and templates are the ones a
run uses. (Installing the wheel into a fresh environment: tests/test_packaging.py, slow.)"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from retention_report import paths
from retention_report.cli import app
from retention_report.config import Settings, load_settings
from retention_report.pipeline import section_notebooks
from retention_report.scaffold import ScaffoldError, init_project, project_config

REPO = Path(__file__).resolve().parent.parent
RR = str(Path(sys.executable).with_name("retention-report"))
runner = CliRunner()


# ------------------------------------------------------------------------------------------- paths

def test_a_checkout_uses_its_top_level_folders():
    assert paths.CHECKOUT_ROOT == REPO
    assert paths.NOTEBOOKS_DIR == REPO / "notebooks"
    assert paths.TEMPLATES_DIR == REPO / "templates"
    assert paths.EXAMPLE_CONFIG == REPO / "config" / "example.toml"
    assert {"Makefile", "README.md", "gitignore"} <= {p.name for p in paths.PROJECT_TEMPLATE_DIR.iterdir()}


def test_sample_path_checkout_cache_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("RETENTION_REPORT_SAMPLE", raising=False)
    assert paths._sample_path() == REPO / "data" / "sample" / "payments.parquet"
    monkeypatch.setattr(paths, "CHECKOUT_ROOT", None)  # installed: never into site-packages
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths._sample_path() == tmp_path / "cache" / "retention-report" / "sample" / "payments.parquet"
    monkeypatch.setenv("RETENTION_REPORT_SAMPLE", str(tmp_path / "mine.parquet"))
    assert paths._sample_path() == tmp_path / "mine.parquet"


def test_test_helpers_are_not_in_the_package():
    assert importlib.util.find_spec("retention_report.pgtemp") is None
    assert (REPO / "tests" / "pgtemp.py").is_file()


def test_project_folders_are_relative_to_the_config_file(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.toml").write_text('[report]\nnotebooks_dir = "nb"\ntemplates_dir = "/abs/tpl"\n')
    monkeypatch.chdir(tmp_path)  # any working directory
    s = load_settings("proj/config.toml")
    assert s.report.notebooks_dir == str(proj / "nb")
    assert s.report.templates_dir == "/abs/tpl"
    assert paths.notebooks_dir(s) == proj / "nb"
    assert paths.notebooks_dir(s, "other") == Path("other")  # --notebooks wins
    assert paths.templates_dir(s) == Path("/abs/tpl")
    assert section_notebooks(s)[0] == proj / "nb" / "01_summary.ipynb"
    d = Settings()
    assert paths.notebooks_dir(d) == paths.NOTEBOOKS_DIR and paths.templates_dir(d) == paths.TEMPLATES_DIR


@pytest.mark.slow
def test_render_uses_the_project_templates(tmp_path):
    from retention_report.render import render_html

    tpl = tmp_path / "templates"
    shutil.copytree(paths.TEMPLATES_DIR, tpl)
    with (tpl / "report" / "report.css").open("a") as fh:
        fh.write("\n/* project-template-marker */\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Heading")])
    report = dict.fromkeys(["title", "period_title", "date_range", "source", "previous_title",
                            "year_ago_title", "generated_at", "incomplete_text", "kicker", "version"], "x")
    report["complete"] = True
    assert "project-template-marker" in render_html(nb, report, tpl)
    assert "project-template-marker" not in render_html(nb, report)


# -------------------------------------------------------------------------------------------- init

@pytest.fixture()
def project(tmp_path) -> Path:
    r = runner.invoke(app, ["init", str(tmp_path / "my-reports")])
    assert r.exit_code == 0, r.output
    return tmp_path / "my-reports"


def test_init_writes_the_project_layout(project):
    assert sorted(p.name for p in (project / "notebooks").iterdir()) == sorted(
        p.name for p in paths.NOTEBOOKS_DIR.glob("*.ipynb"))
    for nb in paths.NOTEBOOKS_DIR.glob("*.ipynb"):
        assert (project / "notebooks" / nb.name).read_bytes() == nb.read_bytes()
    for name in ("report/conf.json", "report/index.html.j2", "report/report.css", "email/body.html.j2", "email/body.txt.j2"):
        assert (project / "templates" / name).read_bytes() == (paths.TEMPLATES_DIR / name).read_bytes()
    ignored = (project / ".gitignore").read_text().split()
    assert {"reports/", ".env", "data/"} <= set(ignored)
    assert (project / "README.md").is_file() and (project / "Makefile").is_file()
    assert not [p for p in project.rglob("*") if p.name.startswith((".init", "__")) or ".init-" in p.name]


def test_init_config_is_the_commented_example_pointing_at_the_project(project, tmp_path, monkeypatch):
    text = (project / "config.toml").read_text()
    data = tomllib.loads(text)
    assert data == {"source": {"csv": {}}, "columns": {}, "metrics": {}, "clv": {}, "validation": {},
                    "report": {"notebooks_dir": "notebooks", "templates_dir": "templates"},
                    "engine": {}, "email": {}}
    monkeypatch.chdir(tmp_path)
    s = load_settings(project / "config.toml")
    assert paths.notebooks_dir(s) == project / "notebooks"
    assert paths.templates_dir(s) == project / "templates"
    # every key the example sets is there, commented out, to uncomment
    example = paths.EXAMPLE_CONFIG.read_text().splitlines()
    keys = [line for line in example if re.match(r"[a-z_]+ *=", line) and not line.startswith(("notebooks_dir", "templates_dir"))]
    assert keys and all("# " + line in text.splitlines() for line in keys)


def test_project_config_sets_only_the_project_folders():
    text = project_config(paths.EXAMPLE_CONFIG.read_text())
    assert re.findall(r"(?m)^([a-z_]+) *=", text) == ["notebooks_dir", "templates_dir"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["non-empty folder", "file", "symlink"])
def test_init_refuses_an_existing_path(tmp_path, kind):
    target = tmp_path / "target"
    if kind == "non-empty folder":
        target.mkdir()
        (target / "mine.txt").write_text("keep")
    elif kind == "file":
        target.write_text("keep")
    else:
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "init", str(target)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:") and str(target) in r.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_init_into_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert init_project(tmp_path / "empty") == tmp_path / "empty"
    assert (tmp_path / "empty" / "config.toml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]  # no temporary folder left


@pytest.mark.slow
def test_init_into_a_fresh_git_clone(tmp_path):
    """issue 21 item 10: a folder holding only .git (a fresh `git clone` of an empty repository) is
    accepted; the repository is left as it was and sees the project's files."""
    clone = tmp_path / "clone"
    clone.mkdir()
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    head = (clone / ".git" / "HEAD").read_bytes()
    r = subprocess.run([sys.executable, "-m", "retention_report.cli", "init", str(clone)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in clone.iterdir()) == sorted(
        [".git", ".gitattributes", ".gitignore", "Makefile", "README.md", "config.toml", "notebooks", "templates"])
    assert (clone / ".git" / "HEAD").read_bytes() == head
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True,
                            check=True).stdout
    assert "config.toml" in status and "notebooks/" in status
    assert [p.name for p in tmp_path.iterdir()] == ["clone"]  # no temporary folder left


def test_init_refuses_a_clone_with_files(tmp_path):
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    (clone / "README.md").write_text("theirs")
    with pytest.raises(ScaffoldError, match="not empty"):
        init_project(clone)
    assert (clone / "README.md").read_text() == "theirs" and sorted(p.name for p in clone.iterdir()) == [".git", "README.md"]


# ------------------------------------------------------------------------------- project Makefile

def _make(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "-s", "-C", str(project), f"RR={RR}", *args],
                          capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_project_makefile_documents_itself(project):
    r = _make(project)
    assert r.returncode == 0 and "Usage: make" in r.stdout
    shown = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)
    assert "$(" not in shown, [line for line in shown.splitlines() if "$(" in line]  # issue 22
    targets = re.findall(r"^\.PHONY: (\S+)", (project / "Makefile").read_text(), re.M)
    assert {"help", "report", "reports", "metrics", "email", "lab", "sample", "kernel"} <= set(targets)
    for t in targets:
        if not t.startswith("_") and t != "help":
            assert re.search(rf"^\s+{re.escape(t)}\s", shown, re.M), f"make help misses {t}"


@pytest.mark.slow
def test_project_makefile_needs_period_and_the_installed_command(project):
    r = _make(project, "report")
    assert r.returncode != 0 and "PERIOD is required" in r.stderr
    r = subprocess.run(["make", "-s", "-C", str(project), "report", "PERIOD=2024-Q1", "RR=no-such-retention-report"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no-such-retention-report not found" in r.stderr


@pytest.mark.slow
def test_project_make_metrics_runs_the_installed_package(project, tmp_path):
    data = _write(tmp_path / "payments.csv", "customer_id,paid_at,amount\na,2023-11-05,100\na,2024-01-10,50\n"
                                             "b,2024-02-01,200\nb,2024-03-15,20\n")
    r = _make(project, "metrics", "PERIOD=2024-Q1", f"DATA={data}")
    assert r.returncode == 0, r.stderr
    doc = (project / "reports" / "2024-Q1" / "metrics.json").read_text()
    assert '"period"' in doc


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.slow
def test_project_makefile_uses_its_config_when_config_is_exported_empty(tmp_path):
    """An outer `make` (the checkout's, running the tests) exports CONFIG="": the project's
    Makefile must still pass its own config.toml (its notebooks and templates come from there)."""
    if not shutil.which("make"):  # pragma: no cover
        pytest.skip("make is not installed")
    project = tmp_path / "p"
    init_project(project)
    rr = tmp_path / "rr"
    rr.write_text("#!/bin/sh\necho \"$@\"\n")
    rr.chmod(0o755)
    env = {**os.environ, "CONFIG": ""}
    r = subprocess.run(["make", "-s", "-C", str(project), "report", "PERIOD=2024-Q1", f"RR={rr}"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "--config config.toml" in r.stdout
