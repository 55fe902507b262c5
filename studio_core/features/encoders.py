"""Column encoders fitted from DuckDB aggregates, following scikit-learn's estimator contract.

``__init__`` only stores parameters; ``fit(source, expr)`` learns state into attributes ending in
``_`` with one SQL aggregate; ``transform(array)`` maps an Arrow array to ids or floats in bulk.
Id 0 always means unseen or missing, so a value never seen in training is safe at serving time.
String work is done once per *distinct* value (Arrow dictionary encoding), never per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from studio_core.data.source import Source
from studio_core.features.piecewise import PiecewiseLinear
from studio_core.features.text import TokenEncoder
from studio_core.features.value_codes import HASH_SEED, dictionary_codes, hash_text  # noqa: F401  (HASH_SEED: the export graph hashes as they do)

CROSS_PRIME = 1_000_003
MASK32 = (1 << 32) - 1


def embedding_dim_for(n_ids: int) -> int:
    """fastai's rule of thumb: 1.6 * n^0.56, between 2 and 64."""
    return int(max(2, min(64, round(1.6 * max(n_ids, 1) ** 0.56))))


def text_codes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per-row hash codes of text values for crosses; NULL -> 0."""
    uniques, idx = dictionary_codes(values)
    table = np.concatenate([hash_text(uniques), np.zeros(1, np.int64)])
    return table[idx]  # idx -1 picks the trailing 0


def fold_codes(codes: list[np.ndarray]) -> np.ndarray:
    """Combine component codes (each < 2^32) into one code < 2^32; order matters."""
    out = np.zeros_like(codes[0])
    for c in codes:
        out = (out * CROSS_PRIME + c + 1) & MASK32
    return out


class VocabEncoder:
    """Value -> 1..n by descending training frequency; rarer than ``min_count`` or unseen -> 0."""

    def __init__(self, min_count: int = 1, max_size: int = 1_000_000):
        self.min_count = min_count
        self.max_size = max_size

    def fit(self, source: Source, expr: str) -> VocabEncoder:
        rows = source.all(
            f"SELECT v, count(*) AS n FROM (SELECT {expr} AS v FROM {{src}}) WHERE v IS NOT NULL "
            f"GROUP BY v HAVING count(*) >= {int(self.min_count)} ORDER BY n DESC, v LIMIT {int(self.max_size)}"
        )
        self.vocabulary_ = [r[0] for r in rows]
        self.counts_ = [int(r[1]) for r in rows]
        self.n_ids_ = len(self.vocabulary_) + 1
        return self

    def transform(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        index = getattr(self, "_index", None)
        if index is None:
            index = self._index = {v: i + 1 for i, v in enumerate(self.vocabulary_)}
        uniques, idx = dictionary_codes(values)
        table = np.array([index.get(v, 0) for v in uniques] + [0], dtype=np.int64)
        return table[idx]


class HashEncoder:
    """Value -> 1 + murmur3(value) mod buckets; NULL -> 0.  Needs no fitting beyond its size."""

    def __init__(self, buckets: int = 1000):
        self.buckets = buckets

    def fit(self, source: Source | None = None, expr: str = "") -> HashEncoder:
        self.n_ids_ = int(self.buckets) + 1
        return self

    def transform(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        uniques, idx = dictionary_codes(values)
        table = np.concatenate([1 + hash_text(uniques) % int(self.buckets), np.zeros(1, np.int64)])
        return table[idx]


class Standardizer:
    """(x - mean) / std, missing -> 0 (the mean); ``has_missing_`` adds a 0/1 indicator column."""

    def fit(self, source: Source, expr: str) -> Standardizer:
        mean, std, missing, lo, hi = source.one(f"avg({expr}), stddev_pop({expr}), count(*) - count({expr}), min({expr}), max({expr})")
        self.min_, self.max_ = (float(lo), float(hi)) if lo is not None else (None, None)  # the training range (what-if hints)
        self.mean_ = float(mean) if mean is not None else 0.0
        self.std_ = float(std) if std else 1.0
        self.has_missing_ = bool(missing)
        return self

    def input_names(self, column: str) -> list[str]:
        """Names of the model inputs ``transform`` makes, for the layout."""
        return [column] + ([f"{column} (missing)"] if self.has_missing_ else [])

    def transform(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Return an (n, 1 or 2) float32 array: scaled value [, missing indicator]."""
        x = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        missing = np.isnan(x)
        scaled = np.where(missing, 0.0, (x - self.mean_) / self.std_)
        cols = [scaled, missing.astype(np.float64)] if self.has_missing_ else [scaled]
        return np.stack(cols, axis=1).astype(np.float32)


