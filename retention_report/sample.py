"""Deterministic synthetic payment log: the embedded sample data and the benchmark generator.

The shop it simulates is deliberately not a toy: customers arrive with a growth trend and a
Christmas season, buy at heterogeneous rates and drop out (the BG/NBD story: each customer has a
purchase rate drawn from a gamma distribution and, after every purchase, a probability of becoming
inactive drawn from a beta distribution), spend differently (frequent buyers place smaller baskets, so
the "big-but-rare or small-but-frequent" question has a non-trivial answer), sometimes place two orders
on one day (one purchase, two payments), get some orders refunded days later and occasionally pay
zero (vouchers). Every row carries an order id, a cost and three segment columns.

Output columns (one row per payment)::

    customer_id  string        opaque ids like "C0048213"
    paid_at      timestamp[us] naive, in the report time zone (UTC by default)
    amount       float64       money received; negative = refund
    order_id     string        refunds carry the id of the order they refund
    cost         float64       cost of goods; 0 on refunds
    channel      string        acquisition channel
    country      string
    platform     string

The same seed gives the same table, byte for byte, on every machine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .fsio import atomic_path
from .paths import SAMPLE_PATH

__all__ = [
    "DEFAULT_SAMPLE_PATH",
    "SAMPLE_END",
    "SAMPLE_START",
    "ensure_sample",
    "generate_payments",
    "write_benchmark_data",
    "write_sample",
]

SAMPLE_START = dt.date(2021, 1, 1)
SAMPLE_END = dt.date(2024, 12, 31)


# data/sample/payments.parquet in a checkout, the user's cache when installed (retention_report.paths)
DEFAULT_SAMPLE_PATH = SAMPLE_PATH

CHANNELS = ("organic", "paid search", "social", "email", "referral", "marketplace")
CHANNEL_P = (0.30, 0.22, 0.18, 0.10, 0.08, 0.12)
# purchase-rate multiplier per channel: referral and e-mail customers come back more often
CHANNEL_RATE = (1.0, 0.85, 0.7, 1.35, 1.25, 0.8)
COUNTRIES = ("DE", "FR", "PL", "ES", "IT", "NL", "AT")
COUNTRY_P = (0.34, 0.18, 0.14, 0.11, 0.10, 0.08, 0.05)
COUNTRY_BASKET = (1.05, 1.0, 0.7, 0.85, 0.9, 1.1, 1.05)
PLATFORMS = ("web", "ios", "android")
PLATFORM_P = (0.55, 0.25, 0.20)

_SCHEMA = pa.schema([
    ("customer_id", pa.string()),
    ("paid_at", pa.timestamp("us")),
    ("amount", pa.float64()),
    ("order_id", pa.string()),
    ("cost", pa.float64()),
    ("channel", pa.string()),
    ("country", pa.string()),
    ("platform", pa.string()),
])

# share of orders per hour of day (evening peak), normalised below
_HOUR_W = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 5, 5.5, 6.5,
                    7.5, 8, 7, 5, 2.5])
_HOUR_P = _HOUR_W / _HOUR_W.sum()


def _season(day_of_year: np.ndarray) -> np.ndarray:
    """Relative demand by day of year: a November–December peak and a summer dip (mean about 1)."""
    doy = day_of_year.astype(float)
    xmas = 0.9 * np.exp(-0.5 * ((doy - 340) / 18) ** 2)
    summer = -0.18 * np.exp(-0.5 * ((doy - 205) / 25) ** 2)
    return 1.0 + xmas + summer


def generate_payments(
    n_customers: int = 100_000,
    start: dt.date = SAMPLE_START,
    end: dt.date = SAMPLE_END,
    seed: int = 42,
    id_offset: int = 0,
) -> pa.Table:
    """Simulate the payment log of ``n_customers`` customers acquired between ``start`` and ``end``.

    Parameters
    ----------
    n_customers : number of customers (each has at least one purchase).
    start, end : first and last calendar day of the log (inclusive).
    seed : random seed; the output is a pure function of all arguments.
    id_offset : added to customer and order numbers, so chunks generated with different offsets
        (see :func:`write_benchmark_data`) never share an id.

    Returns
    -------
    pyarrow.Table with the columns listed in the module docstring, sorted by ``paid_at``. About 5.5
    payments per customer with the defaults (100k customers → about 550k payments).
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if end < start:
        raise ValueError("end must not be before start")
    rng = np.random.default_rng(seed)
    n_days = (end - start).days + 1
    day_idx = np.arange(n_days)
    epoch = np.datetime64(start.isoformat(), "D")
    doy = (epoch + day_idx - (epoch + day_idx).astype("datetime64[Y]")).astype(int) + 1

    # --- customers: acquisition day with growth and seasonality, attributes
    growth = 1.0 + 1.2 * day_idx / max(n_days - 1, 1)
    weekday = ((epoch + day_idx).astype("datetime64[D]").view("int64") + 3) % 7  # 0 = Monday
    weekly = np.where(weekday >= 5, 0.85, 1.05)
    acq_w = growth * _season(doy) * weekly
    acq_day = np.sort(rng.choice(n_days, size=n_customers, p=acq_w / acq_w.sum()))
    channel = rng.choice(len(CHANNELS), size=n_customers, p=CHANNEL_P)
    country = rng.choice(len(COUNTRIES), size=n_customers, p=COUNTRY_P)
    platform = rng.choice(len(PLATFORMS), size=n_customers, p=PLATFORM_P)
    # BG/NBD-style heterogeneity: purchase rate per year ~ Gamma, dropout after each purchase ~ Beta
    rate = rng.gamma(shape=0.9, scale=9.5 / 0.9, size=n_customers) * np.take(CHANNEL_RATE, channel)
    rate = np.maximum(rate, 0.05)
    p_drop = rng.beta(2.5, 20.0, size=n_customers)
    # basket size: lognormal, smaller for frequent buyers, larger in some countries
    basket = np.exp(rng.normal(np.log(58.0) - 0.35 * np.log(rate / 9.5), 0.45)) * np.take(COUNTRY_BASKET, country)

    # --- repeat purchases: geometric number before dropout, exponential gaps at the customer's rate
    n_repeat = np.minimum(rng.geometric(p_drop) - 1, 400)
    owner = np.repeat(np.arange(n_customers), n_repeat)
    gaps = rng.exponential(365.0 / np.repeat(rate, n_repeat))
    ends = np.cumsum(n_repeat)
    csum = np.cumsum(gaps)
    starts = ends - n_repeat
    before = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0.0)
    offset = csum - np.repeat(before, n_repeat)
    rep_day = acq_day[owner] + np.floor(offset).astype(np.int64)
    keep = rep_day < n_days
    owner, rep_day = owner[keep], rep_day[keep]
    # seasonal thinning: fewer repeat purchases in the summer dip, more before Christmas
    s = _season(doy[rep_day])
    keep = rng.random(owner.size) < s / s.max() * 1.4
    owner, rep_day = owner[keep], rep_day[keep]
    # two purchases of one customer on one day are one purchase: keep the distinct days
    key = np.unique(owner.astype(np.int64) * n_days + rep_day)
    owner, rep_day = (key // n_days).astype(np.int64), (key % n_days).astype(np.int64)

    cust = np.concatenate([np.arange(n_customers), owner])
    day = np.concatenate([acq_day, rep_day]).astype(np.int64)
    amount = basket[cust] * np.exp(rng.normal(0.0, 0.35, size=cust.size))

    # --- a second order on the same day now and then (same purchase, two payments)
    extra = rng.random(cust.size) < 0.035
    cust = np.concatenate([cust, cust[extra]])
    day = np.concatenate([day, day[extra]])
    amount = np.concatenate([amount, basket[cust[-extra.sum():]] * rng.uniform(0.15, 0.6, extra.sum())])
    # vouchers: a few zero-amount payments
    zero = rng.random(cust.size) < 0.002
    amount[zero] = 0.0
    amount = np.round(amount, 2)
    second = rng.integers(0, 60 * 60, size=cust.size) + 3600 * rng.choice(24, size=cust.size, p=_HOUR_P)
    # orders sorted by time; numbered in that order
    order = np.lexsort((second, day))
    cust, day, amount, second = cust[order], day[order], amount[order], second[order]
    order_no = np.arange(cust.size) + 1 + id_offset * 10
    cost = np.round(amount * rng.uniform(0.42, 0.68, size=cust.size), 2)

    # --- refunds: about 4 % of paid orders, full or partial, 1–30 days later, within the log
    ref = (rng.random(cust.size) < 0.04) & (amount > 0)
    r_idx = np.flatnonzero(ref)
    r_day = day[r_idx] + rng.integers(1, 31, size=r_idx.size)
    inside = r_day < n_days
    r_idx, r_day = r_idx[inside], r_day[inside]
    full = rng.random(r_idx.size) < 0.6
    r_amount = -np.round(np.where(full, amount[r_idx], amount[r_idx] * rng.uniform(0.2, 0.8, r_idx.size)), 2)
    r_amount = np.minimum(r_amount, -0.01)
    r_second = rng.integers(8 * 3600, 18 * 3600, size=r_idx.size)

    all_cust = np.concatenate([cust, cust[r_idx]])
    all_day = np.concatenate([day, r_day])
    all_second = np.concatenate([second, r_second])
    all_amount = np.concatenate([amount, r_amount])
    all_order = np.concatenate([order_no, order_no[r_idx]])
    all_cost = np.concatenate([cost, np.zeros(r_idx.size)])
    final = np.lexsort((all_order, all_second, all_day))

    ts = (epoch + all_day[final]).astype("datetime64[us]") + all_second[final].astype("timedelta64[s]")
    # customer numbers are a fixed permutation, so ids carry no hint of acquisition order
    perm = np.random.default_rng(seed + 1).permutation(n_customers) + 1 + id_offset
    width = max(7, len(str(int(perm.max()))))
    owner_final = all_cust[final]
    cust_ids = np.char.add("C", np.char.zfill(perm[owner_final].astype(str), width))
    order_width = max(8, len(str(int(all_order.max()))))
    order_ids = np.char.add("O", np.char.zfill(all_order[final].astype(str), order_width))
    return pa.table(
        {
            "customer_id": pa.array(cust_ids.tolist(), pa.string()),
            "paid_at": pa.array(ts, pa.timestamp("us")),
            "amount": pa.array(all_amount[final], pa.float64()),
            "order_id": pa.array(order_ids.tolist(), pa.string()),
            "cost": pa.array(all_cost[final], pa.float64()),
            "channel": pa.DictionaryArray.from_arrays(channel[owner_final].astype(np.int32), CHANNELS).cast(pa.string()),
            "country": pa.DictionaryArray.from_arrays(country[owner_final].astype(np.int32), COUNTRIES).cast(pa.string()),
            "platform": pa.DictionaryArray.from_arrays(platform[owner_final].astype(np.int32), PLATFORMS).cast(pa.string()),
        },
        schema=_SCHEMA,
    )


def _atomic_write(table: pa.Table, path: Path) -> None:
    """Write Parquet to a temporary file next to ``path`` and rename it into place, so a reader never
    sees a half-written file and an interrupted run leaves nothing behind."""
    with atomic_path(path, mode=0o600) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)


