"""Per-customer predicted-value scores as a CSV file, for CRM use (``retention-report scores``).

The one place per-customer predictions leave the engine: written only on request, never part of a
report or of metrics.json (they carry customer ids). The file is written atomically and an
existing file is replaced only with ``force``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .fsio import atomic_path
from .periods import Period

if TYPE_CHECKING:
    from .config import Settings
    from .data import Dataset

__all__ = ["ScoresError", "export_scores"]


class ScoresError(ValueError):
    """The scores cannot be written: the target is unusable, or the data support no prediction."""


def check_scores_out(path: Path | str, force: bool = False) -> Path:
    """The CSV target, checked before any data is read: not a folder, in an existing folder, and
    not an existing file unless ``force``."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ScoresError(f"--out {path} is a folder; name the CSV file to write, e.g. {path / 'scores.csv'}")
    if not path.parent.is_dir():
        raise ScoresError(f"folder {path.parent} does not exist")
    if (path.exists() or path.is_symlink()) and not force:
        raise ScoresError(f"{path} exists; use --force to replace it")
    return path


def export_scores(settings: Settings, period: Period, path: Path | str, *, force: bool = False,
                  dataset: Dataset | None = None) -> int:
    """Write the scores of the customers acquired by ``period``'s end (calibration on the data up
    to then) to ``path`` as CSV, highest CLV first; returns the number of customers.

    Raises
    ------
    ScoresError
        ``path`` is unusable (:func:`check_scores_out`) or the data support no prediction (the
        reason of :func:`~retention_report.metrics.predictive.clv_block`).
    DataError
        The data cannot be read, or the period lies outside them.
    """
    from .data import open_dataset
    from .metrics.predictive import clv_block, customer_scores

    target = check_scores_out(path, force)
    ds = dataset if dataset is not None else open_dataset(settings)
    ds.quality.require_overlap(period, ds.source_name)
    block = clv_block(ds, period, settings)
    if block.block is None:
        raise ScoresError(f"no scores for {period.label}: {block.reason}")
    t = customer_scores(ds, period, settings)
    # money to cents, weeks and expectations to 4 decimals: a CRM file, not an audit of the fit
    table = t.select(
        "customer_id", "acquired", "x", t_x=t.t_x.round(4), T=t["T"].round(4), m=t.m.round(2),
        value=t.value.round(2), p_alive=t.p_alive.round(4), expected_purchases=t.expected_purchases.round(4),
        expected_spend=t.expected_spend.round(2), clv=t.clv.round(2),
    )
    table = table.order_by([table.clv.desc(), table.customer_id])
    with atomic_path(target, mode=0o600) as tmp:  # customer ids: readable by the owner only
        table.to_csv(tmp)
    return int(block.block["customers"])