class QuantileBucketizer:
    """x -> 1 + number of boundaries below x; missing -> 0.

    Boundaries are quantiles of the column's *distinct* training values, so a skewed column
    (mostly 0, a long tail) gets buckets across its tail instead of many copies of 0.
    """

    def __init__(self, buckets: int = 10):
        self.buckets = buckets

    def fit(self, source: Source, expr: str) -> QuantileBucketizer:
        qs = [i / self.buckets for i in range(1, int(self.buckets))]
        bounds = source.con.execute(f"SELECT quantile_cont(v, {qs}) FROM (SELECT DISTINCT {expr} AS v FROM {source.relation})").fetchall()[0][0] if qs else []
        self.boundaries_ = sorted({float(b) for b in (bounds or []) if b is not None})
        self.n_ids_ = len(self.boundaries_) + 2
        return self

    @classmethod
    def fitted(cls, boundaries: list[float]) -> QuantileBucketizer:
        """A bucketizer with the given boundaries: a piecewise column's wide ids, crosses and
        bucket embedding use its encoding's bins, so the wide weights read as its effect curve."""
        enc = cls(len(boundaries) + 1)
        enc.boundaries_ = [float(b) for b in boundaries]
        enc.n_ids_ = len(enc.boundaries_) + 2
        return enc

    def transform(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        x = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        ids = 1 + np.searchsorted(np.asarray(self.boundaries_, dtype=np.float64), x, side="left")
        return np.where(np.isnan(x), 0, ids).astype(np.int64)

    def label(self, i: int) -> str:
        """Bucket ``i`` as an interval, e.g. ``(35, 42]``; 0 is missing."""
        if i == 0:
            return "(missing)"
        b = self.boundaries_
        lo = "-inf" if i == 1 else f"{b[i - 2]:g}"
        hi = "inf" if i - 1 >= len(b) else f"{b[i - 1]:g}"
        return f"({lo}, {hi}]"


class CrossEncoder:
    """Ids for a combination of component codes: hashed into buckets, or a vocabulary of codes."""

    def __init__(self, encoding: str = "hash", buckets: int = 10000, min_count: int = 1):
        self.encoding = encoding
        self.buckets = buckets
        self.min_count = min_count

    def fit(self, combos: list[np.ndarray] | None = None, counts: np.ndarray | None = None) -> CrossEncoder:
        """``combos``: component codes of training combinations, with their row ``counts``.

        Several raw combinations can share one code (numerics enter as buckets), so counts are
        summed per code before ``min_count`` applies; the most frequent code gets id 1."""
        if self.encoding == "vocab":
            codes = fold_codes(combos) if combos else np.zeros(0, np.int64)
            counts = np.ones(len(codes), np.int64) if counts is None else np.asarray(counts, np.int64)
            uniq, inverse = np.unique(codes, return_inverse=True)
            totals = np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)
            keep = totals >= self.min_count
            order = np.argsort(-totals[keep], kind="stable")
            self.codes_ = [int(c) for c in uniq[keep][order]]
            self.n_ids_ = len(self.codes_) + 1
        else:
            self.n_ids_ = int(self.buckets) + 1
        return self

    def transform(self, codes: list[np.ndarray]) -> np.ndarray:
        folded = fold_codes(codes)
        if self.encoding == "vocab":
            sorted_codes = getattr(self, "_sorted", None)
            if sorted_codes is None:
                arr = np.asarray(self.codes_, dtype=np.int64)
                order = np.argsort(arr)
                sorted_codes = self._sorted = (arr[order], order + 1)
            keys, ids = sorted_codes
            pos = np.clip(np.searchsorted(keys, folded), 0, max(len(keys) - 1, 0))
            hit = (keys[pos] == folded) if len(keys) else np.zeros(len(folded), bool)
            return np.where(hit, ids[pos] if len(keys) else 0, 0).astype(np.int64)
        return (1 + folded % int(self.buckets)).astype(np.int64)


ENCODERS = {c.__name__: c for c in (VocabEncoder, HashEncoder, Standardizer, QuantileBucketizer, CrossEncoder, PiecewiseLinear, TokenEncoder)}


def encoder_state(enc: Any) -> dict[str, Any]:
    """JSON-able state: class, constructor params and learned ``*_`` attributes."""
    return {"class": type(enc).__name__, **{k: v for k, v in vars(enc).items() if not k.startswith("_")}}


def encoder_from_state(state: dict[str, Any]) -> Any:
    state = dict(state)
    cls = ENCODERS[state.pop("class")]
    enc = cls.__new__(cls)
    for k, v in state.items():
        setattr(enc, k, v)
    return enc
