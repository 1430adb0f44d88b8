"""Notebook conveniences: display setup, the section leads and the short explanatory notes under
tables and charts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .formatting import fmt_count, fmt_number, fmt_pct
from .i18n import _, ngettext

if TYPE_CHECKING:
    from .context import ReportContext
    from .metrics import CohortMatrices, FrequencySegments, SecondPurchase

__all__ = ["setup", "lead", "heading", "split_basis_note", "segment_note", "cohort_note", "second_purchase_note", "BEHAVIOUR_KPIS"]

BEHAVIOUR_KPIS = [
    "purchases",
    "purchase_frequency",
    "repeat_purchase_rate",
    "aov",
    "refunds",
    "refund_rate",
    "median_days_to_second_purchase",
]


def setup() -> None:
    """Apply the project chart theme and crisp (2x) inline PNGs whose alt text is the chart's
    title — the finding it states (:func:`retention_report.plots.alt_text`); the HTML report
    writes it into the image's ``alt`` attribute."""
    from . import plots

    # inline figures even when MPLBACKEND is set in the environment (e.g. Agg in a CI shell), which
    # would otherwise make plt.show() draw nothing into the report
    ip = None
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None and getattr(ip, "kernel", None) is not None:
            ip.run_line_magic("matplotlib", "inline")
    except Exception:  # pragma: no cover - outside IPython
        pass
    plots.set_theme()
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
    except Exception:  # pragma: no cover - outside IPython
        pass
    if ip is not None:
        _png_with_alt_text(ip)


def _png_with_alt_text(ip: Any) -> None:
    """Wrap the shell's PNG formatter of matplotlib figures so every figure's PNG output carries
    ``{"alt": <its title>}`` as display metadata (nbconvert's templates turn it into ``alt=``)."""
    from matplotlib.figure import Figure

    from .plots import alt_text

    formatter = ip.display_formatter.formatters["image/png"]
    try:
        base = formatter.lookup_by_type(Figure)
    except KeyError:  # pragma: no cover - no PNG formatter for figures
        return
    if getattr(base, "adds_alt_text", False):
        return

    def png(fig: Any) -> Any:
        out = opaque_retina_png(fig) or base(fig)
        alt = alt_text(fig)
        if out is None or not alt:
            return out
        data, meta = out if isinstance(out, tuple) else (out, None)
        return data, {**(meta or {}), "alt": alt}

    png.adds_alt_text = True  # type: ignore[attr-defined]
    formatter.for_type(Figure, png)


