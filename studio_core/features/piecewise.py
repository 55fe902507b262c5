"""Piecewise-linear encoding of a numeric column over quantile bins (Gorishniy et al. 2022).

A value ``x`` in bin ``t`` of the edges ``e_0 < ... < e_T`` becomes ``T`` numbers: 1 for every
bin below it, ``(x - e_t) / (e_{t+1} - e_t)`` for its own bin and 0 above it.  The first bin is
not clipped below and the last not above, so values outside the training range extrapolate
linearly.  An MLP reading these numbers learns a different slope per bin, which is how an MLP
reaches gradient-boosting quality on numeric-heavy tables; a single standardised value makes it
learn every threshold from one input.

The same edges give the ``quantile`` transform: the mean of the fully clipped encoding is the
piecewise-linear estimate of the training CDF, mapped to ``[-1, 1]`` -- one number per column,
insensitive to skew and outliers (a robust alternative to standardising).

Edges are quantiles of the training rows.  Where many of them coincide (a column that is mostly
one value: zeros with a long tail), quantiles of the column's distinct training values are
added, so the tail still gets bins.  ``binning="tree"`` instead places them where the label
changes (the paper's target-aware bins): a shallow regression tree on the label, grown best-first
to ``bins`` leaves over a 256-bucket histogram of the training rows that DuckDB aggregates (count,
sum and sum of squares of the label per bucket), so no row leaves the database.  For a 0/1 label
the squared-error gain is the Gini gain, so one criterion serves both tasks.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TREE_CANDIDATES = 256  # histogram buckets the tree chooses its splits from
TREE_MIN_LEAF = 64  # rows a tree bin holds at least (rtdl's min_samples_leaf)
TREE_MIN_GAIN = 1e-4  # a split must remove this share of the label's variance per row (rtdl's min_impurity_decrease)


class PiecewiseLinear:
    """x -> (n, T [+1]) float32: the piecewise-linear encoding (``mode="piecewise"``) or its
    CDF value (``mode="quantile"``, one column); missing -> zeros and, if the training rows had
    missing values, a 0/1 indicator column.  ``bins`` quantiles make ``bins`` bins, up to twice
    as many where the distinct values' quantiles are added."""

    def __init__(self, bins: int = 16, mode: str = "piecewise", binning: str = "quantile"):
        self.bins = bins
        self.mode = mode
        self.binning = binning

    def fit(self, source: Any, expr: str, target: str = "") -> PiecewiseLinear:
        """``source``: an ``encoders.Source`` (this module stays below encoders, which registers it);
        ``target``: the label's SQL expression, for ``binning="tree"``."""
        tree = self.binning == "tree" and bool(target)
        qs = [i / self.bins for i in range(1, int(self.bins))] or [0.5]
        if tree:  # candidates for the tree's splits, not the bins themselves
            qs = [i / TREE_CANDIDATES for i in range(1, TREE_CANDIDATES)]
        row_q, lo, hi, missing, mean, std = source.one(
            f"quantile_cont({expr}, {qs}), min({expr}), max({expr}), count(*) - count({expr}), avg({expr}), stddev_pop({expr})")
        self.min_, self.max_ = (float(lo), float(hi)) if lo is not None else (None, None)  # the training range (what-if hints)
        self.mean_ = float(mean) if mean is not None else 0.0
        self.std_ = float(std) if std else 1.0
        self.has_missing_ = bool(missing)
        inner = {float(v) for v in (row_q or []) if v is not None}
        if len(inner) < 0.75 * len(qs):  # quantiles collapsed onto a few values: add bins over the distinct values
            distinct_q = source.con.execute(f"SELECT quantile_cont(v, {qs}) FROM (SELECT DISTINCT {expr} AS v FROM {source.relation})").fetchall()[0][0]
            inner |= {float(v) for v in (distinct_q or []) if v is not None}
        if tree and inner:
            inner = set(tree_edges(*_histogram(source, expr, target, sorted(inner)), int(self.bins)))
        edges = sorted(inner | ({self.min_, self.max_} if lo is not None else set()))
        if len(edges) < 2:  # constant or empty: one bin of width 1 (the value's offset from the constant)
            edges = [edges[0], edges[0] + 1.0] if edges else [0.0, 1.0]
        self.edges_ = edges
        return self

    @property
    def n_bins(self) -> int:
        return len(self.edges_) - 1

    def width(self) -> int:
        """Columns ``transform`` returns."""
        return (self.n_bins if self.mode == "piecewise" else 1) + int(self.has_missing_)

    def clip_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin lower and upper clip of the encoding (the ends stay open in piecewise mode)."""
        t = self.n_bins
        lower, upper = np.zeros(t), np.ones(t)
        if self.mode == "piecewise":
            lower[0], upper[-1] = -np.inf, np.inf
        return lower, upper

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n,) float64 with NaN for missing -> (n, T) float64 encoding (missing rows all 0)."""
        e = np.asarray(self.edges_, np.float64)
        lower, upper = self.clip_bounds()
        v = (x[:, None] - e[None, :-1]) / (e[1:] - e[:-1])[None, :]
        v = np.minimum(np.maximum(v, lower[None, :]), upper[None, :])
        return np.where(np.isnan(x)[:, None], 0.0, v)

    def transform(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        x = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        v = self.encode(x)
        if self.mode == "quantile":
            v = np.where(np.isnan(x), 0.0, v.sum(axis=1) * (2.0 / self.n_bins) - 1.0)[:, None]  # as the ONNX graph computes it
        cols = [v, np.isnan(x).astype(np.float64)[:, None]] if self.has_missing_ else [v]
        return np.concatenate(cols, axis=1).astype(np.float32)

    def input_names(self, column: str) -> list[str]:
        """Names of the model inputs ``transform`` makes, for the layout."""
        if self.mode == "quantile":
            names = [f"{column} (quantile)"]
        else:
            names = [f"{column} [{self.edges_[t]:g}, {self.edges_[t + 1]:g})" for t in range(self.n_bins)]
        return names + ([f"{column} (missing)"] if self.has_missing_ else [])


def _histogram(source: Any, expr: str, target: str, cuts: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Per bucket ``(-inf, c_0), [c_0, c_1), ..., [c_last, inf)`` of the rows with a value and a
    label: count, sum and sum of squares of the label (a range join DuckDB runs as one pass)."""
    bounds = [-np.inf, *cuts, np.inf]
    values = ", ".join(f"({i}, {_sql_float(bounds[i])}, {_sql_float(bounds[i + 1])})" for i in range(len(bounds) - 1))
    rows = source.all(
        f"WITH b(i, lo, hi) AS (VALUES {values}), r AS (SELECT ({expr})::DOUBLE AS x, ({target})::DOUBLE AS y FROM {{src}}) "
        "SELECT b.i, count(*), sum(r.y), sum(r.y * r.y) FROM r JOIN b ON r.x >= b.lo AND r.x < b.hi "
        "WHERE r.y IS NOT NULL AND isfinite(r.y) GROUP BY b.i")
    n, s, ss = (np.zeros(len(bounds) - 1) for _ in range(3))
    for i, c, total, squares in rows:
        n[i], s[i], ss[i] = c, total or 0.0, squares or 0.0
    return n, s, ss, cuts


def _sql_float(v: float) -> str:
    return "'-infinity'::DOUBLE" if v == -np.inf else "'infinity'::DOUBLE" if v == np.inf else repr(float(v))


def tree_edges(n: np.ndarray, s: np.ndarray, ss: np.ndarray, cuts: list[float], leaves: int,
               min_leaf: int = TREE_MIN_LEAF, min_gain: float = TREE_MIN_GAIN, beat_chance: bool = True) -> list[float]:
    """The cut points a best-first regression tree of at most ``leaves`` leaves picks from
    ``cuts`` (bucket ``j`` lies below ``cuts[j]``), given each bucket's row count ``n``, label sum
    ``s`` and sum of squares ``ss``.  A split must leave ``min_leaf`` rows each side, remove at
    least ``min_gain`` of the label's variance times the rows, and remove more than chance would:
    on a label unrelated to the column the best of ``m`` candidate splits removes about
    ``2 ln m`` times the node's variance, so a split must beat ``(2 ln m + 4)`` times it (the tree
    stops where the label stops changing, and a column unrelated to it gets few bins)."""
    cn, cs, css = (np.concatenate([[0.0], np.cumsum(v)]) for v in (n, s, ss))
    total = cn[-1]
    if total <= 0:
        return []
    variance = max(float(ss.sum() / total - (cs[-1] / total) ** 2), 0.0)
    threshold = min_gain * variance * total

    def best(a: int, b: int) -> tuple[float, int] | None:
        """The best split of buckets [a, b) between buckets k-1 and k: (gain, k)."""
        if b - a < 2:
            return None
        k = np.arange(a + 1, b)
        nl, sl = cn[k] - cn[a], cs[k] - cs[a]
        nr, sr = cn[b] - cn[k], cs[b] - cs[k]
        ok = (nl >= min_leaf) & (nr >= min_leaf)
        if not ok.any():
            return None
        rows = cn[b] - cn[a]
        whole = (cs[b] - cs[a]) ** 2 / rows
        gain = np.where(ok, sl**2 / np.maximum(nl, 1) + sr**2 / np.maximum(nr, 1) - whole, -np.inf)
        j = int(np.argmax(gain))
        chance = max((css[b] - css[a]) - whole, 0.0) / rows * (2.0 * math.log(max(int(ok.sum()), 2)) + 4.0) if beat_chance else 0.0
        return (float(gain[j]), int(k[j])) if gain[j] > max(threshold, chance) and gain[j] > 0 else None

    heap: list[tuple[float, int, int, int]] = []

    def push(a: int, b: int) -> None:
        found = best(a, b)
        if found is not None:
            heapq.heappush(heap, (-found[0], found[1], a, b))

    push(0, len(n))
    chosen: list[float] = []
    while heap and len(chosen) + 1 < leaves:
        _, k, a, b = heapq.heappop(heap)
        chosen.append(float(cuts[k - 1]))  # the edge between bucket k-1 and bucket k
        push(a, k)
        push(k, b)
    return sorted(chosen)
