"""retention-report: sales and customer-retention reports from a payment log.

The public API is re-exported lazily so that ``import retention_report.periods`` (used to fail
fast on a bad PERIOD) stays cheap and does not load Ibis, DuckDB or pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Period": "periods",
    "parse_period": "periods",
    "PeriodError": "periods",
    "Settings": "config",
    "load_settings": "config",
    "ConfigError": "config",
    "Dataset": "data",
    "DataError": "data",
    "open_dataset": "data",
    "dataset_from_frame": "data",
    "metrics_document": "document",
    "period_kpis": "metrics",
    "ReportContext": "context",
    "open_report": "context",
    "lead": "notebook",
    "heading": "notebook",
    "unobservable_keys": "formatting",
    "unobservable_reason": "formatting",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'retention_report' has no attribute {name!r}")
