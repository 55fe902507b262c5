"""Generate the synthetic ad click log bundled with Wide & Deep Studio.

Usage::

    python sample_data/make_clicklog.py [--rows N] [--seed S] [--out PATH]

Defaults: 200,000 rows, seed 42, ``sample_data/clicklog.csv``.  The output is
fully determined by ``--rows`` and ``--seed`` (one ``numpy.random.default_rng``
stream; same numpy version => byte-identical file).

Design (see sample_data/README.md for the long version)
-------------------------------------------------------
The log-odds of a click is a sum of:

* a **device x hour_of_day interaction** (dominant signal).  Mobile clicks peak
  late in the evening, desktop during office hours, tablet in the evening.  The
  table is "double centred" under the traffic distribution, so on its own it
  adds (almost) nothing to the device-only or hour-only log-odds: a linear
  model over one-hot(device) + one-hot(hour) barely sees it, while one-hot of
  the crossed feature device x hour captures it fully - the textbook case for
  a "wide" cross-product transformation;
* small device and hour main effects;
* a device x weekend term (tablet up at weekends, desktop down);
* a sparse item_category x country affinity table (weaker);
* ad_position (1 = top slot, best), price (cheaper items click more) and a
  mild age effect;
* per-user and per-item latent propensities (moderate; learnable by
  embeddings / id features);
* a **demographic taste** term (moderate): each item_category is liked most
  at its own user age (a smooth bump over age, amplitude N(0, 1) per
  category), and younger users are more price-sensitive.  It is smooth in a
  number and crossed with a category or another number -- what the deep part's
  embeddings and MLP generalise over, and what a wide cross of ids only
  approximates bucket by bucket;

and the intercept is solved numerically so that the base CTR is ~12%.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_ROWS = 200_000
DEFAULT_SEED = 42
DEFAULT_OUT = Path(__file__).resolve().parent / "clicklog.csv"

N_USERS = 20_000
N_ITEMS = 5_000
TARGET_CTR = 0.12

DEVICES = np.array(["mobile", "desktop", "tablet"])
DEVICE_SHARE = np.array([0.55, 0.33, 0.12])  # users' primary device
DAYS = np.array(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
COUNTRIES = np.array(
    [
        "US",
        "GB",
        "DE",
        "FR",
        "IN",
        "BR",
        "CA",
        "ES",
        "IT",
        "MX",
        "JP",
        "AU",
        "NL",
        "PL",
        "TR",
        "SE",
        "KR",
        "AR",
        "BE",
        "CH",
        "ID",
        "ZA",
        "NG",
        "PT",
        "IE",
    ]
)
CATEGORIES = np.array(
    [
        "electronics",
        "phones",
        "computers",
        "gaming",
        "books",
        "music",
        "movies",
        "fashion_women",
        "fashion_men",
        "shoes",
        "jewelry",
        "beauty",
        "health",
        "baby",
        "toys",
        "sports",
        "outdoors",
        "fitness",
        "home_decor",
        "furniture",
        "kitchen",
        "garden",
        "tools",
        "automotive",
        "pet_supplies",
        "grocery",
        "office",
        "travel",
        "software",
        "gift_cards",
    ]
)


def _zipf_probs(n: int, a: float, offset: float = 1.0) -> np.ndarray:
    w = 1.0 / (np.arange(n) + offset) ** a
    return w / w.sum()


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Circular Gaussian bump over the 24-hour clock."""
    d = np.abs(hours - centre)
    d = np.minimum(d, 24 - d)
    return np.exp(-0.5 * (d / width) ** 2)


