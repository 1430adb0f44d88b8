"""Secrets (database and SMTP passwords): only from the environment or a git-ignored ``.env``.

They are never read from the config file, the command line or notebook parameters (papermill writes
parameters into the executed notebooks).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_secret"]


def read_secret(name: str, env_file: str | os.PathLike[str] = ".env") -> str | None:
    """The value of the environment variable ``name``, else of the ``name=…`` line of ``env_file``
    (default: ``.env`` in the working directory; ``export``, quotes and comments as in a shell; no
    ``$VAR`` interpolation). The environment wins; ``None`` when neither has a non-empty value
    (an empty environment variable with nothing in ``.env`` gives ``""``)."""
    if not name:
        return None
    value = os.environ.get(name)
    if value:
        return value
    path = Path(env_file)
    if path.is_file():
        from dotenv import dotenv_values

        from_file = dotenv_values(path, interpolate=False, encoding="utf-8").get(name)
        if from_file:
            return from_file
    return value  # "" (set but empty) or None
