"""A generated ratings log in three files, like MovieLens: ``ratings.csv`` (integer user and item
ids, a timestamp, ``liked``), ``users.csv`` (age, country) and ``items.csv`` (genre, year).

Whether a user likes an item depends on the user's taste for the item's genre (a user x genre
interaction a cross or an id embedding can learn, a standardised id cannot), the item's own
quality and the user's own leniency; ids are integers with no meaningful order.  Used by the
quality bench; only this generator is committed.

``python bench/ratings_log.py OUT_DIR [ratings]`` writes the three files;
``ratings_sql(dir)`` is the join the bench trains on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = ["drama", "comedy", "action", "horror", "romance", "scifi", "documentary", "animation", "thriller", "western", "musical", "crime"]


def write(out: str | Path, ratings: int = 120_000, users: int = 3_000, items: int = 1_500, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    user_ids = rng.choice(np.arange(10_000, 99_999), users, replace=False)
    item_ids = rng.choice(np.arange(100_000, 999_999), items, replace=False)
    genre = rng.integers(0, len(GENRES), items)
    taste = rng.normal(0, 1.2, (users, len(GENRES)))  # each user's liking per genre
    quality = rng.normal(0, 0.8, items)
    leniency = rng.normal(0, 0.6, users)
    pd.DataFrame({"user_id": user_ids, "age": rng.integers(16, 75, users), "country": rng.choice(["US", "DE", "FR", "BR", "IN", "JP"], users)}
                 ).to_csv(out / "users.csv", index=False)
    pd.DataFrame({"item_id": item_ids, "genre": np.array(GENRES)[genre], "year": rng.integers(1950, 2025, items)}).to_csv(out / "items.csv", index=False)
    u = rng.zipf(1.6, ratings) % users  # a few heavy users, a long tail
    i = rng.zipf(1.4, ratings) % items
    logit = taste[u, genre[i]] + quality[i] + leniency[u] - 0.3
    liked = (rng.random(ratings) < 1 / (1 + np.exp(-logit))).astype(int)
    ts = np.sort(rng.integers(1_500_000_000, 1_700_000_000, ratings))
    pd.DataFrame({"user_id": user_ids[u], "item_id": item_ids[i], "timestamp": ts, "liked": liked}).to_csv(out / "ratings.csv", index=False)
    return out


def ratings_sql() -> str:
    """The training rows: each rating with its user's and item's attributes."""
    return ("SELECT r.user_id, r.item_id, u.age, u.country, i.genre, i.year, r.liked FROM ratings r "
            "JOIN users u USING (user_id) JOIN items i USING (item_id)")


if __name__ == "__main__":
    d = write(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 120_000)
    r = pd.read_csv(d / "ratings.csv")
    print(f"{d}: {len(r):,} ratings, {r.user_id.nunique():,} users, {r.item_id.nunique():,} items, liked {r.liked.mean():.1%}")