def write_sample(path: Path | str = DEFAULT_SAMPLE_PATH, n_customers: int = 100_000, seed: int = 42) -> Path:
    """Generate the sample log and write it atomically to ``path`` (Parquet, zstd)."""
    path = Path(path)
    _atomic_write(generate_payments(n_customers=n_customers, seed=seed), path)
    return path


def ensure_sample(path: Path | str = DEFAULT_SAMPLE_PATH) -> tuple[Path, bool]:
    """Return ``(path, created)``: the embedded sample, generated once on first use."""
    path = Path(path)
    if path.exists():
        return path, False
    return write_sample(path), True


def write_benchmark_data(path: Path | str, n_payments: int, seed: int = 0,
                         payments_per_chunk: int = 2_000_000) -> int:
    """Write about ``n_payments`` payments (about 5 per customer over four years) as a folder of
    Parquet files, generated chunk by chunk so memory stays flat at any size. Returns the row count."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    per_customer = 5.1  # measured mean of generate_payments with the default parameters
    total_customers = max(1, round(n_payments / per_customer))
    per_chunk = max(1, round(payments_per_chunk / per_customer))
    written, done, chunk = 0, 0, 0
    while done < total_customers:
        n = min(per_chunk, total_customers - done)
        table = generate_payments(n_customers=n, seed=seed * 100_003 + chunk, id_offset=done)
        _atomic_write(table, path / f"part-{chunk:05d}.parquet")
        written += table.num_rows
        done += n
        chunk += 1
    return written
