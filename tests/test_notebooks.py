"""The analyst's notebook workflow (issue 15): relative paths from the project root, the leads the
report and the notebooks share, alt text on charts, git stripping and diffs, the autoreloading
kernel, the scratch notebook, and sections of one's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from helpers import REPO, committed_text

from retention_report import paths
from retention_report.config import ConfigError, load_settings
from retention_report.context import notebook_root, open_report, resolve_settings
from retention_report.sections import SECTIONS, in_report_order
from retention_report.texts import LEADS, lead_text

NOTEBOOKS = REPO / "notebooks"
EXAMPLE = "config/example.toml"


def _code(path: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code"]


# ---------------------------------------------------------------------- 1. relative paths in notebooks

def test_the_project_root_is_found_from_the_notebooks_folder(tmp_path):
    assert paths.project_root(NOTEBOOKS)[0] == REPO  # the checkout: pyproject.toml
    project = tmp_path / "my-reports"  # a report project (retention-report init): config.toml
    (project / "notebooks").mkdir(parents=True)
    (project / "config.toml").write_text("")
    root, looked = paths.project_root(project / "notebooks")
    assert root == project and looked == [project / "notebooks", project]


def test_relative_notebook_parameters_are_taken_from_the_project_root(monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)  # where JupyterLab runs a notebook
    root = notebook_root(EXAMPLE, "data/payments.parquet")
    assert root == REPO
    s = resolve_settings(EXAMPLE, "data/payments.parquet", root=root)
    assert s.source.path == str(REPO / "data" / "payments.parquet")
    assert Path(s.engine.cache_dir).is_absolute()
    # what make report / the CLI (working directory: the root) reads for the same strings
    monkeypatch.chdir(REPO)
    cli = resolve_settings(EXAMPLE, "data/payments.parquet")
    assert Path(cli.source.path).resolve() == Path(s.source.path)
    assert cli.model_dump(exclude={"source", "engine"}) == s.model_dump(exclude={"source", "engine"})


def test_a_relative_source_path_in_the_config_is_taken_from_the_root(tmp_path):
    (tmp_path / "config.toml").write_text('[source]\npath = "data/p.csv"\n')
    s = resolve_settings("config.toml", "", root=tmp_path)
    assert s.source.path == str(tmp_path / "data" / "p.csv")
    assert resolve_settings("", "https://example.com/p.csv", root=tmp_path).source.url == "https://example.com/p.csv"


def test_a_missing_config_names_the_path_looked_at_and_the_root(monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)
    with pytest.raises(ConfigError) as err:
        open_report("2024-Q1", config_path="config/nope.toml")
    msg = str(err.value)
    assert str(REPO / "config" / "nope.toml") in msg and f"project root {REPO}" in msg


def test_without_a_project_root_a_relative_path_names_the_folders_looked_in(tmp_path, monkeypatch):
    lonely = tmp_path / "a" / "b"
    lonely.mkdir(parents=True)
    if paths.project_root(lonely)[0] is not None:
        pytest.skip("a folder above the temporary folder holds a project marker")
    monkeypatch.chdir(lonely)
    with pytest.raises(ConfigError, match=rf"no project root was found: looked for pyproject.toml, config.toml, "
                                          rf"Makefile in {re.escape(str(lonely))} and every folder above"):
        notebook_root(EXAMPLE)
    assert notebook_root("/abs/config.toml") is None  # absolute paths need no root


def test_in_a_report_run_the_parameters_are_used_as_given(monkeypatch, tmp_path):
    """The pipeline passes the run's parameters (config absolute); the notebook's settings must be
    the run's, or it would not recognise the section results computed for them."""
    monkeypatch.chdir(NOTEBOOKS)
    ctx = open_report("2024-Q1", config_path=str(REPO / EXAMPLE), data="data/x.parquet",
                      metrics_path=str(tmp_path / "metrics.json"))
    assert ctx.settings.source.path == "data/x.parquet"


# ------------------------------------------------------------------------- 2. leads, one source

def _lead_keys(path: Path) -> list[str]:
    return [k for c in _code(path) for k in re.findall(r'rr\.lead\("([^"]+)"\)', c.source)]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.name)
def test_each_section_notebook_opens_with_its_lead_and_hides_its_setup(section):
    path = NOTEBOOKS / section.notebook
    nb = nbformat.read(str(path), as_version=4)
    heading = next(i for i, c in enumerate(nb.cells) if c.source.strip() == f'rr.heading("{section.name}")')
    assert nb.cells[heading + 1].source.strip() == f'rr.lead("{section.name}")', "the lead follows the heading"
    for key in _lead_keys(path):
        assert key == section.name or key.startswith(section.name + "."), key
        lead_text(key)
    # the setup cell (imports, open_report) is for the analyst: tagged out of the report
    for cell in nb.cells[1:heading]:
        assert cell.cell_type != "code" or "remove-cell" in cell.metadata.get("tags", []), cell.source


