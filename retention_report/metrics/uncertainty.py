"""95% intervals of the headline KPIs and of their changes (SPEC §4.6, issue 26).

Pure arithmetic on sufficient statistics the engine computes in the same grouped pass as the KPIs
(:func:`retention_report.metrics.sales.period_sales`: per-customer sums, sums of squares and cross
products); no data is read here. Every function is vectorised over numpy arrays (the simulation
test draws 1,000 logs at once) and also takes plain numbers.

Methods (stated in the report's appendix, :mod:`retention_report.texts`):

* **Proportions of customers** (CRR, churn, repeat purchase rate, cohort cells): the Wilson score
  interval [Wilson 1927]; the difference of two proportions by Newcombe's hybrid score interval
  (method 10 of [Newcombe 1998]), which combines the two Wilson intervals.
* **Money totals** (revenue): the customers of a period are a draw from the shop's customer process;
  a total T = Σ x_i over a Poisson number of customers has Var(T) = E[N]·E[X²], estimated by Σ x_i²
  (compound Poisson), normal interval by the central limit theorem.
* **Ratios of per-customer sums** (AOV, purchases per customer, the new-revenue share): the delta
  method (linearisation) of R = Σy / Σx over customers, Var(R) ≈ n/(n−1) · Σ(y_i − R x_i)² / (Σx)².
* **Counts of customers** (customers, new, returning): Poisson, score interval
  λ = n + z²/2 ± z·√(n + z²/4) (the Poisson analogue of Wilson's); a difference of two counts:
  normal with variance n₁ + n₂.
* **Differences of money, ratios and LTV**: normal with the two periods' variances added. The periods
  share customers, whose values correlate positively, so adding the variances over-states the
  variance of the difference: the verdict errs towards "within noise".

References: E. B. Wilson (1927), JASA 22:209–212; R. G. Newcombe (1998), Statistics in Medicine
17:873–890 (interval of a difference of independent proportions, method 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "Z95",
    "Estimate",
    "wilson",
    "newcombe",
    "poisson_score",
    "ratio_se",
    "interval",
    "change_interval",
]

# the standard normal quantile of a two-sided 95% interval
Z95 = 1.959963984540054

Kind = Literal["wilson", "normal", "poisson", "none"]


def wilson(x: Any, n: Any, z: float = Z95) -> tuple[Any, Any]:
    """Wilson score interval of the proportion ``x / n`` (arrays or numbers; ``0 <= x <= n``,
    ``n > 0``): centre (x + z²/2) / (n + z²), half-width z / (n + z²) · √(x(n − x)/n + z²/4)."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    centre = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * np.sqrt(x * (n - x) / n + z * z / 4)
    return centre - half, centre + half


def newcombe(x1: Any, n1: Any, x2: Any, n2: Any, z: float = Z95) -> tuple[Any, Any]:
    """Newcombe's hybrid score interval of p₁ − p₂ (p = x / n), method 10 of Newcombe (1998):
    with (l_i, u_i) the Wilson intervals, δ = p₁ − p₂,
    low = δ − √((p₁ − l₁)² + (u₂ − p₂)²), high = δ + √((u₁ − p₁)² + (p₂ − l₂)²)."""
    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def poisson_score(n: Any, z: float = Z95) -> tuple[Any, Any]:
    """Score interval of a Poisson mean from one count ``n``: the λ with (n − λ)² / λ = z²,
    λ = n + z²/2 ± z·√(n + z²/4)."""
    n = np.asarray(n, dtype=float)
    half = z * np.sqrt(n + z * z / 4)
    return n + z * z / 2 - half, n + z * z / 2 + half


