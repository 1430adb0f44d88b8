"""Predicted customer value of a report period (issue 17): the ``clv`` block of metrics.json and
the aggregates of the report section "Predicted customer value".

Data contract: a :class:`retention_report.data.Dataset` (its ``daily`` and ``customers`` tables),
a :class:`~retention_report.periods.Period` P and the ``[clv]`` settings. Everything uses only the
data up to P's end (the *calibration end*: P's end, or the last payment day when P is incomplete):

- per customer acquired by then, from purchases (SPEC §2): x = repeat purchases, t_x = time of the
  last purchase and T = age, both from the first purchase day in weeks (exact days / 7), and the
  mean value m of the repeat purchases (first purchase excluded) — computed in the engine in one
  grouped pass over the daily table and compressed there to distinct (x, t_x, T) rows with counts
  and sums, and to distinct (x, m) rows for the spend model (:func:`compress_histories`);
- BG/NBD (or Pareto/NBD, ``clv.model``) and Gamma-Gamma fitted by maximum likelihood
  (:mod:`retention_report.clv`);
- per history: P(alive), expected purchases over ``clv.horizon_days`` and their value discounted at
  ``clv.annual_discount``; summed to the base's expected purchases, revenue and CLV;
- the backtest: the same fit on the data up to the day before P starts, its prediction of P's
  purchases by those customers against what they bought.

Customers with the same (x, t_x, T) share every prediction except their spend, which is linear in
m ([FHL05b]: E(Z | x, m) = p (gamma + m x) / (p x + q - 1)), so the base's expected revenue and CLV
need per history only the count and the sum of m of its customers: exact, without one row per
customer in Python. Only the CLV distribution, the per-segment means and the CSV export of
per-customer scores read per-customer values — in the engine (:func:`customer_scores`).

Speed (2M customers, 10M payments): one grouped pass over the daily table gives both calibrations
(P's end and the day before P's start), cached as a numeric table and grouped three ways. The
BG/NBD likelihood on integer days is evaluated with per-day lookup tables (:class:`~.fitting.DayRows`), and
the fit is a Newton polish on the exact rows of a fit on a 4-week grid of them — a few exact
evaluations instead of the ~50 of L-BFGS from scratch; the backtest starts from the main fit.
The optimum is the same maximum-likelihood estimate (tests compare with :func:`clv.fit_bgnbd`).
Nothing is cached here: a caller that needs several of :func:`clv_block`, :func:`predicted_value`
and :func:`customer_scores` computes :func:`clv_core` once and passes it as ``core`` (the report
context does).

Modules, one job each: :mod:`.options` (the ``[clv]`` settings), :mod:`.histories` (the engine
side: histories and their compression), :mod:`.fitting` (the fits), :mod:`.prediction` (per-history
predictions), :mod:`.core` (the computation for a period, with the backtest), :mod:`.block` (the
metrics.json block), :mod:`.report` (the section's frames and the per-customer scores).
"""

from .block import ClvBlock, clv_block
from .core import ClvCore, Reason, clv_core
from .fitting import fit_purchases, fit_spend
from .histories import Compressed, compress_histories, customer_histories
from .options import ClvOptions, clv_options
from .report import PredictedValue, customer_scores, predicted_value

__all__ = [
    "ClvBlock",
    "ClvCore",
    "ClvOptions",
    "Compressed",
    "PredictedValue",
    "Reason",
    "clv_block",
    "clv_core",
    "clv_options",
    "compress_histories",
    "customer_histories",
    "customer_scores",
    "fit_purchases",
    "fit_spend",
    "predicted_value",
]