def test_every_lead_is_shown_by_a_notebook():
    used = {k for s in SECTIONS for k in _lead_keys(NOTEBOOKS / s.notebook)}
    assert set(LEADS) == used


def test_lead_displays_markdown(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    from retention_report import lead

    lead("cohorts")
    assert shown == [({"text/markdown": LEADS["cohorts"], "text/plain": LEADS["cohorts"]}, True)]
    with pytest.raises(KeyError, match="no lead 'nope'; known: .*'cohorts'"):
        lead_text("nope")


# -------------------------------------------------------------------------------- 5. alt text

def test_alt_text_is_the_chart_title():
    import matplotlib.pyplot as plt

    from retention_report.plots import alt_text

    fig, ax = plt.subplots()
    ax.set_title("Returning customers bring 70% of revenue\nwhile making up 40% of buyers")
    assert alt_text(fig) == "Returning customers bring 70% of revenue while making up 40% of buyers"
    fig2, ax2 = plt.subplots()
    ax2.set_xlabel("Days")
    ax2.set_ylabel("Customers")
    assert alt_text(fig2) == "Chart of Customers by Days"
    plt.close("all")


def _kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "retention-report" if "retention-report" in KernelSpecManager().find_kernel_specs() else "python3"


def _execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 300) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name=_kernel(), resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


@pytest.mark.slow
def test_charts_in_the_rendered_html_have_their_title_as_alt_text(tmp_path):
    from retention_report.render import combine_notebooks, render_html

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Marker section"),
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nfrom retention_report import notebook\nnotebook.setup()\n"
            "fig, ax = plt.subplots(); ax.plot([1, 2]); ax.set_title('Revenue grew 12% <on> Q4')\nplt.show()"),
        # a chart shown without the package's setup: described by its heading
        nbformat.v4.new_markdown_cell("### Unset chart"),
        nbformat.v4.new_code_cell(
            "from IPython.display import Image, display\nimport base64\n"
            "display(Image(data=base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
            "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==')))"),
    ]
    _execute(nb, tmp_path, timeout=120)
    png = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert png[0].metadata["image/png"]["alt"] == "Revenue grew 12% <on> Q4"
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, str(path))
    html = render_html(combine_notebooks([path]), {"title": "T", "version": "0"})
    alts = re.findall(r'<img [^>]*?alt="([^"]*)"', html)
    assert alts == ["Revenue grew 12% &lt;on&gt; Q4", "Chart: Unset chart"]
    assert "No description has been provided" not in html


# --------------------------------------------------------- the done-when: notebooks as JupyterLab runs them

def _with_config(path: Path, config_path: str) -> nbformat.NotebookNode:
    """The notebook as an analyst edits it in JupyterLab: the parameters cell's config_path set."""
    nb = nbformat.read(str(path), as_version=4)
    params = nb.cells[0]
    assert "parameters" in params.metadata.get("tags", [])
    params.source, n = re.subn(r'^config_path: str = ""', f'config_path: str = "{config_path}"', params.source, flags=re.M)
    assert n == 1
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("name", [s.notebook for s in SECTIONS] + ["explore.ipynb"])
def test_each_shipped_notebook_runs_as_in_jupyterlab(name):
    """Working directory notebooks/, no papermill parameters, a config path relative to the
    project root — as an analyst opens it with `make lab`."""
    nb = _execute(_with_config(NOTEBOOKS / name, EXAMPLE), NOTEBOOKS)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    for o in outputs:
        if "image/png" in o.get("data", {}):
            assert o.metadata["image/png"].get("alt"), f"{name}: a chart without alt text"
    section = next((s for s in SECTIONS if s.notebook == name), None)
    if section is not None:
        assert any(o.get("data", {}).get("text/markdown") == LEADS[section.name] for o in outputs)
    assert not (NOTEBOOKS / ".cache").exists(), "the cache is the project's, not notebooks/.cache"


# ------------------------------------------------------------------------------- 3. git habits