# Traffic shape per device (how often each device is seen at each hour).
_H = np.arange(24, dtype=float)
HOUR_TRAFFIC = np.vstack(
    [
        0.15
        + _bump(_H, 8, 1.5) * 0.6
        + _bump(_H, 13, 2) * 0.6
        + _bump(_H, 21, 2.5) * 1.2,  # mobile
        0.05
        + _bump(_H, 11, 3.0) * 1.0
        + _bump(_H, 15, 2.5) * 0.8
        + _bump(_H, 20, 2) * 0.3,  # desktop
        0.08 + _bump(_H, 20, 2.5) * 1.0 + _bump(_H, 10, 3) * 0.3,  # tablet
    ]
)
HOUR_TRAFFIC /= HOUR_TRAFFIC.sum(axis=1, keepdims=True)
DOW_TRAFFIC = np.array(
    [
        [0.13, 0.13, 0.13, 0.13, 0.14, 0.17, 0.17],  # mobile
        [0.17, 0.17, 0.17, 0.17, 0.16, 0.08, 0.08],  # desktop
        [0.12, 0.12, 0.12, 0.12, 0.13, 0.195, 0.195],  # tablet
    ]
)
DOW_TRAFFIC /= DOW_TRAFFIC.sum(axis=1, keepdims=True)

# Raw click-propensity shape per device over the day (before centring).
DEVICE_HOUR_SHAPE = np.vstack(
    [
        2.6 * _bump(_H, 22, 1.8) - 0.9,  # mobile: late evening
        2.4 * ((_H >= 9) & (_H <= 17)).astype(float) * (0.75 + 0.25 * _bump(_H, 11, 2))
        - 1.0,  # desktop: office hours
        2.2 * _bump(_H, 19, 2.0) - 0.7,  # tablet: early evening
    ]
)


