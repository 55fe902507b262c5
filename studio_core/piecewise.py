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
added, so the tail still gets bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class PiecewiseLinear:
    """x -> (n, T [+1]) float32: the piecewise-linear encoding (``mode="piecewise"``) or its
    CDF value (``mode="quantile"``, one column); missing -> zeros and, if the training rows had
    missing values, a 0/1 indicator column.  ``bins`` quantiles make ``bins`` bins, up to twice
    as many where the distinct values' quantiles are added."""

    def __init__(self, bins: int = 16, mode: str = "piecewise"):
        self.bins = bins
        self.mode = mode

    def fit(self, source: Any, expr: str) -> PiecewiseLinear:
        """``source``: an ``encoders.Source`` (this module stays below encoders, which registers it)."""
        qs = [i / self.bins for i in range(1, int(self.bins))] or [0.5]
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
