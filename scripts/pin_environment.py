"""Pin environment.yml's runtime dependencies to the versions requirements/app.lock holds
(`make lock` runs it after compiling the locks; tests/test_packaging.py checks the result)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    lock = {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in
            re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", (REPO / "requirements/app.lock").read_text(), re.M)}
    path = REPO / "environment.yml"
    conda_to_pypi = {"ibis-framework-core": "ibis-framework"}

    def pin(m: re.Match[str]) -> str:
        name = m.group(2)
        pypi = conda_to_pypi.get(name, name)
        if pypi not in lock:
            return m.group(0)
        return f"{m.group(1)}{name}=={lock[pypi]}{m.group(4) or ''}"

    text = re.sub(r"^(  - )([A-Za-z0-9_.\-]+)(==[^\s#]+)(\s+#.*)?$", pin, path.read_text(), flags=re.M)
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
