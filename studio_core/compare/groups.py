"""Metrics per group of rows, as recommender teams read them: GAUC, NDCG@k, recall@k.

With a group column (a user, a session), a model is judged on how it ranks each group's rows
against each other, not all rows at once:

* **GAUC**: each group's AUC (groups holding both outcomes), averaged weighted by the group's
  rows (impressions).
* **NDCG@k**: per group with a positive, the discounted gain of the positives in its top ``k``
  rows by score (gain 1 at rank i counts 1 / log2(i + 1)) over the best possible; the mean.
* **recall@k**: per group with a positive, the share of its positives in its top ``k``; the mean.

Every figure is computed once per group, so a bootstrap that resamples *groups* (a user's rows
stay together, as they are not independent) is a weighted sum again: intervals and paired
differences come from one count matrix over groups, like ``runs.bootstrap`` does over rows.
Ties within a group are ranked by row order (stable), the same for every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from studio_core.common.errors import StudioError
from studio_core.data.split import split_for
from studio_core.data.workspace import Workspace
from studio_core.runs.bootstrap import RESAMPLES, resample_counts
from studio_core.runs.folder import run_record


def per_group(y: np.ndarray, score: np.ndarray, groups: np.ndarray, k: int = 10) -> pd.DataFrame:
    """One row per group: ``rows``, ``auc`` (NaN without both outcomes), ``ndcg`` and ``recall``
    (NaN without a positive), groups in sorted order."""
    df = pd.DataFrame({"g": pd.Series(groups).astype(str).to_numpy(), "y": (np.asarray(y) >= 0.5).astype(np.float64),
                       "s": np.asarray(score, dtype=np.float64)})
    df["order"] = np.arange(len(df))
    by = df.groupby("g", sort=True)
    n, pos = by.size(), by["y"].sum()
    neg = n - pos
    ranks = by["s"].rank(method="average")  # ties share their average rank, as in the Mann-Whitney AUC
    rank_pos = (ranks * df["y"]).groupby(df["g"]).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_pos - pos * (pos + 1) / 2) / (pos * neg)
    auc = auc.where((pos > 0) & (neg > 0))
    ordered = df.sort_values(["g", "s", "order"], ascending=[True, False, True], kind="stable")
    position = ordered.groupby("g").cumcount().to_numpy()  # 0 = the group's top-scored row
    top = position < k
    gain = np.where(top, ordered["y"].to_numpy() / np.log2(position + 2), 0.0)
    dcg = pd.Series(gain, index=ordered.index).groupby(ordered["g"]).sum()
    hits = pd.Series(np.where(top, ordered["y"].to_numpy(), 0.0), index=ordered.index).groupby(ordered["g"]).sum()
    ideal_table = np.cumsum(1.0 / np.log2(np.arange(k) + 2))  # the best DCG with 1..k positives on top
    ideal = pd.Series(ideal_table[np.minimum(pos.to_numpy().astype(int), k) - 1], index=pos.index).where(pos > 0)
    out = pd.DataFrame({"rows": n, "auc": auc, "ndcg": (dcg / ideal).where(pos > 0), "recall": (hits / pos).where(pos > 0)})
    return out.sort_index()


def _weighted(weights: np.ndarray, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """GAUC, NDCG@k and recall@k for each row of ``weights`` (how often each group is drawn)."""
    out = {}
    for name, col, by_rows in (("gauc", "auc", True), ("ndcg", "ndcg", False), ("recall", "recall", False)):
        v = table[col].to_numpy()
        ok = np.isfinite(v)
        w = weights[:, ok] * (table["rows"].to_numpy()[ok] if by_rows else 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = (w @ v[ok]) / w.sum(axis=1)
    return out


def group_samples(y: np.ndarray, outputs: Mapping[str, np.ndarray], groups: np.ndarray, k: int = 10,
                  resamples: int = RESAMPLES, seed: int = 0) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """Per model: its GAUC, NDCG@k and recall@k on all groups, and their values on each of
    ``resamples`` paired resamples of the groups."""
    tables = {name: per_group(y, out, groups, k) for name, out in outputs.items()}
    n_groups = len(next(iter(tables.values())))
    point = {name: {m: float(v[0]) for m, v in _weighted(np.ones((1, n_groups)), t).items()} for name, t in tables.items()}
    chunks: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in outputs}
    for counts in resample_counts(n_groups, resamples, seed):
        for name, t in tables.items():
            chunks[name].append(_weighted(counts, t))
    samples = {name: {m: np.concatenate([c[m] for c in parts]) for m in parts[0]} for name, parts in chunks.items()}
    return point, samples


def test_groups(run_dir: str | Path, ws: Workspace, column: str, table: str | None = None, option: str = "--group") -> tuple[np.ndarray, np.ndarray]:
    """(row numbers, values of ``column``) of a run's test rows, from its split re-created in
    ``ws`` (refused, saying what changed, when the data no longer gives those rows)."""
    rows, values = test_columns(run_dir, ws, {option: column}, table)
    return rows, values[column]


def test_columns(run_dir: str | Path, ws: Workspace, columns: dict[str, str], table: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(row numbers, {column: its values as text, "∅" for missing}) of a run's test rows for
    several columns (``{option: column}``, the option naming it in a refusal), from one
    re-creation of its split in ``ws``."""
    spec, metrics = run_record(run_dir)
    if table:
        spec.data.table = table
    split = split_for(ws.fork(), spec, metrics)
    try:
        for option, column in columns.items():
            if column not in split.column_types:
                raise StudioError(f"{option} {column!r} is not a column of the run's data; use one of {', '.join(sorted(split.column_types))}")
        wanted = list(dict.fromkeys(columns.values()))
        picked = ", ".join(f'CAST("{c.replace(chr(34), chr(34) * 2)}" AS VARCHAR) AS g{i}' for i, c in enumerate(wanted))
        got = split.con.sql(f"SELECT __wd_row, {picked} FROM {split.test.relation}").fetchnumpy()
    finally:
        split.drop()
    values = {c: np.array(["∅" if v is None or v is np.ma.masked else v for v in got[f"g{i}"].tolist()], dtype=object) for i, c in enumerate(wanted)}
    return np.asarray(got["__wd_row"], dtype=np.int64), values
