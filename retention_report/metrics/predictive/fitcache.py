"""Model fits kept between runs (issue 24): the fits on many rows (the purchase model's main and
backtest fits, the spend fit) are reused when the same rows come again with the same starting
point — the same period run again, as the report after ``metrics``.

A fit is keyed by a SHA-256 of :data:`FORMAT`, the model and the exact input arrays (dtype, shape
and bytes), the starting point among them when one is passed in (the backtest starts from the
main fit and its Hessian), so a fit read from the cache is the one the computation would give, to
the last bit: metrics.json does not depend on what ran before. (A period's backtest rows are the
previous period's main rows, but that fit started elsewhere and agrees only to ~1e-10: not reused.)

Where: the section ``clv_fits`` of the warm cache's ``digests.json`` (:mod:`retention_report.data.cache`
keeps sections it does not know when it writes its own, and ``cache clear`` removes the file), at
most :data:`KEEP` fits, the most recently stored last. Only with ``[engine] cache`` on and a cache
folder that is already this tool's (its marker is there, so the folder's owner is settled by the
warm cache); anything unreadable is a miss, and a write that fails is skipped: the cache only saves
time, never changes a result or fails a run. A concurrent run's update may be lost (then that fit
is computed again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ... import clv
from ...config import Settings
from ...data import cache
from ...fsio import write_atomic

__all__ = ["FORMAT", "KEEP", "FitCache", "fit_key"]

#: part of every key: a change of the fitting code that changes its results changes this
FORMAT = "clv-fits-1"
#: fits kept (a main and a backtest fit of a few periods)
KEEP = 8
_SECTION = "clv_fits"


def fit_key(model: str, *arrays: np.ndarray) -> str:
    """The key of a fit of ``model`` to these exact input arrays."""
    h = hashlib.sha256(f"{FORMAT}\0{model}".encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"\0{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def _encode(fit: clv.FitResult, hessian: np.ndarray | None) -> dict[str, Any]:
    return {
        "model": fit.model, "params": dict(fit.params), "log_likelihood": fit.log_likelihood,
        "converged": fit.converged, "n_customers": fit.n_customers, "n_rows": fit.n_rows,
        "iterations": fit.iterations, "message": fit.message, "n_excluded": fit.n_excluded,
        "hessian": None if hessian is None else hessian.tolist(),
    }


def _decode(rec: Any) -> tuple[clv.FitResult, np.ndarray | None] | None:
    try:
        fit = clv.FitResult(
            model=str(rec["model"]), params={str(k): float(v) for k, v in rec["params"].items()},
            log_likelihood=float(rec["log_likelihood"]), converged=bool(rec["converged"]),
            n_customers=float(rec["n_customers"]), n_rows=int(rec["n_rows"]), iterations=int(rec["iterations"]),
            message=str(rec["message"]), n_excluded=float(rec["n_excluded"]),
        )
        h = rec["hessian"]
        hessian = None if h is None else np.array(h, dtype=float)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not all(math.isfinite(v) for v in fit.values) or (hessian is not None and hessian.shape != (len(fit.params),) * 2):
        return None
    return fit, hessian


class FitCache:
    """The fits kept in ``folder`` (a cache folder of this tool); ``folder`` None keeps nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @classmethod
    def for_settings(cls, settings: Settings | None) -> FitCache:
        """The cache of the run's settings: the warm cache's folder when ``[engine] cache`` is on and
        the folder is this tool's cache folder, else none."""
        if settings is None or not settings.engine.cache:
            return cls(None)
        try:
            folder = cache.cache_dir(settings)
            return cls(folder if (folder / cache.MARKER).is_file() else None)
        except OSError:
            return cls(None)

    def _read(self) -> dict[str, Any]:
        if self.folder is None:
            return {}
        try:
            state = json.loads((self.folder / cache.DIGESTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(state, dict) or state.get("format") != cache.CACHE_FORMAT:
            return {}
        return state

    def get(self, key: str) -> tuple[clv.FitResult, np.ndarray | None] | None:
        """The fit and its Hessian (or None) kept under ``key``, or None."""
        fits = self._read().get(_SECTION)
        rec = fits.get(key) if isinstance(fits, dict) else None
        return None if rec is None else _decode(rec)

    def put(self, key: str, fit: clv.FitResult, hessian: np.ndarray | None = None) -> None:
        """Keep ``fit`` under ``key`` (the oldest fits beyond :data:`KEEP` are dropped)."""
        if self.folder is None:
            return
        rec = _encode(fit, hessian)
        with contextlib.suppress(OSError, ValueError, TypeError):
            state = self._read() or {"format": cache.CACHE_FORMAT}
            fits = state.get(_SECTION)
            fits = {k: v for k, v in fits.items() if k != key} if isinstance(fits, dict) else {}
            fits[key] = rec
            state[_SECTION] = dict(list(fits.items())[-KEEP:])
            write_atomic(self.folder / cache.DIGESTS, json.dumps(state))
