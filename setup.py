"""Build step: ship copies of the analysts' notebooks/, templates/ and config/example.toml in the wheel,
and the compiled message catalogs (``retention_report/locale/<lang>/LC_MESSAGES/*.mo``).

The top-level folders stay where the analysts edit them (the project's layout); a wheel carries
copies in ``retention_report/_resources/``, where :mod:`retention_report.paths` finds them when the
package is installed (``pip install .``). An editable install (``pip install -e .``) runs from the
checkout and reads the top-level folders directly, so nothing is copied. Everything else about the
package is in pyproject.toml; the sdist carries the folders through MANIFEST.in.

The catalogs' ``.po`` files are compiled with Babel (a build requirement) into the wheel's ``.mo``
files, which ``retention_report.i18n`` reads; an editable install compiles them in place instead
(``make setup``), and a checkout without them compiles the ``.po`` in memory.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# (folder, pattern): the files copied into retention_report/_resources/<folder>/
RESOURCES = (("notebooks", "*.ipynb"), ("templates", "**/*"), ("config", "example.toml"))


def compile_catalogs(build_lib: Path) -> None:
    """``retention_report/locale/*/LC_MESSAGES/*.po`` → the same ``.mo`` paths under ``build_lib``
    by Babel's ``compile_catalog`` (what ``pybabel compile`` in ``make setup`` and ``make catalogs``
    runs: fuzzy translations left out, as msgfmt does)."""
    from babel.messages.frontend import CompileCatalog

    locale = ROOT / "retention_report" / "locale"
    for po in sorted(locale.glob("*/LC_MESSAGES/*.po")):
        mo = build_lib / po.relative_to(ROOT).with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        cmd = CompileCatalog()
        cmd.input_file, cmd.output_file, cmd.locale, cmd.domain = str(po), str(mo), po.parent.parent.name, po.stem
        cmd.ensure_finalized()
        cmd.run()


class build_py_with_resources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        compile_catalogs(Path(self.build_lib))
        target = Path(self.build_lib) / "retention_report" / "_resources"
        for folder, pattern in RESOURCES:
            files = [f for f in sorted((ROOT / folder).glob(pattern))
                     if f.is_file() and not any(part.startswith((".", "__")) for part in f.relative_to(ROOT).parts)]
            if not files:
                raise SystemExit(f"cannot build retention-report: no {folder}/{pattern} in {ROOT}")
            for f in files:
                dest = target / f.relative_to(ROOT)
                self.mkpath(str(dest.parent))
                self.copy_file(str(f), str(dest))


setup(cmdclass={"build_py": build_py_with_resources})
