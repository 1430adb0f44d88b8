"""The package's layers (README, "Architecture"): imports point down, never up, and no module
imports another module's private names. Read from the source (ast), nothing is imported or run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "retention_report"

# README "Architecture", bottom to top: a module may import its own layer and the layers before it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("__init__", "config", "periods", "i18n", "sections", "paths", "fsio", "secrets")),
    ("data", ("data", "sample")),
    ("metrics", ("metrics", "clv")),
    ("document", ("document", "findings", "formatting", "kpis")),
    ("presentation", ("tables", "tables_clv", "plots", "plots_clv")),
    ("notebooks' API", ("context", "notebook", "runbook", "texts", "scores", "scaffold", "kernelspec", "gitsetup")),
    ("report run", ("runs", "mail", "pipeline", "kernel", "outputs", "render", "cover", "archive")),
    ("command line", ("cli",)),
]
RANK = {name: i for i, (_layer, names) in enumerate(LAYERS) for name in names}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        out.append((".".join(parts), path))
    return out


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module relative to the package, the names taken from it, line) of every relative
    import in ``path``, at any depth (function-level imports count)."""
    package = module.split(".")[:-1]  # a module's own package (for __init__: the package itself)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[: len(package) - (node.level - 1)]
        names = [a.name for a in node.names]
        if node.module:
            found.append((".".join([*base, node.module]), names, node.lineno))
        else:  # from . import x: each name is a module (or a name of the package's __init__)
            found.extend((".".join([*base, name]), [], node.lineno) for name in names)
    return found


def _layer_of(module: str) -> int:
    top = module.split(".")[0]
    if top not in RANK:
        raise AssertionError(f"{module}: not in the README's layer table (tests/test_architecture.py LAYERS)")
    return RANK[top]


def test_every_module_has_a_layer():
    for module, _path in _modules():
        _layer_of(module)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_point_down_the_layers(module, path):
    here = _layer_of(module)
    up = []
    for target, _names, line in _imports(module, path):
        if target.split(".")[0] in ("__version__", "__init__", ""):
            continue
        there = _layer_of(target)
        if there > here:
            up.append(f"line {line}: {target} ({LAYERS[there][0]}) from {module} ({LAYERS[here][0]})")
    assert not up, "imports pointing up the layers:\n" + "\n".join(up)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_no_module_imports_another_modules_private_names(module, path):
    private = [f"line {line}: {name} from {target}" for target, names, line in _imports(module, path)
               for name in names
               # gettext's _ is the one conventional exception; a private module of one's own
               # package (metrics._common inside metrics/) is that package's business
               if name.startswith("_") and not name.startswith("__") and name != "_"
               and target.split(".")[0] != module.split(".")[0]]
    private += [f"line {line}: {target}" for target, _names, line in _imports(module, path)
                if any(p.startswith("_") and not p.startswith("__") for p in target.split("."))
                and target.split(".")[0] != module.split(".")[0]]
    assert not private, "private names of other modules:\n" + "\n".join(private)


def test_the_checks_see_a_wrong_import(tmp_path):
    """The checks themselves: an upward import and a private name are found."""
    bad = tmp_path / "metrics_bad.py"
    bad.write_text("from ..pipeline import run_report\nfrom ..outputs import _special\n")
    found = _imports("metrics.bad", bad)
    assert [(t, n) for t, n, _ in found] == [("pipeline", ["run_report"]), ("outputs", ["_special"])]
    assert _layer_of("pipeline") > _layer_of("metrics.bad")