def ratio_se(n: Any, sum_y: Any, sum_x: Any, sum_yy: Any, sum_xx: Any, sum_xy: Any) -> Any:
    """Delta-method standard error of R = Σy / Σx over ``n`` customers:
    √(n / (n − 1) · Σ(y − R x)²) / Σx, with Σ(y − R x)² = Σy² − 2R Σxy + R² Σx²
    (NaN for fewer than 2 customers or Σx = 0)."""
    n, sy, sx, syy, sxx, sxy = (np.asarray(v, dtype=float) for v in (n, sum_y, sum_x, sum_yy, sum_xx, sum_xy))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sy / sx
        resid = np.maximum(syy - 2 * r * sxy + r * r * sxx, 0.0)
        return np.where((n > 1) & (sx != 0), np.sqrt(n / (n - 1) * resid) / np.abs(sx), np.nan)


@dataclass(frozen=True)
class Estimate:
    """What a KPI's interval is computed from.

    ``kind``: ``wilson`` (``x`` of ``n``; value x / n), ``poisson`` (a count ``x``), ``normal``
    (``value`` with standard error ``se``) or ``none`` (no interval).
    """

    kind: Kind
    value: float | None = None
    se: float | None = None
    x: float | None = None
    n: float | None = None
    # the range the true value lies in (a share in [0, 1], money and averages >= 0): a normal
    # interval is cut to it, which keeps its coverage
    lower: float | None = None
    upper: float | None = None

    @staticmethod
    def proportion(x: float, n: float, value: float | None = None) -> Estimate:
        """``x`` customers of ``n``. A ratio outside [0, 1] (CRR counts reactivated customers as
        retained, so CE − CN can exceed CS): normal with the Poisson error of the numerator,
        se = √x / n."""
        if n <= 0:
            return Estimate("none", value)
        if 0 <= x <= n:
            return Estimate("wilson", x / n if value is None else value, x=x, n=n)
        return Estimate("normal", x / n if value is None else value, se=math.sqrt(abs(x)) / n, lower=0.0)

    def sd(self) -> float | None:
        """The standard error (for combining with another period's)."""
        if self.kind == "normal":
            return self.se
        if self.kind == "poisson" and self.x is not None:
            return math.sqrt(max(self.x, 0.0))
        if self.kind == "wilson" and self.x is not None and self.n:
            p = self.x / self.n
            return math.sqrt(p * (1 - p) / self.n)
        return None


def _finite(*vals: Any) -> bool:
    return all(v is not None and math.isfinite(float(v)) for v in vals)


def interval(e: Estimate | None) -> tuple[float, float] | None:
    """The 95% interval of an estimate, or None when there is none."""
    if e is None or e.kind == "none":
        return None
    if e.kind == "wilson" and e.x is not None and e.n:
        lo, hi = wilson(e.x, e.n)
        return float(lo), float(hi)
    if e.kind == "poisson" and e.x is not None:
        lo, hi = poisson_score(e.x)
        return float(lo), float(hi)
    if e.kind == "normal" and _finite(e.value, e.se):
        v, se = float(e.value), float(e.se)  # type: ignore[arg-type]
        lo, hi = v - Z95 * se, v + Z95 * se
        return (lo if e.lower is None else max(lo, e.lower)), (hi if e.upper is None else min(hi, e.upper))
    return None


def change_interval(cur: Estimate | None, ref: Estimate | None) -> tuple[float, float, float] | None:
    """``(delta, low, high)``: the change cur − ref and its 95% interval — Newcombe for two
    proportions, else normal with the variances added; None when either has no interval."""
    if cur is None or ref is None or cur.kind == "none" or ref.kind == "none":
        return None
    if cur.kind == ref.kind == "wilson":
        d = cur.x / cur.n - ref.x / ref.n  # type: ignore[operator]
        lo, hi = newcombe(cur.x, cur.n, ref.x, ref.n)
        return float(d), float(lo), float(hi)
    v1 = cur.x if cur.kind == "poisson" else cur.value
    v2 = ref.x if ref.kind == "poisson" else ref.value
    s1, s2 = cur.sd(), ref.sd()
    if not _finite(v1, v2, s1, s2):
        return None
    d = float(v1) - float(v2)  # type: ignore[arg-type]
    half = Z95 * math.hypot(float(s1), float(s2))  # type: ignore[arg-type]
    return d, d - half, d + half
