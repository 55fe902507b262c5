"""A generated wide binary table like the 77-column one the studio was demoed on: 80 columns
(a block id with 153 values, 52 numeric and 26 categorical columns, the label), rare positives
(about 1 %), a label from a logistic model of a few numeric effects, two categorical effects,
one interaction and a per-block offset.

Used by ``shap_speed.py --wide`` and the rare-positive checks; nothing is committed but this
generator.  Run ``python bench/wide_table.py out.csv [rows]`` to write one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

N_NUMERIC, N_CATEGORICAL, N_BLOCKS = 52, 26, 153


def wide_table(rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    block = rng.integers(1, N_BLOCKS + 1, rows)
    cols: dict[str, np.ndarray] = {"block_id": block}
    for j in range(N_NUMERIC):
        base = rng.normal(size=rows) if j % 3 else rng.lognormal(size=rows)
        cols[f"x{j:02d}"] = np.round(base * (1 + j % 5), 4)
    for j in range(N_CATEGORICAL):
        card = 3 + (j * 7) % 48
        cols[f"c{j:02d}"] = np.array([f"v{k}" for k in range(card)])[rng.integers(0, card, rows)]
    df = pd.DataFrame(cols)
    block_effect = rng.normal(0, 0.8, N_BLOCKS + 1)[block]
    logit = (-5.6 + 0.9 * df.x01 / 2 - 0.7 * df.x04 / 5 + 0.5 * np.tanh(df.x07 / 3) + block_effect
             + 0.8 * (df.c00 == "v1") - 0.6 * (df.c03 == "v2") + 0.9 * ((df.c01 == "v3") & (df.x10 > 0)))
    df["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def write(path: str | Path, rows: int = 20_000, seed: int = 0) -> Path:
    path = Path(path)
    wide_table(rows, seed).to_csv(path, index=False)
    return path


if __name__ == "__main__":
    out = write(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)
    df = pd.read_csv(out)
    print(f"{out}: {len(df):,} rows x {df.shape[1]} columns, positives {df.label.mean():.2%}")