def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull}
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.slow
def test_a_notebook_committed_with_outputs_is_stored_stripped(tmp_path):
    pytest.importorskip("nbstripout", reason="the [git] extra (make setup installs it)")
    from retention_report.gitsetup import ATTRIBUTES, configure

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert configure(repo)
    assert ATTRIBUTES in (repo / ".gitattributes").read_text().splitlines()
    assert configure(repo)[-1].startswith("git filter")  # again: .gitattributes not touched twice
    nb = nbformat.read(str(NOTEBOOKS / "03_segments.ipynb"), as_version=4)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="secret numbers\n")]
    nb.cells[3].execution_count = 7
    nb.cells[3].metadata["tags"] = ["remove-cell"]
    nbformat.write(nb, str(repo / "03_segments.ipynb"))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "a notebook run in JupyterLab")
    stored = nbformat.reads(_git(repo, "show", "HEAD:03_segments.ipynb"), as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in stored.cells if c.cell_type == "code")
    assert stored.cells[3].metadata["tags"] == ["remove-cell"]  # tags (what reaches the report) kept
    assert [c.id for c in stored.cells] == [c.id for c in nb.cells]  # ids kept: no renumbering noise
    assert "secret numbers" in (repo / "03_segments.ipynb").read_text()  # the open notebook keeps them
    assert _git(repo, "status", "--porcelain") == ""
    if (Path(sys.executable).parent / "git-nbdiffdriver").exists() or _has("nbdime"):
        nb.cells[4].source += "\n# a changed line"
        nbformat.write(nb, str(repo / "03_segments.ipynb"))
        diff = _git(repo, "diff", "--no-color")
        assert "nbdiff" in diff and "+# a changed line" in re.sub(r"\x1b\[[0-9;]*m", "", diff)
        assert "secret numbers" not in diff  # outputs are not part of the diff


@pytest.mark.slow
def test_a_notebook_saved_by_jupyterlab_is_stored_as_committed(tmp_path):
    """Issue 22: opening and saving a notebook in JupyterLab writes the running kernel's display name
    ("retention-report (Python 3.11)") and the full language_info (version, mimetype, codemirror
    mode …); with outputs and execution counts, all of it is dropped on commit: git stores the
    notebook byte for byte as it is committed."""
    pytest.importorskip("nbstripout", reason="the [git] extra (make setup installs it)")
    from retention_report.gitsetup import configure

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert configure(repo)
    for name in ("03_segments.ipynb", "explore.ipynb"):
        committed = committed_text(NOTEBOOKS / name)
        nb = nbformat.reads(committed, as_version=4)
        nb.metadata["kernelspec"]["display_name"] = "retention-report (Python 3.11)"
        nb.metadata["language_info"] = {
            "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
            "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3", "version": "3.11.9"}
        code = next(c for c in nb.cells if c.cell_type == "code")
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="numbers\n")]
        code.execution_count = 3
        nbformat.write(nb, str(repo / name))
        _git(repo, "add", name, ".gitattributes")
        _git(repo, "commit", "-q", "-m", "saved in JupyterLab")
        assert _git(repo, "show", f"HEAD:{name}") == committed, name
        assert _git(repo, "status", "--porcelain") == ""


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
def test_the_checkout_declares_the_filter_and_its_notebooks_pass_it_unchanged():
    """Turning the filter on (make setup) shows no committed notebook as modified."""
    pytest.importorskip("nbstripout", reason="the [git] extra (make setup installs it)")
    from retention_report.gitsetup import ATTRIBUTES, git_config

    assert ATTRIBUTES in (REPO / ".gitattributes").read_text().splitlines()
    assert ATTRIBUTES in (paths.PROJECT_TEMPLATE_DIR / "gitattributes").read_text().splitlines()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = committed_text(path)
        stripped = subprocess.run(git_config()["filter.nbstripout.clean"], shell=True,
                                  input=text, capture_output=True, text=True, check=True).stdout
        assert stripped == text, f"{path.name} changes under the filter"


# ---------------------------------------------------------------------- 4. the autoreloading kernel

