"""A generated product-reviews table: free text whose words carry the label, plus structure.

Columns: ``review`` (5-120 words; some words lean positive or negative, "not" before a word
flips it, most words are neutral filler drawn from a Zipf law, with capitals, punctuation,
accents and some empty or missing reviews), ``category`` (12 values with their own base rate),
``price`` (numeric, a weak effect), ``tags`` (a ``|``-separated set of 0-4 tags, two of which
matter) and the label ``recommended`` (yes / no).  The multiclass label ``rating_band``
(low / mid / high / top) comes from the same score, for the multiclass bench.

``python bench/reviews.py OUT.csv [rows]`` writes it; ``frame(rows, seed)`` returns it.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

CATEGORIES = ["books", "kitchen", "toys", "garden", "audio", "video", "sports", "beauty", "office", "pets", "tools", "games"]
TAGS = ["gift", "durable", "budget", "premium", "eco", "imported", "bestseller", "refurbished"]
POSITIVE = ["great", "excellent", "love", "perfect", "wonderful", "amazing", "sturdy", "recommend", "happy", "fantastic", "solid", "superb",
            "reliable", "comfortable", "beautiful", "bargain", "delighted", "brilliant", "flawless", "impressive"]
NEGATIVE = ["broke", "terrible", "awful", "refund", "disappointed", "poor", "cheap", "useless", "waste", "worst", "flimsy", "defective",
            "returned", "horrible", "leaking", "missing", "scratched", "noisy", "late", "misleading"]
FILLER_SIZE = 3000


def _filler(rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéü"))
    words = {"".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(FILLER_SIZE * 2)}
    return rng.permutation(np.array(sorted(words)[:FILLER_SIZE]))  # Zipf ranks fall on random words


def frame(rows: int = 40_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    filler = _filler(np.random.default_rng(12345))  # the same language for every seed
    strength = {w: s for w, s in zip(POSITIVE, rng.uniform(0.6, 1.6, len(POSITIVE)))} | {w: -s for w, s in zip(NEGATIVE, rng.uniform(0.6, 1.6, len(NEGATIVE)))}
    cat_effect = rng.normal(0, 0.4, len(CATEGORIES))
    tag_effect = dict(zip(TAGS, [0.0] * len(TAGS))) | {"durable": 0.5, "refurbished": -0.6}
    cats = rng.integers(0, len(CATEGORIES), rows)
    price = np.round(np.exp(rng.normal(3.2, 0.8, rows)), 2)
    zipf = np.minimum(rng.zipf(1.3, rows * 130) - 1, FILLER_SIZE - 1)
    sentiment_words = list(strength)
    texts, tags_col, score = [], [], np.zeros(rows)
    z = 0
    for r in range(rows):
        n = int(rng.integers(5, 121))
        words = list(filler[zipf[z : z + n]])
        z += n
        for _ in range(1 + int(rng.poisson(1.0 + n / 30))):  # a few words that carry sentiment
            w = sentiment_words[int(rng.integers(len(sentiment_words)))]
            s = strength[w]
            if rng.random() < 0.2:  # "not great", "not broke"
                words.insert(int(rng.integers(0, len(words) + 1)), "not " + w)
                s = -0.8 * s
            else:
                words.insert(int(rng.integers(0, len(words) + 1)), w.capitalize() if rng.random() < 0.3 else w + "!" if rng.random() < 0.2 else w)
            score[r] += s
        texts.append(" ".join(words))
        tags = list(rng.choice(TAGS, int(rng.integers(0, 5)), replace=False))
        tags_col.append("|".join(tags))
        score[r] += sum(tag_effect[t] for t in tags)
    score += cat_effect[cats] - 0.15 * (np.log(price) - 3.2)
    logit = 2.0 * score + rng.normal(0, 0.3, rows)
    df = pd.DataFrame({"review": texts, "category": np.array(CATEGORIES)[cats], "price": price, "tags": tags_col})
    gone = rng.random(rows)
    df.loc[gone < 0.01, "review"] = None  # a missing review
    df.loc[(gone >= 0.01) & (gone < 0.02), "review"] = ""  # an empty one
    df.loc[rng.random(rows) < 0.3, "tags"] = None
    df["recommended"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    df["rating_band"] = pd.qcut(logit + rng.normal(0, 0.7, rows), 4, labels=["low", "mid", "high", "top"]).astype(str)
    return df


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "reviews.csv"
    frame(int(sys.argv[2]) if len(sys.argv) > 2 else 40_000).to_csv(out, index=False)
    print(out)
