"""Remove from this Python environment the packages its lock does not list (`make setup-test`).

`pip install --no-deps -r LOCK` adds and upgrades but never removes: a package an earlier lock
pinned and this one dropped (pytest-postgresql, 2026-12-05) would stay installed, and the
environment would no longer be the lock (tests/test_packaging.py). Run with the environment's own
Python: ``python scripts/drop_unlocked.py requirements/dev.lock``. pip itself and the project
package stay; every removal is printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

KEEP = {"pip", "retention-report"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> set[str]:
    return {normalise(m[1]) for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==", lock.read_text(), re.M)}


def main() -> int:
    lock = Path(sys.argv[1])
    keep = locked(lock)
    if not keep:
        print(f"{lock}: no pinned packages found; nothing removed", file=sys.stderr)
        return 2
    extra = sorted({normalise(d.metadata["Name"]) for d in metadata.distributions()} - keep - KEEP)
    if not extra:
        return 0
    print(f"removing the packages {lock} does not list: {', '.join(extra)}")
    return subprocess.call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *extra])


if __name__ == "__main__":
    raise SystemExit(main())
