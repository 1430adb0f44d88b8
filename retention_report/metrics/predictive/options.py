"""The ``[clv]`` settings as the predicted-value computation reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from ...config import ClvSettings, Settings
from ...data import Dataset

__all__ = ["ClvOptions", "ClvSettingsLike", "clv_options"]


@dataclass(frozen=True)
class ClvOptions:
    """The ``[clv]`` settings (:class:`retention_report.config.ClvSettings`) the computation reads."""

    enabled: bool = True
    model: str = "bg_nbd"
    horizon_days: int = 365
    annual_discount: float = 0.10
    at_risk_threshold: float = 0.5
    min_customers: int = 50


#: what :func:`clv_options` reads the ``[clv]`` settings from
ClvSettingsLike: TypeAlias = "Settings | ClvSettings | Mapping[str, Any] | Dataset | ClvOptions | None"


def clv_options(settings: ClvSettingsLike = None) -> ClvOptions:
    """The ``[clv]`` settings from a :class:`~retention_report.config.Settings`, its ``ClvSettings``,
    a mapping of the same keys, a Dataset (its settings) or None (defaults)."""
    if settings is None:
        return ClvOptions()
    if isinstance(settings, ClvOptions):
        return settings
    if isinstance(settings, Dataset):
        return clv_options(settings.settings)
    section = settings.clv if isinstance(settings, Settings) else settings
    values = section.model_dump() if isinstance(section, ClvSettings) else section
    if not isinstance(values, Mapping):
        raise TypeError(f"expected Settings, ClvSettings or a mapping, got {type(settings).__name__}")
    names = ClvOptions.__dataclass_fields__
    return ClvOptions(**{k: v for k, v in values.items() if k in names})
