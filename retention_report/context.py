"""What a section notebook works with: the period, settings, data and metrics, computed once.

A notebook's first code cell after ``parameters`` is::

    ctx = rr.open_report(period, config_path=config_path, data=data, metrics_path=metrics_path)

The context opens the data set lazily and caches every result, so notebooks stay short and hold no
business logic. Run interactively with the defaults it computes everything itself; run by the
pipeline it reuses the run's metrics.json and the section results the pipeline computed once
(:meth:`ReportContext.precompute`, saved next to metrics.json): the section notebooks then neither
reopen nor re-validate the data. A section whose inputs differ (another period, other settings, an
edited notebook asking for something else) is computed as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pandas as pd

from .config import ConfigError, MetricSettings, Settings, load_settings
from .data import Dataset, open_dataset
from .document import clean, metrics_document
from .formatting import SAMPLE_SOURCE, SAMPLE_SOURCE_SHORT
from .fsio import atomic_path
from .i18n import set_language, using
from .metrics import (
    CohortMatrices,
    CustomerBridge,
    FrequencySegments,
    SecondPurchase,
    cohort_matrices,
    cohort_segment_curves,
    cohort_window,
    customer_bridge,
    frequency_segments,
    kpi_trend,
    kpis_of,
    new_vs_returning,
    time_to_second_purchase,
)
from .periods import Period, resolve_period
from .secrets import redact
from .sections import SECTIONS, in_report_order

if TYPE_CHECKING:
    from .metrics.predictive import ClvBlock, PredictedValue

T = TypeVar("T")

__all__ = ["ReportContext", "open_report", "resolve_settings", "notebook_root", "with_sample_columns", "sections_path"]

SECTIONS_FILE = ".sections.pickle"
# report section → the ReportContext methods its shipped notebook reads the data through (registry)
SECTION_DATA: dict[str, tuple[str, ...]] = {s.name: s.data for s in SECTIONS if s.data}


def sections_path(metrics_path: str | Path) -> Path:
    """Where the pipeline keeps the precomputed section results of a run: next to its metrics.json
    (in the run's private temporary folder; removed before the report is put in place)."""
    return Path(metrics_path).with_name(SECTIONS_FILE)


def resolve_settings(
    config_path: str | None = "",
    data: str | None = "",
    *,
    root: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from a config file (or defaults) with ``data`` overriding the source.

    ``data`` is a file path, folder, glob or connection URL; a plain path needs no config when the
    file has the canonical columns ``customer_id, paid_at, amount``.

    ``root`` is the folder relative paths are taken from — ``config_path``, a local ``data`` and
    the config's ``source.path``, ``engine.cache_dir`` and ``engine.temp_directory`` — as a
    notebook needs (:func:`open_report`); None leaves them to the working directory, as the command
    line does (``make report`` runs in the project root, so both mean the same files, and a
    notebook in JupyterLab reuses the cache of ``make report``).

    Raises
    ------
    ConfigError
        The config file is missing (the message names the full path looked at and the root), or
        invalid.
    """
    base = Path(root) if root is not None else None
    if base is not None:
        config_path = _from_root(config_path, base, "config file")
        if data and "://" not in data:
            data = _from_root(data, base, "")
    if data:
        if "://" in data:
            overrides.update({"source.url": data, "source.path": "", "source.kind": "auto"})
        else:
            overrides.update({"source.path": data, "source.url": "", "source.kind": "auto"})
    settings = load_settings(config_path or None, **overrides)
    if base is not None:  # the config's relative paths, read as make report (in the root) reads them
        fixed = {key: str(base / value) for key, value in (
            ("source.path", settings.source.path),
            ("engine.cache_dir", settings.engine.cache_dir),
            ("engine.temp_directory", settings.engine.temp_directory),
        ) if value and not Path(value).expanduser().is_absolute()}
        if fixed:
            settings = settings.with_overrides(**fixed)
    from .config import refuse_inline_secrets

    refuse_inline_secrets(settings)  # a password in the URL: refused before any data are read
    return with_sample_columns(settings)


def _from_root(value: str | None, root: Path, what: str) -> str:
    """``value`` made absolute from ``root`` when relative; for the config file, checked to exist,
    naming where it was looked for."""
    if not value:
        return ""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    full = root / path
    if what and not full.is_file():
        raise ConfigError(f"{what} not found: {full} ({value!r} is taken from the project root {root}; "
                          "give a path relative to it, or an absolute one)")
    return str(full)


def notebook_root(config_path: str | None = "", data: str | None = "",
                  start: str | os.PathLike[str] | None = None) -> Path | None:
    """The project root relative notebook parameters are taken from: found from the notebook's
    folder (``start``, default the working directory — JupyterLab runs a notebook in its folder) by
    :func:`retention_report.paths.project_root`. None when no parameter is a relative path and
    there is no root; a relative one without a root is an error naming the folders looked in."""
    from .paths import PROJECT_MARKERS, project_root

    root, looked = project_root(start)
    if root is not None:
        return root
    for what, value in (("config_path", config_path), ("data", data)):
        if value and "://" not in value and not Path(value).expanduser().is_absolute():
            raise ConfigError(
                f"{what} {value!r} is relative, but no project root was found: looked for "
                f"{', '.join(PROJECT_MARKERS)} in {looked[0]} and every folder above it up to "
                f"{looked[-1]}; give an absolute path, or open the notebook inside the project")
    return None


def with_sample_columns(settings: Settings) -> Settings:
    """With no data configured the embedded sample is used: map its optional columns (order id,
    cost, channel/country/platform segments) unless the config maps columns itself."""
    from .config import ColumnSettings

    src = settings.source
    uses_sample = src.kind == "sample" or (src.kind == "auto" and not src.path and not src.url)
    if not uses_sample or settings.columns != ColumnSettings():
        return settings
    return settings.with_overrides(**{
        "columns.order_id": "order_id",
        "columns.cost": "cost",
        "columns.segments": ["channel", "country", "platform"],
        "source.name": src.name or SAMPLE_SOURCE,
    })


@dataclass
class ReportContext:
    """Period + settings + data + cached metric results for one report."""

    period: Period
    settings: Settings
    metrics_path: str = ""
    dataset: Dataset | None = field(default=None, repr=False)  # opened on first use when None
    # results by (method, arguments): computed once, shared with the run's notebooks
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _clv: dict[str, Any] = field(default_factory=dict, repr=False)  # the CLV fits (not shared)

    # ---- basics -------------------------------------------------------------------------------
    @property
    def metrics(self) -> MetricSettings:
        """The metric conventions in force (``[metrics]`` of the config)."""
        return self.settings.metrics

    @property
    def currency(self) -> str:
        return self.settings.report.currency

    @property
    def has_cost(self) -> bool:
        """A cost column is mapped (margins can be shown) — known without opening the data."""
        return bool(self.settings.columns.cost)

    @property
    def ds(self) -> Dataset:
        """The validated data set: the one given, else opened (and validated) on first use."""
        if self.dataset is None:
            self.dataset = open_dataset(self.settings)
        return self.dataset

    @cached_property
    def doc(self) -> dict[str, Any]:
        """The metrics.json document of the period (read from the run, or computed)."""
        if self.metrics_path and Path(self.metrics_path).is_file():
            doc: dict[str, Any] = json.loads(Path(self.metrics_path).read_text(encoding="utf-8"))
            return doc
        self.ds.quality.require_overlap(self.period, self.ds.source_name)  # no report of zeros
        with using(self.settings.report.language):  # findings in the report's language (i18n.py)
            return metrics_document(self.ds, self.period, self.metrics, kpis=self.kpis_of, clv=self.clv_block(),
                                    extra=self.header_info(), min_change=self.settings.report.min_change.model_dump())

    def header_info(self) -> dict[str, Any]:
        """Report metadata stored in metrics.json (title, source, currency, generation time)."""
        return {
            "title": self.settings.report.title,
            "currency": self.currency,
            "source": redact(self.source_name),
            "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }

    @property
    def source_name(self) -> str:
        s = self.settings.source
        if s.name:
            return s.name
        if self.dataset is not None:
            return self.dataset.source_name
        return s.path or SAMPLE_SOURCE_SHORT

    @property
    def kpis(self) -> dict[str, Any]:
        """The period's KPIs (metrics.json's ``kpis``): from the document when it is at hand (a
        report run's metrics.json, or computed before), else computed alone — a notebook asking
        for the headline numbers does not pay for the cohorts and the prediction (issue 13)."""
        if "doc" in self.__dict__ or (self.metrics_path and Path(self.metrics_path).is_file()):
            kpis: dict[str, Any] = self.doc["kpis"]
            return kpis
        self.ds.quality.require_overlap(self.period, self.ds.source_name)  # as doc does
        kpis = clean(self.kpis_of([self.period])[0])  # rounded as in metrics.json
        return kpis

    @property
    def complete(self) -> bool:
        return bool(self.doc.get("complete", True))

    # ---- section data (cached) ----------------------------------------------------------------
    def _memo(self, key: Hashable, fn: Callable[[], T]) -> T:
        """The result cached under ``key`` — ``(method, *arguments)`` — or ``fn()`` computed once."""
        if key not in self._cache:
            self._cache[key] = fn()
        return cast(T, self._cache[key])

    def kpis_of(self, periods: Sequence[Period]) -> list[dict[str, Any]]:
        """The KPIs of ``periods``, each computed once per context (metrics.json's three periods are
        also periods of the trend); the distinct orders of those not yet known in one query."""
        missing = [p for p in dict.fromkeys(periods) if ("kpis", p) not in self._cache]
        for p, k in zip(missing, kpis_of(self.ds, missing, self.metrics), strict=True):
            self._cache[("kpis", p)] = k
        return [self._cache[("kpis", p)].copy() for p in periods]  # keeps the intervals' estimates

    def new_vs_returning(self) -> pd.DataFrame:
        return self._memo(
            ("new_vs_returning",),
            lambda: new_vs_returning(self.ds.daily, self.ds.customers, self.period, self.metrics.split_basis,
                                     days=self.ds.days),
        )

    def trend(self, n: int | None = None) -> pd.DataFrame:
        n = n or self.metrics.trend_periods
        return self._memo(("trend", n), lambda: kpi_trend(self.ds, self.period, n, self.metrics, kpis=self.kpis_of))

    def segments(self) -> FrequencySegments:
        o = self.metrics
        return self._memo(
            ("segments",),
            lambda: frequency_segments(
                self.ds.daily, self.ds.customers, self.period, o.activity_window_days,
                o.lookback_months, o.frequency_thresholds or None,
            ),
        )

    def bridge(self, period: Period | None = None) -> CustomerBridge:
        p = period or self.period
        return self._memo(
            ("bridge", p),
            lambda: customer_bridge(self.ds.daily, self.ds.customers, p.start, p.end, self.metrics.activity_window_days),
        )

    def cohorts(self) -> CohortMatrices:
        o = self.metrics
        return self._memo(
            ("cohorts",),
            lambda: cohort_matrices(self.ds.daily, self.ds.customers, self.period.end, self.ds.last_day,
                                    o.cohort_grain, o.cohort_count, o.min_group_size),
        )

    def cohort_segment(self) -> str:
        """The segment column cohorts are broken down by ('' when none)."""
        segments = self.settings.columns.segments
        return self.settings.metrics.cohort_segment or (segments[0] if segments else "")

    def cohort_curves(self, segment: str | None = None) -> pd.DataFrame:
        seg = segment or self.cohort_segment()
        if not seg:
            return pd.DataFrame(columns=["segment", "age", "customers", "active", "retention"])
        o = self.metrics

        def curves() -> pd.DataFrame:
            ds = self.ds
            # segment values only of the customers the cohorts hold, from the payments of their days
            window = cohort_window(self.period.end, ds.last_day, o.cohort_grain, o.cohort_count, ds.customers)
            if window is None:  # nothing observable: no curves, no segment values needed
                return pd.DataFrame(columns=["segment", "age", "customers", "active", "retention"])
            customers = ds.customers_with_segments(*window)
            return cohort_segment_curves(ds.daily, customers, seg, self.period.end, ds.last_day,
                                         o.cohort_grain, o.cohort_count, o.cohort_segment_top)

        return self._memo(("cohort_curves", seg), curves)

    def second_purchase(self) -> SecondPurchase:
        return self._memo(("second_purchase",), lambda: time_to_second_purchase(self.ds.customers, self.period.end))

    def clv(self) -> PredictedValue:
        """Predicted customer value (issue 17): a ``metrics.predictive.PredictedValue`` — the
        ``clv`` block of metrics.json and the section's aggregates (no customer ids)."""
        from .metrics.predictive import predicted_value

        return self._memo(("clv",), lambda: predicted_value(
            self.ds, self.period, self.settings, segment=self.cohort_segment(),
            cohort_count=self.settings.metrics.cohort_count, core=self._clv_core()))

    def clv_block(self) -> ClvBlock:
        """The ``clv`` block of metrics.json (a ``ClvBlock``: block and reason), from the same fit
        as :meth:`clv`."""
        from .metrics.predictive import clv_block

        return self._memo(("clv_block",), lambda: clv_block(self.ds, self.period, self.settings,
                                                             core=self._clv_core()))

    def _clv_core(self) -> Any:
        """The fits behind both (kept out of the section results shared with the notebooks: large)."""
        from .metrics.predictive import clv_core

        if "core" not in self._clv:
            self._clv["core"] = clv_core(self.ds, self.period, self.settings)
        return self._clv["core"]

    # ---- sharing the section results with the notebooks of a run ------------------------------
    def fingerprint(self) -> str:
        """What the cached results depend on: period, every setting and the package version."""
        from . import __version__

        key = json.dumps(
            {"period": self.period.label, "settings": self.settings.model_dump(mode="json"), "version": __version__},
            sort_keys=True, default=str,
        )
        return hashlib.sha256(key.encode()).hexdigest()

    def precompute(self, sections: Iterable[str] | None = None) -> list[str]:
        """Compute, on the data set already open, what the shipped notebooks of ``sections`` (names
        of ``report.sections``; all when None) show; returns the methods run."""
        done: list[str] = []
        for section in in_report_order(None if sections is None else list(sections)):
            for method in section.data:
                if method not in done:
                    getattr(self, method)()
                    done.append(method)
        return done

    def save_sections(self, path: str | Path) -> Path:
        """Write the cached section results (small frames and dataclasses) for the run's notebooks;
        atomically, so a notebook never reads half a file."""
        path = Path(path)
        with atomic_path(path, mode=0o600) as tmp, open(tmp, "wb") as fh:  # a private cache
            pickle.dump({"fingerprint": self.fingerprint(), "period": self.period, "entries": dict(self._cache)}, fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        return path

    def load_sections(self, path: str | Path) -> bool:
        """Take the section results a pipeline run saved (:meth:`save_sections`) when they were
        computed for this very period and these settings; False (nothing taken) otherwise."""
        return self._take(_read_saved(Path(path)))

    def _take(self, saved: dict[str, Any] | None) -> bool:
        if saved is None or saved.get("fingerprint") != self.fingerprint():
            return False
        for key, value in saved.get("entries", {}).items():
            self._cache.setdefault(key, value)
        return True


def _read_saved(path: Path) -> dict[str, Any] | None:
    """What :meth:`ReportContext.save_sections` wrote to ``path`` (None: nothing readable there)."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            saved = pickle.load(fh)  # written by this run's pipeline, in its private folder
    except Exception:  # unreadable: compute instead
        return None
    return saved if isinstance(saved, dict) else None

def open_report(
    period: str | Period,
    config_path: str | None = "",
    data: str | None = "",
    metrics_path: str | None = "",
) -> ReportContext:
    """The context a section notebook needs (see the module docstring).

    Run interactively (no ``metrics_path``), relative ``config_path`` and ``data`` are taken from
    the project root found from the notebook's folder (:func:`notebook_root`), so
    ``config_path = "config/example.toml"`` means in JupyterLab what ``make report
    CONFIG=config/example.toml`` means. In a report run the pipeline passes the run's parameters,
    which are used as given (the section results it computed are recognised by them)."""
    root = None if metrics_path else notebook_root(config_path, data)
    settings = resolve_settings(config_path, data, root=root)
    saved = _read_saved(sections_path(metrics_path)) if metrics_path else None
    ran = saved.get("period") if saved is not None else None
    if isinstance(period, Period):
        p = period
    elif isinstance(ran, Period) and ran.label == period:  # the run's period, parsed once by the command
        p = ran
    else:  # a relative period (``last-month`` …) is today's, in the report time zone
        p = resolve_period(period, settings.timezone)
    ctx = ReportContext(p, settings, metrics_path or "")
    # a notebook's kernel (or an interactive session) is one report's: its language for good (i18n.py)
    set_language(settings.report.language)
    ctx._take(saved)
    return ctx