@pytest.mark.slow
def test_the_kernel_reloads_the_package_after_an_edit(tmp_path, monkeypatch):
    from jupyter_client.manager import start_new_kernel

    from retention_report.kernelspec import install_kernel

    spec = install_kernel("rr-autoreload-test", prefix=str(tmp_path / "prefix"))
    argv = json.loads((spec / "kernel.json").read_text())["argv"]
    assert "--InteractiveShellApp.extensions=autoreload" in argv
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    pkg = tmp_path / "work" / "fakepkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("VALUE = 1\n")
    km, kc = start_new_kernel(kernel_name="rr-autoreload-test", cwd=str(tmp_path / "work"))
    try:
        def run(code: str) -> str:
            out: list[str] = []
            kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(
                m["content"].get("text") or m["content"].get("evalue") or ""))
            return "".join(out)

        # the spec's start-up marked the package (a report's kernel too): retention_report modules reload
        assert "retention_report.kernelspec" in run("%aimport")
        # the same mechanism, pointed at a package we may edit here
        run("from retention_report.kernelspec import autoreload_package\nautoreload_package(package='fakepkg')")
        assert run("import fakepkg.mod\nprint(fakepkg.mod.VALUE)").strip() == "1"
        time.sleep(1.1)  # a newer modification time
        (pkg / "mod.py").write_text("VALUE = 2\n")
        assert run("print(fakepkg.mod.VALUE)").strip() == "2"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_make_lab_opens_jupyterlab_on_the_scratch_notebook_with_the_kernel():
    text = (REPO / "Makefile").read_text()
    lab = text.split("\nlab:", 1)[1].split("\n.PHONY", 1)[0]
    assert 'kernel --name "$$KERNEL"' in lab and "notebooks/explore.ipynb" in lab
    nb = nbformat.read(str(NOTEBOOKS / "explore.ipynb"), as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "retention-report"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for asked in ("ctx.segments()", "co.retention.loc[cohort]", "ds.payments", ".group_by("):
        assert asked in code
    assert "explore.ipynb" not in {s.notebook for s in SECTIONS}


# ------------------------------------------------------------------------ 6. a section of one's own

def test_report_sections_may_name_a_notebook_of_ones_own(tmp_path):
    own = tmp_path / "analysis" / "churn_drivers.ipynb"
    own.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), str(own))
    cfg = tmp_path / "config.toml"
    cfg.write_text('[report]\nsections = ["summary", "cohorts", "analysis/churn_drivers.ipynb", "appendix"]\n')
    s = load_settings(cfg)
    assert s.report.sections[2] == str(own)  # taken from the config file's folder
    from retention_report.pipeline import section_notebooks

    nbs = section_notebooks(s)
    assert [p.name for p in nbs] == ["01_summary.ipynb", "05_cohorts.ipynb", "churn_drivers.ipynb", "08_appendix.ipynb"]
    assert nbs[2] == own
    # placed after the shipped section named before it; first when none is
    order = [x.name for x in in_report_order(["x.ipynb", "appendix", "summary", "y.ipynb"])]
    assert order == ["x.ipynb", "summary", "y.ipynb", "appendix"]


@pytest.mark.parametrize("sections, message", [
    (["summary", "analysis/missing.ipynb"], r"report.sections: notebook not found: .*missing.ipynb \('analysis/missing.ipynb' is taken from the config file's folder"),
    (["summary", "sumary"], r"unknown section\(s\) \['sumary'\].*or the path of a notebook of your own ending in .ipynb"),
    (["summary", "mine/01_summary.ipynb"], r"two sections have the notebook file name\(s\) \['01_summary.ipynb'\]"),
])
def test_bad_section_entries_are_named(tmp_path, sections, message):
    (tmp_path / "mine").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), str(tmp_path / "mine" / "01_summary.ipynb"))
    cfg = tmp_path / "config.toml"
    cfg.write_text("[report]\nsections = " + json.dumps(sections) + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


@pytest.mark.slow
def test_a_section_of_ones_own_runs_in_the_report_and_lands_in_the_toc(tmp_path, sample_parquet):
    from retention_report.context import resolve_settings as settings_of
    from retention_report.periods import parse_period
    from retention_report.pipeline import run_report

    own = tmp_path / "analysis" / "churn_drivers.ipynb"
    own.parent.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell('period = ""\nconfig_path = ""\ndata = ""\nmetrics_path = ""', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("## Churn drivers"),
        nbformat.v4.new_code_cell(
            "import retention_report as rr\nctx = rr.open_report(period, config_path=config_path, data=data, metrics_path=metrics_path)\n"
            "print('own-section-marker', ctx.period.label, ctx.kpis['customers'] > 0)"),
    ]
    nbformat.write(nb, str(own))
    cfg = tmp_path / "config.toml"
    cfg.write_text('[report]\nsections = ["summary", "analysis/churn_drivers.ipynb", "appendix"]\n')
    settings = settings_of(str(cfg), str(sample_parquet))
    result = run_report(settings, parse_period("2024-Q1"), config_path=str(cfg), data=str(sample_parquet),
                        out_dir=tmp_path / "out", progress=lambda _m: None)
    html = result.html.read_text()
    assert "own-section-marker 2024-Q1 True" in html
    toc = html.split('class="rr-toc"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'<a href="#[^"]+">([^<]+)</a>', toc) == ["Executive summary", "Churn drivers", "Appendix"]
    assert (result.out_dir / "notebooks" / "churn_drivers.ipynb").is_file()