def opaque_retina_png(fig: Any) -> tuple[bytes, dict[str, int]] | None:
    """The image IPython's "retina" formatter makes of an opaque figure (cropped to what it draws,
    ``bbox_inches="tight"``, at twice its dpi; all of the report's charts), saved without the alpha
    channel that is 255 everywhere: WeasyPrint decodes every PNG of the report and encodes it again
    for the PDF, and an RGBA one twice (the colours and the alpha as a mask). The same pixels, a
    fifth less work there. ``None`` when it cannot (another canvas than Agg, a figure with
    transparency, or no axes): IPython's formatter then makes the image."""
    from io import BytesIO

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = fig.canvas
    if not fig.axes or not isinstance(canvas, FigureCanvasAgg):
        return None
    dpi = 2 * fig.dpi
    raw = BytesIO()
    canvas.print_figure(raw, format="raw", dpi=dpi, bbox_inches="tight", facecolor=fig.get_facecolor(),
                        edgecolor=fig.get_edgecolor())
    width, height = int(canvas.renderer.width), int(canvas.renderer.height)  # the cropped canvas just drawn
    rgba = np.frombuffer(raw.getbuffer(), dtype=np.uint8)
    if rgba.size != width * height * 4:
        return None
    rgba = rgba.reshape(height, width, 4)
    if not (rgba[..., 3] == 255).all():
        return None
    png = BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., :3])).save(png, format="PNG", dpi=(dpi, dpi))
    return png.getvalue(), {"width": width // 2, "height": height // 2}


def lead(key: str) -> None:
    """Display the lead of a section or chart (:data:`retention_report.texts.LEADS`) as Markdown:
    in JupyterLab under the cell, in the report as a paragraph — the same words in both."""
    from IPython.display import display

    from .texts import lead_text

    text = lead_text(key)
    display({"text/markdown": text, "text/plain": text}, raw=True)


def heading(key: str, **values: str) -> None:
    """Display a heading in the reader's language (:func:`retention_report.texts.heading_text`):
    a section's title (``rr.heading("cohorts")``, ``<h2>``, listed in the report's table of
    contents) or a sub-heading (``rr.heading("cohorts.revenue_retention")``, ``<h3>``). ``values``
    fill its fields; they come from the data or config and are shortened and escaped, never
    translated."""
    import html

    from IPython.display import display

    from .formatting import shorten
    from .texts import heading_text

    text = heading_text(key, **{k: shorten(v) for k, v in values.items()})
    level = 3 if "." in key else 2
    display({"text/html": f"<h{level}>{html.escape(text)}</h{level}>", "text/plain": text}, raw=True)


def split_basis_note(ctx: ReportContext) -> str:
    if ctx.metrics.split_basis == "customer":
        return _("Convention: all purchases in the period of customers acquired in it count as new "
                 "(split_basis = customer). Refunds are not split and are shown in the KPIs.")
    k = ctx.kpis
    # TRANSLATORS: "split_basis = purchase" is a config setting: keep it as it is
    return _(
        "Convention: a purchase is new when it is the customer's first purchase ever; a new customer's "
        "later purchases in the same period are returning revenue (split_basis = purchase). "
        "New customers: %(new)s; returning customers: %(returning)s. Refunds (%(refund_rate)s of gross) "
        "are not split."
    ) % {"new": fmt_count(k.get("customers_new")), "returning": fmt_count(k.get("customers_returning")),
         "refund_rate": fmt_pct(k.get("refund_rate"))}


def segment_note(seg: FrequencySegments) -> str:
    if seg.low is None:
        return _("No returning active customers in the period: frequency segments are empty.")
    how = _("terciles of the customers' frequencies") if seg.data_driven else _("the configured thresholds")
    # TRANSLATORS: %(how)s is "terciles of the customers' frequencies" or "the configured thresholds"
    return ngettext(
        "Frequency = purchases per month over the last %(months)s month. Rare: at most %(low)s; medium: "
        "up to %(high)s; frequent: above (%(how)s). Lapsed: no purchase within the activity window at the "
        "period end.",
        "Frequency = purchases per month over the last %(months)s months. Rare: at most %(low)s; medium: "
        "up to %(high)s; frequent: above (%(how)s). Lapsed: no purchase within the activity window at the "
        "period end.",
        seg.lookback_months,
    ) % {"months": seg.lookback_months, "low": fmt_number(seg.low), "high": fmt_number(seg.high), "how": how}


def cohort_note(co: CohortMatrices) -> str:
    if co.grain == "month":
        text = _("Each row is a cohort of customers by month of first purchase; each column the months "
                 "since then. Blank cells are not observable yet.")
        if co.partial_bucket is not None:
            text += " " + _("Cells marked * fall in the month still in progress at the period end.")
    else:
        text = _("Each row is a cohort of customers by week of first purchase; each column the weeks "
                 "since then. Blank cells are not observable yet.")
        if co.partial_bucket is not None:
            text += " " + _("Cells marked * fall in the week still in progress at the period end.")
    return text


def second_purchase_note(sp: SecondPurchase, censored: str | None = None) -> str:
    """What the time-to-second-purchase chart shows; ``censored`` (the "n/a — the data begin …"
    reason of :func:`retention_report.formatting.unobservable_reason`) when the data are too short
    for its median and shares to mean anything (SPEC §4.3): they are not quoted."""
    if not sp.customers:
        return _("No customer had a second purchase by the period end.")
    if censored:
        # TRANSLATORS: %(reason)s is "n/a — the data begin 1 Jan 1997, less than the …"
        return ngettext(
            "%(customers)s customer made a second purchase by the period end. Median time to it: %(reason)s "
            "(longer gaps cannot be seen yet).",
            "%(customers)s customers made a second purchase by the period end. Median time to it: %(reason)s "
            "(longer gaps cannot be seen yet).",
            int(sp.customers)) % {"customers": fmt_count(sp.customers), "reason": censored}
    return ngettext(
        "%(customers)s customer made a second purchase by the period end (whole history). Median time to "
        "it: %(median)s days; within 30 days: %(within_30)s, 90 days: %(within_90)s, 180 days: %(within_180)s.",
        "%(customers)s customers made a second purchase by the period end (whole history). Median time to "
        "it: %(median)s days; within 30 days: %(within_30)s, 90 days: %(within_90)s, 180 days: %(within_180)s.",
        int(sp.customers),
    ) % {"customers": fmt_count(sp.customers), "median": fmt_number(sp.median_days, 0),
         "within_30": fmt_pct(sp.within_30), "within_90": fmt_pct(sp.within_90),
         "within_180": fmt_pct(sp.within_180)}