def _double_centre(
    table: np.ndarray, weights: np.ndarray, n_iter: int = 50
) -> np.ndarray:
    """Remove weighted row and column means so only the interaction is left."""
    t = table.copy()
    w = weights / weights.sum()
    for _ in range(n_iter):
        t -= ((t * w).sum(axis=1) / w.sum(axis=1))[:, None]
        t -= ((t * w).sum(axis=0) / w.sum(axis=0))[None, :]
    return t


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(logit: np.ndarray, target: float) -> float:
    lo, hi = -15.0, 15.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _sigmoid(logit + mid).mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def generate(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    # ---------------- users ----------------
    user_country = rng.choice(
        len(COUNTRIES), size=N_USERS, p=_zipf_probs(len(COUNTRIES), 1.1)
    )
    user_device = rng.choice(len(DEVICES), size=N_USERS, p=DEVICE_SHARE)
    user_age = np.clip(np.round(rng.gamma(6.0, 6.0, size=N_USERS) + 14), 16, 85)
    user_age_missing = rng.random(N_USERS) < 0.07
    user_bias = rng.normal(0.0, 0.55, size=N_USERS)
    user_pop = _zipf_probs(N_USERS, 0.55, offset=10.0)[rng.permutation(N_USERS)]

    # ---------------- items ----------------
    item_cat = rng.choice(
        len(CATEGORIES), size=N_ITEMS, p=_zipf_probs(len(CATEGORIES), 0.7, 2.0)
    )
    cat_median_price = np.exp(rng.normal(3.3, 0.9, size=len(CATEGORIES)))
    item_price = np.round(
        cat_median_price[item_cat] * rng.lognormal(0.0, 0.6, size=N_ITEMS), 2
    )
    item_price = np.maximum(item_price, 0.99)
    item_bias = rng.normal(0.0, 0.45, size=N_ITEMS)
    item_pop = _zipf_probs(N_ITEMS, 0.9, offset=5.0)[rng.permutation(N_ITEMS)]

    # sparse category x country affinity
    cat_country = rng.normal(0.0, 0.6, size=(len(CATEGORIES), len(COUNTRIES)))
    cat_country *= rng.random(cat_country.shape) < 0.25

    # ---------------- events ----------------
    u = rng.choice(N_USERS, size=rows, p=user_pop)
    i = rng.choice(N_ITEMS, size=rows, p=item_pop)
    # users mostly stick to their primary device
    dev = np.where(
        rng.random(rows) < 0.8, user_device[u], rng.choice(3, size=rows, p=DEVICE_SHARE)
    )
    # hour and day of week drawn from the device's traffic profile (inverse CDF)
    hour = (rng.random(rows)[:, None] > np.cumsum(HOUR_TRAFFIC, axis=1)[dev]).sum(
        axis=1
    )
    hour = np.minimum(hour, 23)
    dow = (rng.random(rows)[:, None] > np.cumsum(DOW_TRAFFIC, axis=1)[dev]).sum(axis=1)
    dow = np.minimum(dow, 6)
    weekend = dow >= 5
    pos = rng.choice(5, size=rows, p=[0.30, 0.25, 0.20, 0.15, 0.10]) + 1
    price = item_price[i]
    cat = item_cat[i]
    ctry = user_country[u]
    age = user_age[u]
    age_missing = user_age_missing[u]

    # ---------------- click model ----------------
    traffic = np.zeros((3, 24))
    np.add.at(traffic, (dev, hour), 1.0)
    dh = _double_centre(DEVICE_HOUR_SHAPE, traffic + 1e-9)
    device_main = np.array([0.05, -0.05, 0.08])
    hour_main = 0.08 * np.cos(2 * np.pi * (_H - 20) / 24)
    dev_weekend = np.array([0.10, -0.35, 0.45])
    pos_effect = np.array([0.0, -0.25, -0.45, -0.60, -0.70])
    log_price = np.log(price)

    # demographic taste (its own stream, so every other column is as before): each category
    # is liked most at its own age, and younger users are more price-sensitive
    taste_rng = np.random.default_rng([seed, 1])
    cat_age_centre = taste_rng.uniform(18, 70, size=len(CATEGORIES))
    cat_age_amp = taste_rng.normal(0.0, 1.0, size=len(CATEGORIES))
    age_f = np.where(age_missing, 38.0, age)
    age_taste = cat_age_amp[cat] * (np.exp(-0.5 * ((age_f - cat_age_centre[cat]) / 9.0) ** 2) - 0.35)
    z_price = (log_price - log_price.mean()) / log_price.std()
    young = 1.0 / (1.0 + np.exp((age_f - 32.0) / 5.0))
    taste = np.where(age_missing, 0.0, age_taste - 0.5 * z_price * (young - 0.3))

    logit = (
        taste
        + dh[dev, hour]
        + device_main[dev]
        + hour_main[hour]
        + dev_weekend[dev] * weekend
        + cat_country[cat, ctry]
        + pos_effect[pos - 1]
        - 0.25 * (log_price - log_price.mean()) / log_price.std()
        - 0.004 * np.where(age_missing, 0.0, age - 38.0)
        + user_bias[u]
        + item_bias[i]
    )
    logit = logit + _solve_intercept(logit, TARGET_CTR)
    clicked = (rng.random(rows) < _sigmoid(logit)).astype(np.int8)

    return pd.DataFrame(
        {
            "user_id": np.char.add("u", np.char.zfill(u.astype(str), 5)),
            "item_id": np.char.add("i", np.char.zfill(i.astype(str), 4)),
            "item_category": CATEGORIES[cat],
            "device": DEVICES[dev],
            "hour_of_day": hour.astype(np.int8),
            "day_of_week": DAYS[dow],
            "country": COUNTRIES[ctry],
            "ad_position": pos.astype(np.int8),
            "user_age": pd.array(np.where(age_missing, np.nan, age), dtype="Int64"),
            "price": price,
            "clicked": clicked,
        }
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=f"number of rows (default {DEFAULT_ROWS})",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"random seed (default {DEFAULT_SEED})",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output CSV path (default sample_data/clicklog.csv)",
    )
    args = ap.parse_args(argv)
    if args.rows <= 0:
        ap.error("--rows must be positive")

    t0 = time.perf_counter()
    df = generate(args.rows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False, lineterminator="\n")
    print(
        f"wrote {len(df):,} rows to {args.out} "
        f"(CTR {df['clicked'].mean():.3%}, {time.perf_counter() - t0:.1f}s)"
    )


if __name__ == "__main__":
    main()
